#!/usr/bin/env python3
"""Write the DLD student's per-depth dev table (``depth_table.yaml``) from
stage 13's decodings of the dev set, for stage 15 to pack with the model.

    python pyscripts/make_depth_table.py --decode_dir exp/asr_dld/decode_ctc_greedy/dev \\
        --dev_set dev --num_blocks 6 --input_rate 16000 \\
        --model_file exp/asr_dld/valid.loss_ctc.ave.pth --out exp/asr_dld/depth_table.yaml

Each ``depth<K>/`` of ``--decode_dir`` gives one row: WER and CER from
``score/score.json``, RTF and the blocks that ran from ``decode_stats.json``
(read as the report reads them, ``make_report.read_model``).  The file
records the model file's SHA-256 (``Speech2Text`` refuses the table beside
other weights), the dev set and the machine the RTFs were measured on.
``Speech2Text(max_wer_increase=...)`` chooses a depth from it
(docs/depth_budget.md).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from make_report import read_model

from espnet_dld.asr.depth_table import dump_depth_table
from espnet_dld.utils.checkpoint import file_sha256
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging


def make_depth_table(decode_dir: Path, dev_set: str, num_blocks: int, input_rate: float, model_file: Path,
                     out: Path, inference_tag: Optional[str] = None,
                     decode_threads: Optional[int] = None) -> Dict[str, Any]:
    """Build, write and return the table record (see espnet_dld.asr.depth_table)."""
    results = read_model(Path(decode_dir), num_blocks, input_rate)
    if not results:
        raise FileNotFoundError(f"no depth<K>/ decodings in {decode_dir}: run stage 13 (it decodes the dev set "
                                f"{dev_set} at every depth) first")
    unscored = sorted(d for d, r in results.items() if r["wer"] is None)
    if unscored:
        raise ValueError(f"{decode_dir}: depths {unscored} were decoded but not scored; rerun stage 13")
    record = {
        "num_blocks": num_blocks,
        "dev_set": dev_set,
        "num_utterances": results[max(results)].get("utterances"),
        "model_file": Path(model_file).name,
        "model_sha256": file_sha256(model_file),
        "inference_tag": inference_tag,
        "measured": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "decode_threads": decode_threads},
        "depths": {d: {"wer": r["wer"], "cer": r.get("cer"), "rtf": r.get("rtf"),
                       "active_layers": r.get("active_layers")} for d, r in sorted(results.items())},
    }
    dump_depth_table(out, record)
    return record


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--decode_dir", type=Path, required=True, help="<exp>/<inference_tag>/<dev_set>")
    parser.add_argument("--dev_set", type=str, required=True, help="name of the dev set (never a test set)")
    parser.add_argument("--num_blocks", type=int, required=True, help="N, the number of encoder blocks")
    parser.add_argument("--input_rate", type=float, default=16000, help="model-input samples per second")
    parser.add_argument("--model_file", type=Path, required=True, help="the decoded model file")
    parser.add_argument("--out", type=Path, required=True, help="the table to write")
    parser.add_argument("--inference_tag", type=str, default=None)
    parser.add_argument("--decode_threads", type=int, default=None, help="torch threads per decoding job")
    add_log_level(parser)
    return parser


def main(cmd=None) -> int:
    args = vars(get_parser().parse_args(cmd))
    setup_logging(args.pop("log_level"))

    def body() -> None:
        record = make_depth_table(**args)
        rows = ", ".join(f"{d}: {r['wer']:.2f}" for d, r in record["depths"].items())
        print(f"{args['out']}: dev WER (%) per depth on {record['dev_set']}: {rows}")

    return run_tool("make_depth_table", body)


if __name__ == "__main__":
    sys.exit(main())
