#!/usr/bin/env python3
"""What an adaptive depth budget adds to each call, under a competing process.

At a tight budget the misses are depth-1 calls on short utterances, so every
fraction of a millisecond the budget's own machinery adds to a call counts.
With a busy loop on one core, this benchmark times, per call and
interleaved (the order alternating), one utterance at depth 1 through:

- ``plain``: a ``Speech2Text`` without a budget (``depth=1``), one thread;
- ``budget``: an adaptive budget held at depth 1 (a budget no depth meets)
  with an injected sensor that costs nothing and ``adapt_threads`` (two
  threads outside the call, one inside): the controller's bookkeeping and
  the per-call thread switch;
- ``budget_sensor``: the same budget with the real CPU contention sensor
  (one thread throughout): adds the sensor's readings.

    python bench/budget_overhead.py --model exp/asr_dld_conv1d_seed0/asr_model_dld.zip \\
        --wav_scp dump/raw/test/wav.scp [--seconds 0.7] [--calls 400] [--core 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from call_path import closest_utterances  # noqa: E402
from common import read_scp, write_json  # noqa: E402
from depth_budget import Competitor  # noqa: E402

from espnet_dld import Speech2Text  # noqa: E402
from espnet_dld.utils.model_zoo import unpack_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="packed model zip")
    parser.add_argument("--wav_scp", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=0.7, help="decode the utterance closest to this length")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--core", type=int, default=1, help="the competitor's core")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    logging.disable(logging.WARNING)  # the unmeetable budget's warning is the point here
    files = unpack_model(args.model)
    torch.set_num_threads(2)
    plain = Speech2Text(**files, ctc_greedy=True, device="cpu")
    key = closest_utterances(args.wav_scp, [args.seconds])[args.seconds][0]
    speech = plain.audio_input.prepare(read_scp(args.wav_scp)[key])  # at the model's rate
    competitor = Competitor(args.core)
    loaded = {"busy": 0.0}
    budget = Speech2Text(**files, ctc_greedy=True, device="cpu", rtf_budget=1e-9, adaptive=True,
                         cpu_contention=lambda: loaded["busy"], adapt_threads=True)
    sensed = Speech2Text(**files, ctc_greedy=True, device="cpu", rtf_budget=1e-9, adaptive=True,
                         adapt_threads=False)
    cases = {"plain": (lambda: plain(speech, depth=1), 1), "budget": (lambda: budget(speech), 2),
             "budget_sensor": (lambda: sensed(speech), 1)}
    times: Dict[str, List[float]] = {name: [] for name in cases}
    competitor.start()
    loaded["busy"] = 1.0
    try:
        time.sleep(0.5)
        for i in range(args.calls + 10):
            for name in (list(cases) if i % 2 == 0 else list(cases)[::-1]):
                run, threads = cases[name]
                torch.set_num_threads(threads)
                start = time.perf_counter()
                run()
                if i >= 10:
                    times[name].append(time.perf_counter() - start)
    finally:
        competitor.stop()
    assert budget.last_depth == sensed.last_depth == 1
    rows = {}
    print(f"{key} ({len(speech) / plain.sample_rate:.2f} s), depth 1, competitor on core {args.core}, "
          f"{args.calls} calls each")
    for name, ts in times.items():
        p50, p90, p95 = (float(x) * 1e3 for x in np.percentile(ts, [50, 90, 95]))
        extra = statistics.median(t - p for t, p in zip(ts, times["plain"])) * 1e3
        rows[name] = {"median_ms": round(p50, 3), "p90_ms": round(p90, 3), "p95_ms": round(p95, 3),
                      "median_extra_over_plain_ms": round(extra, 3)}
        print(f"  {name:14s} median {p50:.3f} p90 {p90:.3f} p95 {p95:.3f} ms; over plain (paired median) "
              f"{extra:+.3f} ms")
    write_json(args.json, {"model": str(args.model), "utterance": key, "calls": args.calls,
                           "competitor_core": args.core, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
