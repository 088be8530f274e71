"""Strict checkpoint loading.

ESPnet's ``build_model_from_file`` loads weights with ``strict=False``, so a
checkpoint of another depth or width, or a renamed key, loads silently
half-way.  Every model this project loads (students, teachers, decoding)
goes through :func:`load_state_dict_strict` instead (the loader itself is
:func:`espnet_dld.asr.trained_model.load_trained_model`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List, Union

import torch

PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded as it is: the message names the
    file and what does not match."""


def _listing(keys, limit: int = 10) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_torch_file(model_file: PathLike) -> object:
    """``torch.load`` on the CPU; a missing, truncated or foreign file raises
    :class:`CheckpointError` naming it."""
    path = Path(model_file)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for broken zips/pickles
        raise CheckpointError(f"cannot read model file {path} (truncated or not a PyTorch checkpoint): {e}") from e


def load_safetensors_file(path: PathLike) -> Dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file on the CPU (Hugging Face's
    weights format); a truncated or foreign file raises
    :class:`CheckpointError` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError, OSError, ...
        raise CheckpointError(f"cannot read {path} (truncated or not a safetensors file): {e}") from e


def read_state_dict(model_file: PathLike) -> Dict[str, torch.Tensor]:
    """Read a ``.pth`` on the CPU; a missing, truncated or foreign file
    raises :class:`CheckpointError` naming it."""
    path = Path(model_file)
    state = load_torch_file(path)
    if isinstance(state, dict) and "module" in state and isinstance(state["module"], dict):
        state = state["module"]  # deepspeed layout, as ESPnet accepts it
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"model file {path} holds no state dict of tensors (got {type(state).__name__})")
    return state


def state_dict_mismatch(expected: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor]) -> List[str]:
    """What keeps ``state`` from loading strictly into a model whose state
    dict is ``expected``: lines naming missing, unexpected and mis-shaped
    keys (empty when it fits)."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    wrong_shape = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(state) & set(expected))
        if getattr(state[k], "shape", None) != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatch: {_listing(wrong_shape, 5)}")
    return problems


def load_state_dict_strict(model: torch.nn.Module, model_file: PathLike) -> None:
    """Load ``model_file`` into ``model``; every key must match in name and shape."""
    state = read_state_dict(model_file)
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise CheckpointError(
            f"model file {model_file} does not match the model built from its config "
            f"(another depth, width or model type?): " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


def file_sha256(path: Union[str, Path]) -> str:
    """Hex SHA-256 of a file's bytes: identifies a checkpoint (the one a
    depth profile or a teacher-posterior cache was made from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
