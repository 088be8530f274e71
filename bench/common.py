"""What every benchmark shares: the machine it ran on, the command that
produced its numbers, JSON output, and the experiment folders of a recipe's
seed runs (``exp/asr_{ld,dld}<tag>_seed<S>``, made by ``accuracy_depth.py``)."""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from espnet_dld.data.atomic import write_text_atomic

REPO = Path(__file__).resolve().parents[1]


def machine() -> Dict[str, Any]:
    """The facts a reader needs to compare our numbers with theirs."""
    return {
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def write_json(path: Optional[str], payload: Dict[str, Any]) -> None:
    """Write ``payload`` (plus machine and command) to ``path`` if given, atomically."""
    if not path:
        return
    payload = {"command": command_line(), "machine": machine(), **payload}
    out = Path(path)
    write_text_atomic(out, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")


def read_scp(path: Path) -> Dict[str, str]:
    """A Kaldi-style ``key value`` list (wav.scp, text) as a dict, in file order."""
    return dict(line.split(maxsplit=1) for line in Path(path).read_text().splitlines() if line.strip())


def suffix(tag: str, seed: int) -> str:
    """The ``--exp_suffix`` of one seed run: ``<tag>_seed<S>``."""
    return f"{tag}_seed{seed}"


def student_exp(recipe: Path, model: str, tag: str, seed: int) -> Path:
    return recipe / "exp" / f"asr_{model}{suffix(tag, seed)}"


def report_json(recipe: Path, tag: str, seed: int) -> Path:
    return recipe / "exp" / f"report{suffix(tag, seed)}" / "results.json"


def fmt(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def parse_seeds(values: Sequence[str]) -> list:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise SystemExit(f"--seeds: integers expected, got {' '.join(values)}")


def finish_depth_axes(ax, ymax: float) -> None:
    """The WER-against-depth axes every bench plot shares."""
    ax.set_xlabel("encoder depth (blocks)")
    ax.set_ylabel("WER (%)")
    ax.set_ylim(0, ymax)
    ax.grid(alpha=0.3)
    ax.legend()


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
