"""YAML records that travel beside a model file (``depth_profile.yaml``,
``depth_table.yaml``): packing puts them next to the model file, and decoding
finds, reads and writes them the same way, with errors that name the file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import yaml

from espnet_dld.data.atomic import atomic_path

PathLike = Union[str, Path]


def find_side_file(model_file: Optional[PathLike], explicit: Optional[PathLike], name: str, what: str,
                   howto: str) -> Optional[Path]:
    """``explicit`` if given (it must exist), else ``name`` beside
    ``model_file`` if there is one, else None."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path} does not exist; {howto}")
        return path
    if model_file is not None:
        path = Path(model_file).parent / name
        if path.is_file():
            return path
    return None


def read_yaml_record(path: PathLike, what: str, howto: str) -> Any:
    """The parsed content of ``path``; a missing file or bad YAML is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; {howto}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {path} is not valid YAML: {e}") from None


def write_yaml_record(path: PathLike, record: Dict[str, Any]) -> None:
    """Write ``record`` atomically, keys in the given order, short lists on one line."""
    text = yaml.safe_dump(record, sort_keys=False, default_flow_style=None, width=1000)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
