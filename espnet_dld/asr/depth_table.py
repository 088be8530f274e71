"""Per-depth dev table: the WER (and real-time factor) of every depth on dev data, packed with the model.

The recipe's stage 13 decodes the dev set (``--dev_table_set``, default the
valid set, never a test set) at every depth; stage 15 writes
``depth_table.yaml`` beside the model file from those decodings
(``pyscripts/make_depth_table.py``) and packs it.  ``Speech2Text`` finds it
there (as it finds ``depth_profile.yaml``) and ``max_wer_increase`` chooses a
depth from it (:func:`espnet_dld.asr.depth_budget.cheapest_within_wer`).

The file (YAML)::

    num_blocks: 6
    dev_set: dev                     # the data the WERs were measured on
    num_utterances: 300
    model_file: valid.loss_ctc.ave.pth
    model_sha256: 3f0c...            # refused beside another checkpoint
    inference_config: decode_ctc_greedy
    machine: {processor: x86_64, cpu_count: 2, decode_threads: 1, ...}   # where the RTFs were measured
    depths:
      1: {wer: 30.1, cer: 12.0, rtf: 0.011, active_layers: [5]}
      ...
      6: {wer: 2.2, cer: 0.9, rtf: 0.030, active_layers: [0, 1, 2, 3, 4, 5]}
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional, Union

from espnet_dld.utils.checkpoint import file_sha256
from espnet_dld.utils.model_side_files import find_side_file, read_yaml_record, write_yaml_record

PathLike = Union[str, Path]
TABLE_FILE = "depth_table.yaml"
#: how a missing table is produced, for error messages
TABLE_HOWTO = (
    "it is made by the recipe: stage 13 decodes the dev set (--dev_table_set, default the valid set) at every "
    "depth and stage 15 writes depth_table.yaml beside the model file and packs it "
    "(./run.sh --stage 13 --stop_stage 15); or pass depth_table= / --depth_table"
)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_depth_table(record: Any, where: str, num_blocks: Optional[int] = None) -> Dict[str, Any]:
    """Validate a table record; errors name ``where`` (the file).  Depth keys
    become ints."""
    if not isinstance(record, dict) or not isinstance(record.get("depths"), dict) or "num_blocks" not in record:
        raise ValueError(f"depth table {where} must be a mapping with 'num_blocks' and 'depths'")
    n = record["num_blocks"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"depth table {where}: num_blocks must be a positive integer, got {n!r}")
    if num_blocks is not None and n != num_blocks:
        raise ValueError(f"depth table {where} is for an encoder of {n} blocks, but the model has {num_blocks}")
    if not record.get("dev_set"):
        raise ValueError(f"depth table {where} does not say which data its WERs were measured on (dev_set)")
    depths = {}
    for key, row in record["depths"].items():
        if isinstance(key, bool) or not isinstance(key, int) or not 1 <= key <= n:
            raise ValueError(f"depth table {where}: depth {key!r} is not an integer in 1..{n}")
        if not isinstance(row, dict) or not _number(row.get("wer")) or row["wer"] < 0:
            raise ValueError(f"depth table {where}: depth {key} needs a WER (a number >= 0), got {row!r}")
        for opt in ("rtf", "cer"):
            if row.get(opt) is not None and not _number(row[opt]):
                raise ValueError(f"depth table {where}: depth {key} has a non-numeric {opt} {row[opt]!r}")
        depths[key] = row
    if n not in depths:
        raise ValueError(f"depth table {where} has no row for full depth {n}")
    return dict(record, depths=dict(sorted(depths.items())))


def dump_depth_table(path: PathLike, record: Dict[str, Any]) -> None:
    """Write ``record`` (see the module docstring) to ``path`` atomically."""
    write_yaml_record(path, check_depth_table(record, str(path)))


def read_depth_table(path: PathLike, num_blocks: Optional[int] = None,
                     model_file: Optional[PathLike] = None) -> Dict[str, Any]:
    """The checked record of a table file; with ``model_file``, a table that
    records the SHA-256 of another file is refused."""
    record = check_depth_table(read_yaml_record(path, "depth table", TABLE_HOWTO), str(path), num_blocks)
    expected = record.get("model_sha256")
    if model_file is not None and expected is not None and file_sha256(model_file) != expected:
        raise ValueError(f"depth table {path} was measured on a model file with sha256 {expected}, not on "
                         f"{model_file}: it belongs to another checkpoint; rerun stages 13-15 for this one")
    return record


def find_depth_table(model_file: Optional[PathLike], depth_table: Optional[PathLike] = None) -> Optional[Path]:
    """``depth_table`` if given (it must exist), else ``depth_table.yaml``
    beside ``model_file`` if there is one, else None."""
    return find_side_file(model_file, depth_table, TABLE_FILE, "depth table", TABLE_HOWTO)


def table_wers(record: Dict[str, Any]) -> Dict[int, float]:
    """``{depth: dev WER}`` of a checked record."""
    return {d: float(row["wer"]) for d, row in record["depths"].items()}
