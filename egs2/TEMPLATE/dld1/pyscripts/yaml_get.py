#!/usr/bin/env python3
"""Print one value of a YAML (or JSON) file: what dld.sh asks of configs.

    pyscripts/yaml_get.py conf/train_student.yaml encoder_conf.num_blocks
    pyscripts/yaml_get.py conf/train_student.yaml model_conf.kd_temperature --default 1.0 --type float

A dotted key walks nested mappings; a missing or null value prints
``--default`` if given, else is an error naming the file and the key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from espnet_dld.utils.cli import run_tool

TYPES = {"str": str, "int": int, "float": float}


def yaml_get(path: str, key: str, default: Optional[str] = None, type: str = "str") -> Any:
    """The value at dotted ``key`` of YAML file ``path``, converted to ``type``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    value: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        if default is None:
            raise ValueError(f"{path} has no {key}")
        value = default
    return TYPES[type](value)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="YAML or JSON file")
    parser.add_argument("key", help="dotted key, e.g. encoder_conf.num_blocks")
    parser.add_argument("--default", default=None, help="printed when the key is missing or null")
    parser.add_argument("--type", choices=sorted(TYPES), default="str", help="convert the value to this type")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    return run_tool("yaml_get", lambda: print(yaml_get(args.path, args.key, args.default, args.type)))


if __name__ == "__main__":
    sys.exit(main())
