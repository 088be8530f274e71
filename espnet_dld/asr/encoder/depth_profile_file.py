"""Depth profile files: which k blocks run at depth k, measured on dev data.

``espnet_dld.bin.depth_profile`` writes ``depth_profile.yaml`` beside a
model file; decoding (``Speech2Text``), export (``export_depth``) and the
recipe find it there, so a packed model that carries one (``espnet2.bin.pack
... --option exp/x/depth_profile.yaml``) is decoded with it.  This module is
the one place that reads, checks, locates and applies such files.

The file (YAML)::

    num_blocks: 6
    criterion: ctc_loss
    data: {speech: dump/raw/dev/wav.scp, text: dump/raw/dev/text}
    num_utterances: 150
    model_file: valid.loss_ctc.ave.pth
    model_sha256: 3f0c...
    all_blocks: 21.4            # criterion with every block
    profile:                    # depth -> sorted 0-based block indices
      6: [0, 1, 2, 3, 4, 5]
      ...
      1: [5]
    steps:                      # the search, one entry per removed block
    - {depth: 5, removed: 2, candidates: {0: 22.1, 1: 21.9, ...}}

Only ``num_blocks`` and ``profile`` are required (a hand-written profile need
not be nested); ``model_sha256``, when present, must be that of the model
file the profile is used with, so a profile measured on another checkpoint
is refused.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from espnet_dld.asr.encoder.layer_gating import PROFILE_HOWTO, check_profile
from espnet_dld.utils.checkpoint import file_sha256
from espnet_dld.utils.model_side_files import find_side_file, read_yaml_record, write_yaml_record

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
PROFILE_FILE = "depth_profile.yaml"


def default_profile_path(model_file: PathLike) -> Path:
    """Where a model file's profile lives: ``depth_profile.yaml`` beside it."""
    return Path(model_file).parent / PROFILE_FILE


def dump_depth_profile(path: PathLike, record: Dict[str, Any]) -> None:
    """Write ``record`` (see the module docstring) to ``path`` atomically,
    keys in the given order, lists of blocks on one line."""
    check_profile(record["profile"], record["num_blocks"])
    write_yaml_record(path, record)


def read_depth_profile(path: PathLike, num_blocks: Optional[int] = None) -> Dict[str, Any]:
    """The whole record of a profile file, its ``profile`` checked (and with
    ``num_blocks`` given, checked against it); errors name the file."""
    record = read_yaml_record(path, "depth profile", PROFILE_HOWTO)
    if not isinstance(record, dict) or "profile" not in record or "num_blocks" not in record:
        raise ValueError(f"depth profile {path} must be a mapping with 'num_blocks' and 'profile'")
    n = record["num_blocks"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"depth profile {path}: num_blocks must be a positive integer, got {n!r}")
    if num_blocks is not None and n != num_blocks:
        raise ValueError(
            f"depth profile {path} is for an encoder of {n} blocks, but the model has {num_blocks} "
            "(a profile of another model?)"
        )
    try:
        record["profile"] = check_profile(record["profile"], n)
    except ValueError as e:
        raise ValueError(f"depth profile {path}: {e}") from None
    return record


def load_depth_profile(
    path: PathLike, num_blocks: int, model_file: Optional[PathLike] = None
) -> Dict[int, List[int]]:
    """``{depth: blocks}`` of a profile file for an encoder of ``num_blocks``
    blocks.  With ``model_file``, a profile that records the SHA-256 of
    another file is refused (measured on another checkpoint)."""
    record = read_depth_profile(path, num_blocks)
    expected = record.get("model_sha256")
    if model_file is not None and expected is not None:
        actual = file_sha256(model_file)
        if actual != expected:
            raise ValueError(
                f"depth profile {path} was measured on a model file {record.get('model_file', '?')} with "
                f"sha256 {expected}, but the model file {model_file} has sha256 {actual}: the profile belongs to "
                "another checkpoint; measure it again for this one (python -m espnet_dld.bin.depth_profile), "
                "or pass depth_profile= / --depth_profile explicitly"
            )
    return record["profile"]


def find_depth_profile(model_file: Optional[PathLike], depth_profile: Optional[PathLike] = None) -> Optional[Path]:
    """The profile to use: ``depth_profile`` if given (it must exist), else
    ``depth_profile.yaml`` beside ``model_file`` if there is one, else None."""
    return find_side_file(model_file, depth_profile, PROFILE_FILE, "depth profile", PROFILE_HOWTO)


def apply_depth_profile(
    encoder: Any,
    model_file: Optional[PathLike],
    depth_profile: Optional[PathLike] = None,
    depth_policy: Optional[str] = None,
) -> Tuple[Optional[str], Optional[Path]]:
    """Give a dynamic ``encoder`` its profile and policy, as decoding and
    export both do: the profile is ``depth_profile`` or the one carried
    beside ``model_file``; when one is found and ``depth_policy`` is None the
    policy becomes ``profile``, otherwise ``depth_policy`` (if given)
    overrides the config's.  Returns ``(policy, profile path)``; a static
    encoder returns ``(None, None)`` and refuses explicit options."""
    if not hasattr(encoder, "set_depth_profile"):
        if depth_profile is not None or depth_policy is not None:
            raise ValueError(
                f"depth_profile={depth_profile!r} depth_policy={depth_policy!r}: the encoder "
                f"{type(encoder).__name__} of this model is static; depth policies need a dld_* encoder"
            )
        return None, None
    path = find_depth_profile(model_file, depth_profile)
    if path is not None:
        if model_file is None:
            logger.warning("depth profile %s: no model file given, so its model_sha256 is not checked", path)
        encoder.set_depth_profile(load_depth_profile(path, encoder.num_layers, model_file))
    policy = depth_policy if depth_policy is not None else ("profile" if path is not None else None)
    if policy is not None:
        encoder.set_depth_policy(policy)
    logger.info("depth policy %s%s", encoder.depth_policy, f" (profile {path})" if path is not None else "")
    return encoder.depth_policy, path
