"""Run a recipe of egs2/ in a scratch copy, as a user would run it in place."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "dld1"
PYSCRIPTS = TEMPLATE / "pyscripts"  # the stage helpers dld.sh runs
RUN_OUTPUTS = {"data", "dump", "exp", "downloads"}  # made by running the recipe, not part of it


def copy_recipe(name: str, dest: Path) -> Path:
    """Copy egs2/<name>/asr1 to ``dest``; the shared pipeline stays linked."""
    src = REPO / "egs2" / name / "asr1"
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in RUN_OUTPUTS:
            continue
        if item.is_symlink():
            (dest / item.name).symlink_to(TEMPLATE / item.name)
        elif item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    return dest


def run_recipe(recipe: Path, args: List[str], timeout: int = 1800, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(["./run.sh"] + args, cwd=recipe, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
