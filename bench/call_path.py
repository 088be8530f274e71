#!/usr/bin/env python3
"""Per-call cost of ``Speech2Text``'s decoding path against ESPnet's, on real
utterances, at depth 1 and full depth.

A depth budget cannot go below depth 1, so what a depth-1 call on a short
utterance costs is the floor under every latency budget; part of it is not
the model at all.  This benchmark times, per call and interleaved (the order
alternating), two ways of decoding one utterance at a set depth with CTC
best path:

- ``espnet``: ESPnet's ``Speech2Text.__call__`` under ``torch.no_grad`` (what
  ``espnet_dld.Speech2Text`` ran up to this change);
- ``short``: ``Speech2Text._recognize`` under ``torch.inference_mode`` (what it
  runs now: encode, best path, token conversion, without ESPnet's wrapper).

Both decode the same way and return the same entries (a test checks it); a
ratio is the median over calls of short / espnet, each pair taken back to back.

    python bench/call_path.py --model exp/asr_dld_conv1d_seed0/asr_model_dld.zip \\
        --wav_scp dump/raw/test/wav.scp [--durations 0.7 3.0] [--calls 200] [--threads 1 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import read_scp, write_json  # noqa: E402

from espnet_dld import Speech2Text  # noqa: E402  (first: it quiets ESPnet's import-time messages)
from espnet2.bin import asr_inference as espnet_inference  # noqa: E402


def closest_utterances(wav_scp: Path, durations: List[float]) -> Dict[float, tuple]:
    """For each wanted duration, the (key, samples, seconds) of the utterance closest to it."""
    waves = {}
    for key, path in read_scp(wav_scp).items():
        data, rate = sf.read(path, dtype="float32")
        waves[key] = (data, data.shape[0] / rate)
    if not waves:
        raise SystemExit(f"{wav_scp}: no utterances")
    picked = {}
    for want in durations:
        key = min(waves, key=lambda k: abs(waves[k][1] - want))
        picked[want] = (key, waves[key][0], waves[key][1])
    return picked


def time_paths(s2t: Speech2Text, speech: np.ndarray, depth: int, calls: int) -> Dict[str, object]:
    """Median ms of each path and of the whole ``s2t(speech, depth=...)`` call, and the median ratio."""
    def espnet() -> None:
        with torch.no_grad():
            espnet_inference.Speech2Text.__call__(s2t, speech)

    def short() -> None:
        with torch.inference_mode():
            s2t._recognize(speech)

    s2t.set_depth(depth)
    times: Dict[str, List[float]] = {"espnet": [], "short": []}
    for i in range(calls + 10):
        order = (("espnet", espnet), ("short", short)) if i % 2 == 0 else (("short", short), ("espnet", espnet))
        for name, run in order:
            start = time.perf_counter()
            run()
            if i >= 10:  # warm-up calls are not kept
                times[name].append(time.perf_counter() - start)
    s2t.set_depth(None)
    whole = []
    for _ in range(calls):
        start = time.perf_counter()
        s2t(speech, depth=depth)
        whole.append(time.perf_counter() - start)
    return {
        "espnet_ms": round(statistics.median(times["espnet"]) * 1e3, 3),
        "short_ms": round(statistics.median(times["short"]) * 1e3, 3),
        "ratio": round(statistics.median(s / e for s, e in zip(times["short"], times["espnet"])), 4),
        "saved_ms": round(statistics.median(e - s for s, e in zip(times["short"], times["espnet"])) * 1e3, 3),
        "speech2text_call_ms": round(statistics.median(whole) * 1e3, 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="packed model zip")
    parser.add_argument("--wav_scp", type=Path, required=True)
    parser.add_argument("--durations", type=float, nargs="+", default=[0.7, 3.0],
                        help="decode the utterance closest to each of these lengths (seconds)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per path and case")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    s2t = Speech2Text.from_pretrained(str(args.model), ctc_greedy=True, device="cpu")
    utts = closest_utterances(args.wav_scp, args.durations)
    rows = []
    print(f"{'threads':>7} {'utterance':>24} {'s':>5} {'depth':>5} {'espnet ms':>9} {'short ms':>9} "
          f"{'saved ms':>8} {'ratio':>6} {'call ms':>8}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for want, (key, speech, seconds) in utts.items():
            for depth in (1, s2t.num_layers):
                row = dict(threads=threads, utterance=key, seconds=round(seconds, 3), depth=depth,
                           **time_paths(s2t, speech, depth, args.calls))
                rows.append(row)
                print(f"{threads:>7} {key:>24} {seconds:5.2f} {depth:5d} {row['espnet_ms']:9.3f} "
                      f"{row['short_ms']:9.3f} {row['saved_ms']:8.3f} {row['ratio']:6.3f} "
                      f"{row['speech2text_call_ms']:8.3f}")
    write_json(args.json, {"model": str(args.model), "wav_scp": str(args.wav_scp), "calls": args.calls,
                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
