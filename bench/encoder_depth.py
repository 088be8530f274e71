#!/usr/bin/env python3
"""Forward time of a dynamic conformer at every depth against full depth,
for ESPnet's conv2d subsampling and the DLD authors' Conv1d front end
(``input_layer: conv1d4x``), side by side in one process.

Encoder sizes are ESPnet's LibriSpeech-100 conformer (12 blocks, d=256,
4 heads, FFN 1024, kernel 31, 80 mel inputs).  Every (depth, front end)
pair is timed once per round, the two front ends back to back at each depth
(their order alternating between rounds), so that noise from other processes
on the machine hits both alike; a ratio is time(k) / time(12) of one front
end within one round, and the figure is its median over rounds.

    python bench/encoder_depth.py [--json out.json] [--rounds 5] [--seconds 10]

Target (issues 2 and 14): time(k) / time(12) <= k/12 + 0.1 for every k.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from espnet_dld.asr.encoder.dld_conformer_encoder import DLDConformerEncoder  # noqa: E402

LIBRISPEECH_100 = dict(
    output_size=256, attention_heads=4, linear_units=1024, num_blocks=12, cnn_module_kernel=31,
    macaron_style=True, rel_pos_type="latest", pos_enc_layer_type="rel_pos",
    selfattention_layer_type="rel_selfattn", activation_type="swish", use_cnn_module=True,
)
FRONT_ENDS = ("conv2d", "conv1d4x")
TARGET_SLACK = 0.1


def summarize(times: Dict[int, Sequence[float]], active: Dict[int, List[int]]) -> Dict[str, object]:
    """Times of depths 1..N (and 0: the front end alone), in seconds, one per
    round, as ratios to full depth with the target k/N + 0.1.  A ratio is the
    median over rounds of time(k) / time(N) within the round, so that load
    which changes between rounds cancels out; ``ms`` is the median time.
    ``blocks_only`` is the ratio with the front end's time taken off both sides."""
    n = max(times)
    full, fixed = times[n], times[0]

    def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
        return statistics.median(a / b for a, b in zip(num, den))

    rows = []
    for k in range(1, n + 1):
        ratio, target = median_ratio(times[k], full), k / n + TARGET_SLACK
        rows.append(dict(depth=k, layers=active[k], ms=round(statistics.median(times[k]) * 1000, 2),
                         ratio=round(ratio, 4), target=round(target, 4), met=ratio <= target,
                         blocks_only_ratio=round(median_ratio([t - f for t, f in zip(times[k], fixed)],
                                                              [t - f for t, f in zip(full, fixed)]), 4)))
    return dict(fixed_ms=round(statistics.median(fixed) * 1000, 2), fixed_ratio=round(median_ratio(fixed, full), 4),
                all_met=all(r["met"] for r in rows), rows=rows)


def front_end_time(enc: DLDConformerEncoder, x: torch.Tensor, masks: torch.Tensor) -> float:
    start = time.perf_counter()
    enc.embed(x, masks)
    return time.perf_counter() - start


def depth_time(enc: DLDConformerEncoder, k: int, x: torch.Tensor, lens: torch.Tensor) -> float:
    enc.set_depth(k)
    start = time.perf_counter()
    enc(x, lens)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="utterance length (100 frames/s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--front_ends", nargs="+", choices=FRONT_ENDS, default=list(FRONT_ENDS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    encoders = {}
    for fe in args.front_ends:
        torch.manual_seed(0)
        encoders[fe] = DLDConformerEncoder(80, input_layer=fe, **LIBRISPEECH_100).eval()
    n = LIBRISPEECH_100["num_blocks"]
    frames = int(args.seconds * 100)
    x = torch.randn(args.batch, frames, 80)
    lens = torch.full((args.batch,), frames)
    masks = torch.arange(frames)[None, None, :] < lens[:, None, None]
    times = {fe: {k: [] for k in range(n + 1)} for fe in encoders}  # depth 0: front end + positional encoding
    with torch.inference_mode():
        for enc in encoders.values():
            enc.set_depth(None)
            enc(x, lens)  # warm-up
        for r in range(args.rounds):
            order = list(encoders) if r % 2 == 0 else list(reversed(encoders))
            for k in range(n, -1, -1):
                for fe in order:
                    enc = encoders[fe]
                    times[fe][k].append(front_end_time(enc, x, masks) if k == 0 else depth_time(enc, k, x, lens))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{fe} full depth {times[fe][n][-1] * 1000:.0f} ms" for fe in encoders), file=sys.stderr, flush=True)
    active = {k: encoders[args.front_ends[0]].set_depth(k) for k in range(1, n + 1)}
    results = {fe: summarize(times[fe], active) for fe in encoders}

    print(f"dld_conformer 12x256 (LibriSpeech-100 sizes), batch {args.batch} x {args.seconds:g} s, "
          f"{args.threads} threads, median of {args.rounds} interleaved rounds")
    for fe, res in results.items():
        print(f"\n{fe}: front end + positional encoding alone {res['fixed_ms']:.1f} ms "
              f"= {res['fixed_ratio']:.3f} of full depth")
        print(f"{'depth':>5} {'ms':>8} {'ratio':>6} {'target':>6} {'ok':>3} {'blocks-only ratio':>17}  blocks")
        for row in res["rows"]:
            print(f"{row['depth']:>5} {row['ms']:8.1f} {row['ratio']:6.3f} {row['target']:6.3f} "
                  f"{'yes' if row['met'] else 'NO':>3} {row['blocks_only_ratio']:17.3f}  {row['layers']}")
        print(f"all depths within target: {res['all_met']}")
    write_json(args.json, dict(
        settings=dict(config=LIBRISPEECH_100, input_size=80, batch=args.batch, seconds=args.seconds,
                      rounds=args.rounds, threads=args.threads, target=f"k/{n} + {TARGET_SLACK}"),
        front_ends=results))


if __name__ == "__main__":
    main()
