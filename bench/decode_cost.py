#!/usr/bin/env python3
"""Decoding cost of a packed DLD model at every depth, through ``Speech2Text``.

Real-time factor (decoding seconds / audio seconds) with CTC greedy search
and with ESPnet's beam search (CTC scorer only), the encoder's share of the
decoding time, and peak resident memory.  One model is loaded once and the
depths are interleaved utterance by utterance, so machine noise hits them
alike; ratios against full depth are the figures to compare.  Peak memory is
the process's maximum RSS after decoding at one depth, measured in a fresh
process per depth (``--memory``).

    python bench/decode_cost.py --model egs2/mini_dld/asr1/exp/asr_dld_seed0/asr_model_dld.zip \\
        --wav_scp egs2/mini_dld/asr1/dump/raw/test/wav.scp --json bench/results/decode_cost_mini_dld.json

Target (issue 4): time(k) <= (k/N + 0.15) x time(N).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import kaldiio
import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, write_json  # noqa: E402

from espnet_dld.data.kaldi_dir import read_kv  # noqa: E402


def read_scp(path: Path, max_utts: int) -> List[np.ndarray]:
    """First ``max_utts`` waveforms of a wav.scp (paths or ark offsets)."""
    waves = []
    for _, _, value in read_kv(path, kaldi_sorted=False)[:max_utts]:
        if value.rstrip().endswith("|") or ".ark:" in value:
            rate, wave = kaldiio.load_mat(value.strip())
            wave = wave.astype(np.float32) / (32768.0 if wave.dtype == np.int16 else 1.0)
        else:
            wave, rate = sf.read(value.strip(), dtype="float32")
        waves.append(wave)
    if not waves:
        raise SystemExit(f"{path}: no utterances")
    return waves


def build(model: str, mode: str, beam_size: int):
    from espnet_dld import Speech2Text

    return Speech2Text(asr_model_file=model, ctc_greedy=mode == "greedy", beam_size=beam_size, ctc_weight=1.0,
                       lm_weight=0.0, penalty=0.0, nbest=1, device="cpu")


def time_depths(model: str, waves: List[np.ndarray], depths: List[int], mode: str, beam_size: int,
                fs: int, rounds: int) -> Dict[int, Dict]:
    """Decoding and encoder seconds per depth, interleaved depth by depth for each utterance."""
    s2t = build(model, mode, beam_size)
    audio = sum(len(w) for w in waves) / fs
    s2t.set_depth(depths[0])
    s2t(torch.from_numpy(waves[0]))  # warm-up
    per_round: Dict[int, List] = {d: [] for d in depths}
    for _ in range(rounds):
        totals = {d: [0.0, 0.0] for d in depths}
        for wave in waves:
            speech = torch.from_numpy(wave)
            for d in depths:
                s2t.set_depth(d)
                s2t.timing.reset()
                s2t(speech)
                totals[d][0] += s2t.timing.decode_seconds
                totals[d][1] += s2t.timing.encoder_seconds
        for d in depths:
            per_round[d].append(totals[d])
    return summarize(per_round, audio)


def summarize(per_round: Dict[int, List], audio_seconds: float) -> Dict[int, Dict]:
    """Per depth, from ``[decode, encoder]`` seconds of each round: medians,
    real-time factor, the encoder's share, the time ratio against full depth
    (the largest depth) and the target k/N + 0.15."""
    out = {}
    for d, rounds in per_round.items():
        dec = statistics.median(r[0] for r in rounds)
        enc = statistics.median(r[1] for r in rounds)
        out[d] = {"rtf": dec / audio_seconds, "encoder_share": enc / dec, "decode_seconds": dec}
    full = max(per_round)
    for d in out:
        out[d]["ratio"] = out[d]["decode_seconds"] / out[full]["decode_seconds"]
        out[d]["target"] = d / full + 0.15
        out[d]["met"] = out[d]["ratio"] <= out[d]["target"]
    return out


def peak_rss_mb(model: str, wav_scp: str, depth: int, max_utts: int) -> float:
    """Max RSS (MB) of a fresh process that loads the model and decodes at ``depth``."""
    code = (
        "import sys, resource, torch; sys.path.insert(0, sys.argv[1]);"
        "from decode_cost import build, read_scp; from pathlib import Path;"
        "s = build(sys.argv[2], 'greedy', 1); s.set_depth(int(sys.argv[4]));"
        "[s(torch.from_numpy(w)) for w in read_scp(Path(sys.argv[3]), int(sys.argv[5]))];"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), model, wav_scp, str(depth),
                          str(max_utts)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"memory probe at depth {depth} failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="packed zip, or a .pth next to its config.yaml")
    parser.add_argument("--wav_scp", required=True)
    parser.add_argument("--max_utts", type=int, default=50)
    parser.add_argument("--depths", type=int, nargs="+", help="default: 1..N")
    parser.add_argument("--modes", nargs="+", default=["greedy", "beam"], choices=["greedy", "beam"])
    parser.add_argument("--beam_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fs", type=int, default=16000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (decoding runs one job per core)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.model).is_file():
        raise SystemExit(f"--model {args.model}: no such file")
    waves = read_scp(Path(args.wav_scp), args.max_utts)
    num_blocks = build(args.model, "greedy", 1).num_layers
    if num_blocks is None:
        raise SystemExit(f"--model {args.model}: the encoder is static; this benchmark needs a dld_* model")
    depths = args.depths or list(range(1, num_blocks + 1))
    if num_blocks not in depths:
        depths.append(num_blocks)  # ratios are against full depth
    results: Dict = {"num_blocks": num_blocks, "utterances": len(waves),
                     "audio_seconds": sum(len(w) for w in waves) / args.fs, "modes": {}}
    for mode in args.modes:
        results["modes"][mode] = time_depths(args.model, waves, depths, mode, args.beam_size, args.fs, args.rounds)
    if args.memory:
        results["peak_rss_mb"] = {d: peak_rss_mb(args.model, args.wav_scp, d, min(10, args.max_utts)) for d in depths}

    print(f"{len(waves)} utterances, {results['audio_seconds']:.1f} s of audio, {args.threads} thread(s), "
          f"median of {args.rounds} rounds")
    head = "| depth |" + "".join(f" {m} RTF | {m} time/full (target) | {m} encoder share |" for m in args.modes)
    print(head + (" peak RSS (MB) |" if args.memory else ""))
    print("|---:|" + "---:|---:|---:|" * len(args.modes) + ("---:|" if args.memory else ""))
    for d in depths:
        row = f"| {d} |"
        for m in args.modes:
            r = results["modes"][m][d]
            row += (f" {r['rtf']:.4f} | {r['ratio']:.3f} ({r['target']:.3f}{'' if r['met'] else ' missed'}) |"
                    f" {r['encoder_share']:.2f} |")
        if args.memory:
            row += f" {fmt(results['peak_rss_mb'][d], 0)} |"
        print(row)
    write_json(args.json, {"model": args.model, "wav_scp": args.wav_scp, "beam_size": args.beam_size,
                           "threads": args.threads, "rounds": args.rounds, **results})


if __name__ == "__main__":
    main()
