#!/usr/bin/env python3
"""Upload a packed model to a Hugging Face hub repository (created if absent).

    pyscripts/upload_hf.py exp/asr_dld/asr_model_dld.zip user/repo
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet_dld.utils.cli import run_tool


def upload(model: str, repo: str) -> None:
    from huggingface_hub import HfApi

    if not Path(model).is_file():
        raise FileNotFoundError(f"packed model {model} does not exist")
    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_file(path_or_fileobj=model, path_in_repo=Path(model).name, repo_id=repo)


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="packed model zip")
    parser.add_argument("repo", help="hub repository id, e.g. user/name")
    args = parser.parse_args(cmd)
    return run_tool("upload_hf", lambda: upload(args.model, args.repo), (ValueError, OSError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
