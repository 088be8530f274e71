#!/usr/bin/env python3
"""How well the depth budget's calibrated cost model predicts real
utterances: the three-term model (per call, per audio second, per block and
audio second) against the four-term one that adds a per-block cost per call.

One process loads a packed DLD model, calibrates both models from the same
timings (``Speech2Text.calibrate_cost``'s generated input of the test set's
mean length and half of it, every depth), then decodes each real utterance
of ``--wav_scp`` at a random depth (``--sweeps`` times) and prints, per
model, the median of measured over predicted time per duration bin and the
ratio's 90th percentile over its median.  What the load estimate must absorb
is that spread: a systematic error by duration (short utterances slower than
predicted) costs budget misses or depth that no quantile can win back.

    python bench/cost_model_fit.py --model egs2/an4_dld/asr1/exp/asr_dld_conv1d_seed0/asr_model_dld.zip \\
        --wav_scp egs2/an4_dld/asr1/dump/raw/train_dev/wav.scp --json bench/results/cost_model_fit_an4_conv1d.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, read_scp, write_json  # noqa: E402

sys.path.insert(0, str(REPO))

BINS = ((0.0, 1.2), (1.2, 2.0), (2.0, 3.0), (3.0, float("inf")))


def spread(cost, measured: List[Tuple[int, float, float]]) -> Dict:
    """Measured over predicted time: median per duration bin, and the 90th percentile over the median."""
    ratios = np.array([s / cost.unloaded_seconds(d, dur) for d, dur, s in measured])
    durations = np.array([dur for _, dur, _ in measured])
    by_bin = {}
    for low, high in BINS:
        inside = (durations >= low) & (durations < high)
        if inside.any():
            by_bin[f"{low:g}-{high:g} s"] = float(np.median(ratios[inside]))
    return {"coefficients_ms": {k: 1000 * v for k, v in cost.as_dict().items() if k.endswith("_s")},
            "median_ratio_by_duration": by_bin,
            "bin_spread_max_over_min": max(by_bin.values()) / min(by_bin.values()),
            "p90_over_p50": float(np.percentile(ratios, 90) / np.median(ratios))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="packed DLD model zip")
    parser.add_argument("--wav_scp", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the decoder")
    parser.add_argument("--sweeps", type=int, default=2, help="decodes of each utterance, each at a random depth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()

    from espnet_dld import Speech2Text
    from espnet_dld.asr.depth_budget import CALIBRATION_PASSES, CostModel
    from espnet_dld.utils.model_zoo import unpack_model

    torch.set_num_threads(args.threads)
    s2t = Speech2Text(**unpack_model(args.model), ctc_greedy=True, device="cpu")
    paths = read_scp(args.wav_scp).values()
    utts = [s2t.audio_input.prepare(*sf.read(path.strip(), dtype="float32")) for path in paths]
    mean = statistics.fmean(len(u) / s2t.sample_rate for u in utts)
    four = s2t.calibrate_cost(mean, passes=CALIBRATION_PASSES)
    three = CostModel.fit(s2t.num_layers, s2t.calibration_points, block_call_term=False)
    rng = np.random.default_rng(args.seed)
    measured = []
    for _ in range(args.sweeps):
        for speech in utts:
            depth = int(rng.integers(1, s2t.num_layers + 1))
            start = time.perf_counter()
            s2t(speech, depth=depth)
            measured.append((depth, len(speech) / s2t.sample_rate, time.perf_counter() - start))
    results = {"three_terms": spread(three, measured), "four_terms": spread(four, measured)}
    print(f"{len(utts)} utterances (mean {mean:.2f} s) x {args.sweeps} at random depths, {args.threads} threads")
    print("| cost model | median measured/predicted by duration | bins max/min | p90/p50 |")
    print("|---|---|---:|---:|")
    for name, r in results.items():
        bins = ", ".join(f"{k}: {v:.2f}" for k, v in r["median_ratio_by_duration"].items())
        print(f"| {name.replace('_', ' ')} | {bins} | {r['bin_spread_max_over_min']:.2f} | {r['p90_over_p50']:.2f} |")
    write_json(args.json, {"model": str(args.model), "wav_scp": str(args.wav_scp), "threads": args.threads,
                           "utterances": len(utts), "sweeps": args.sweeps, "mean_duration_s": mean,
                           "calibration_points": s2t.calibration_points, "results": results})


if __name__ == "__main__":
    main()
