#!/usr/bin/env python3
"""Merge the output folders of parallel decoding jobs into one.

``dld.sh`` splits a test set over ``--inference_nj`` jobs; each writes the
same tree (``depth<K>/1best_recog/text``, ``decode_stats.json``, ...).  Text
files are concatenated and sorted by utterance id; ``decode_stats.json``
counters are summed (seconds are summed job time, so real-time factors stay
per-utterance costs).

    python pyscripts/merge_decode_dirs.py --out_dir DIR JOBDIR [JOBDIR ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_dld.data.atomic import write_text_atomic
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

SUMMED = ("utterances", "input_samples", "decode_seconds", "encoder_seconds")


def merge_stats(stats: List[Dict], where: str) -> Dict:
    """Sum the counters of several jobs' decode_stats.json (same blocks)."""
    layers = {json.dumps(s.get("active_layers")) for s in stats}
    if len(layers) != 1:
        raise ValueError(f"{where}: jobs decoded with different encoder blocks {sorted(layers)}")
    merged = {k: v for k, v in stats[0].items() if k not in SUMMED}
    for key in SUMMED:
        merged[key] = sum(s.get(key, 0) for s in stats)
    merged["decode_seconds"] = round(merged["decode_seconds"], 6)
    merged["encoder_seconds"] = round(merged["encoder_seconds"], 6)
    merged["jobs"] = len(stats)
    return merged


def merge_decode_dirs(job_dirs: Sequence[Path], out_dir: Path) -> List[Path]:
    """Merge every file found under the job folders into ``out_dir``."""
    job_dirs = [Path(d) for d in job_dirs]
    for d in job_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"decoding job folder {d} does not exist (did that job fail? see its log)")
    rel_paths = sorted({p.relative_to(d) for d in job_dirs for p in d.rglob("*") if p.is_file()})
    if not rel_paths:
        raise FileNotFoundError(f"no decoding output under {', '.join(map(str, job_dirs))}")
    written = []
    for rel in rel_paths:
        present = [d / rel for d in job_dirs if (d / rel).is_file()]
        if len(present) != len(job_dirs):
            missing = [str(d) for d in job_dirs if not (d / rel).is_file()]
            raise FileNotFoundError(f"{rel} is missing from decoding job folder(s) {missing}")
        if rel.name.endswith(".json"):
            merged = merge_stats([json.loads(p.read_text()) for p in present], str(rel))
            write_text_atomic(out_dir / rel, json.dumps(merged, indent=1) + "\n")
        else:
            lines = [line for p in present for line in p.read_text(encoding="utf-8").splitlines() if line]
            keys = [line.split(maxsplit=1)[0] for line in lines]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{rel}: an utterance was decoded by more than one job")
            lines.sort(key=lambda line: line.split(maxsplit=1)[0])
            write_text_atomic(out_dir / rel, "".join(line + "\n" for line in lines))
        written.append(out_dir / rel)
    return written


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True, type=Path)
    parser.add_argument("job_dirs", nargs="+", type=Path)
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)

    def run() -> None:
        written = merge_decode_dirs(args.job_dirs, args.out_dir)
        logging.info("merged %d job folder(s) into %s (%d files)", len(args.job_dirs), args.out_dir, len(written))

    return run_tool("merge_decode_dirs", run)


if __name__ == "__main__":
    sys.exit(main())
