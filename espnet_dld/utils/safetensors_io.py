"""Reading ``.safetensors`` files without the ``safetensors`` package.

Hugging Face checkpoint folders hold their weights as ``model.safetensors``
more and more often; the format is simple (8-byte little-endian header size,
a JSON header giving each tensor's dtype, shape and byte range, then the raw
bytes), so this project reads it itself rather than adding a dependency.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict, Union

import torch

from espnet_dld.utils.checkpoint import CheckpointError

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (CPU, little-endian layout);
    a truncated or foreign file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except Exception as e:
        raise CheckpointError(f"{path} is not a safetensors file (unreadable header: {e})") from e
    body = memoryview(data)[8 + n :]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[info["dtype"]]
            start, end = info["data_offsets"]
            shape = list(info["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad header entry for tensor {name!r}: {info!r}") from e
        if end > len(body):
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ends at byte {end}, the data has {len(body)}")
        chunk = bytes(body[start:end])
        tensor = torch.frombuffer(bytearray(chunk), dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        out[name] = tensor.reshape(shape).clone()
    return out
