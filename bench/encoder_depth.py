#!/usr/bin/env python3
"""Forward time of a dynamic conformer at every depth against full depth.

Encoder sizes are ESPnet's LibriSpeech-100 conformer (12 blocks, d=256,
4 heads, FFN 1024, kernel 31, conv2d subsampling, 80 mel inputs).  All
depths are timed in one process, interleaved round by round so that machine
noise hits them alike; the figure is the median over rounds.

    python bench/encoder_depth.py [--json out.json] [--rounds 7] [--seconds 10]

Target (issue 2): time(k) / time(12) <= k/12 + 0.1 for every k.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from espnet_dld.asr.encoder.dld_conformer_encoder import DLDConformerEncoder

LIBRISPEECH_100 = dict(
    output_size=256, attention_heads=4, linear_units=1024, num_blocks=12, cnn_module_kernel=31,
    input_layer="conv2d", macaron_style=True, rel_pos_type="latest", pos_enc_layer_type="rel_pos",
    selfattention_layer_type="rel_selfattn", activation_type="swish", use_cnn_module=True,
)


def depth_row(k: int, n: int, seconds: float, full: float, fixed: float) -> dict:
    """Depth k of n against full depth: time ratio, the target k/n + 0.1, and
    the ratio of the blocks' share alone (time minus the fixed front-end cost)."""
    ratio, target = seconds / full, k / n + 0.1
    return dict(ms=round(seconds * 1000, 2), ratio=round(ratio, 4), target=round(target, 4), met=ratio <= target,
                blocks_only_ratio=round((seconds - fixed) / (full - fixed), 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="utterance length (100 frames/s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    enc = DLDConformerEncoder(80, **LIBRISPEECH_100).eval()
    n = enc.num_layers
    frames = int(args.seconds * 100)
    x = torch.randn(args.batch, frames, 80)
    lens = torch.full((args.batch,), frames)
    times = {k: [] for k in range(0, n + 1)}  # 0: subsampling + positional encoding only
    masks = (torch.arange(frames)[None, None, :] < lens[:, None, None])
    with torch.inference_mode():
        enc.set_depth(None)
        enc(x, lens)  # warm-up
        for _ in range(args.rounds):
            for k in range(n, -1, -1):
                start = time.perf_counter()
                if k == 0:
                    enc.embed(x, masks)
                else:
                    enc.set_depth(k)
                    enc(x, lens)
                times[k].append(time.perf_counter() - start)
    full = statistics.median(times[n])
    fixed = statistics.median(times[0])
    rows = []
    print(f"dld_conformer 12x256 (LibriSpeech-100 sizes), batch {args.batch} x {args.seconds:g} s, "
          f"{args.threads} threads, median of {args.rounds} rounds")
    print(f"fixed cost (conv2d subsampling + positional encoding, no block): {fixed * 1000:.1f} ms "
          f"= {fixed / full:.3f} of full depth")
    print(f"{'depth':>5} {'ms':>8} {'ratio':>6} {'target':>6} {'ok':>3} {'blocks-only ratio':>17}  blocks")
    for k in range(1, n + 1):
        t = statistics.median(times[k])
        enc.set_depth(k)
        row = depth_row(k, n, t, full, fixed)
        rows.append(dict(depth=k, layers=enc.active_layers, **row))
        print(f"{k:>5} {t * 1000:8.1f} {row['ratio']:6.3f} {row['target']:6.3f} {'yes' if row['met'] else 'NO':>3} "
              f"{row['blocks_only_ratio']:17.3f}  {enc.active_layers}")
    print(f"all depths within target: {all(r['met'] for r in rows)}")
    if args.json:
        meta = dict(machine=platform.processor() or platform.machine(), threads=args.threads,
                    torch=torch.__version__, batch=args.batch, seconds=args.seconds, rounds=args.rounds)
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, fixed_ms=round(fixed * 1000, 2), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
