#!/usr/bin/env python3
"""Score one decoding: corpus-level WER (and CER) of a hypothesis text file.

    pyscripts/score.py --ref data/test/text --hyp <decode_dir>/1best_recog/text --out_dir <decode_dir>/score

writes ``score.json`` (read by ``pyscripts/make_report.py``) and a readable
``result.txt``; how the numbers are computed: :mod:`espnet_dld.utils.scoring`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet2.utils.types import str2bool

from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging
from espnet_dld.utils.scoring import score_to_dir


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Corpus-level WER/CER of a hypothesis text file (espnet-dld)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref", type=str, required=True, help="reference Kaldi text (utt_id words...)")
    parser.add_argument("--hyp", type=str, required=True, help="hypothesis text, e.g. <decode_dir>/1best_recog/text")
    parser.add_argument("--out_dir", type=str, required=True, help="writes score.json and result.txt here")
    parser.add_argument("--cer", type=str2bool, default=False,
                        help="also compute the character error rate (spaces between words count)")
    parser.add_argument("--lowercase", type=str2bool, default=False,
                        help="lower-case reference and hypothesis before scoring")
    parser.add_argument("--num_worst", type=int, default=20,
                        help="number of worst utterances listed in result.txt")
    add_log_level(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    summary = score_to_dir(args.ref, args.hyp, args.out_dir, args.cer, args.lowercase, args.num_worst)
    cer = f", CER {summary['cer']:.2f}%" if summary["cer"] is not None else ""
    print(f"{args.hyp}: WER {summary['wer']:.2f}%{cer} ({summary['utterances']} utts, "
          f"{summary['ref_words']} words) -> {Path(args.out_dir) / 'score.json'}")


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("score", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
