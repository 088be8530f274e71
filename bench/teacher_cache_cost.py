#!/usr/bin/env python3
"""What the teacher-posterior cache saves in DLD training, and what it costs.

Three measurements on a recipe whose DLD students were trained both ways
(``exp/asr_dld_seed<S>``: online teacher; ``exp/asr_dld<tag>_seed<S>``: cached,
e.g. by ``bench/accuracy_depth.py --tag _cached --ld_tag "" --run_args
"--teacher_posteriors cached"``):

1. **Step cost**, interleaved in one process on the same real batches: a
   DLD step with the online teacher (teacher forward + student forward and
   backward), a DLD step from the cache (the batch carries the stored top-k
   posteriors; no teacher), and an LD step (no KL term at all).
2. **One-off cost**: the dump of the training set timed in this run (into a
   scratch directory) and the cache's size on disk.
3. **Whole runs**: the training wall-clock of every seed's online and cached
   runs from ESPnet's ``train.log`` (per-epoch times; the runs were not
   interleaved, so machine load differs between them: the step ratio of 1 is
   the controlled figure).

    python bench/teacher_cache_cost.py --recipe egs2/mini_dld/asr1 --seeds 0 1 2 --threads 1 \\
        --online_json bench/results/accuracy_mini_dld.json \\
        --cached_json bench/results/ablation_mini_dld_cached.json \\
        --json bench/results/teacher_cache_cost_mini_dld.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, parse_seeds, student_exp, write_json  # noqa: E402
from training_cost import read_epochs, real_batches  # noqa: E402

from espnet_dld.asr.teacher_cache import CACHE_DATA_NAMES  # noqa: E402


def step_cost(recipe: Path, exp: Path, batches: int, rounds: int, batch_size: int) -> Dict:
    """Median seconds of an online-teacher DLD step, a cached DLD step and an LD step."""
    from espnet_dld.asr.teacher import load_teacher

    model, args, real = real_batches(recipe, exp, batches, batch_size)
    conf = args.model_conf
    if not conf.get("teacher_cache"):
        raise SystemExit(f"{exp}: not trained from a teacher-posterior cache (model_conf.teacher_cache)")
    with contextlib.chdir(recipe):
        teacher = load_teacher(conf.get("teacher_config"), conf["teacher_model"])
    cache = str(recipe / conf["teacher_cache"])
    model.train()

    def use(mode: str) -> None:
        object.__setattr__(model, "_teacher", teacher if mode == "online" else None)
        model.teacher_cache = cache if mode == "cached" else None
        model.kd_weight = 0.0 if mode == "ld" else float(conf.get("kd_weight", 1.0))

    def step(batch: Dict) -> float:
        start = time.perf_counter()
        loss = model(**dict(batch))[0]
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def batch_for(mode: str, batch: Dict) -> Dict:
        if mode == "cached":
            return batch
        return {k: v for k, v in batch.items() if not k.startswith(CACHE_DATA_NAMES)}

    modes = ("online", "cached", "ld")
    for mode in modes:  # warm-up: first calls allocate
        use(mode)
        step(batch_for(mode, real[0]))
    times: Dict[str, List[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for i, b in enumerate(real):
            for mode in modes:
                use(mode)
                torch.manual_seed(1000 * r + i)  # every mode draws the same gates
                times[mode].append(step(batch_for(mode, b)))
    return {"batches": len(real), "rounds": rounds, "batch_size": batch_size, **step_ratios(times)}


def step_ratios(times: Dict[str, List[float]]) -> Dict[str, float]:
    """Median step seconds per mode (online, cached, ld) and their ratios."""
    med = {m: statistics.median(v) for m, v in times.items()}
    return {**{f"{m}_step_seconds": med[m] for m in ("online", "cached", "ld")},
            "cached_over_online": med["cached"] / med["online"], "online_over_ld": med["online"] / med["ld"],
            "cached_over_ld": med["cached"] / med["ld"]}


def dump_cost(recipe: Path, exp: Path) -> Dict:
    """Dump the training set again into a scratch cache and time it; size of the recipe's cache."""
    from espnet_dld.bin.dump_teacher_posteriors import dump

    conf = yaml.safe_load((exp / "config.yaml").read_text())
    model_conf = conf["model_conf"]
    cache = recipe / model_conf["teacher_cache"]
    meta = yaml.safe_load((cache / "meta.yaml").read_text())
    speech = next(e for e in conf["train_data_path_and_name_and_type"] if e[1] == "speech")
    train_set = Path(next(e for e in conf["train_data_path_and_name_and_type"] if e[1] == CACHE_DATA_NAMES[0])[0]).parent.name
    scratch = Path(tempfile.mkdtemp(prefix="cache_bench"))
    try:
        with contextlib.chdir(recipe):
            start = time.perf_counter()
            dump(model_conf.get("teacher_config"), model_conf["teacher_model"], ",".join(speech), str(scratch),
                 "train", topk=meta["topk"], temperature=meta["temperature"])
            seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    stats = yaml.safe_load((cache / train_set / "stats.yaml").read_text())
    size = sum(f.stat().st_size for f in (cache / train_set).glob("*.ark"))
    return {"cache": str(cache.relative_to(recipe)), "topk": meta["topk"], "vocabulary": len(meta["token_list"]),
            "train_utterances": stats["utterances"], "train_frames": stats["frames"],
            "dump_seconds_with_startup": seconds, "train_cache_bytes": size,
            "mean_residual_mass": stats["mean_residual_mass"], "max_residual_mass": stats["max_residual_mass"]}


def run_times(recipe: Path, seeds: List[int], tag: str) -> List[Dict]:
    rows = []
    for seed in seeds:
        row = {"seed": seed}
        for name, t in (("online", ""), ("cached", tag)):
            epochs = read_epochs(student_exp(recipe, "dld", t, seed) / "train.log")
            row[name] = {"epochs": len(epochs), "seconds": sum(e["train_seconds"] + e["valid_seconds"] for e in epochs)}
        row["cached_over_online"] = row["cached"]["seconds"] / row["online"]["seconds"]
        rows.append(row)
    return rows


def wer_comparison(online_json: str, cached_json: str) -> List[Dict]:
    """DLD's WER per depth, online teacher against cache, from two
    ``accuracy_depth.py`` JSON files: means, spreads, and the difference in
    units of the larger of the two standard deviations."""
    online = json.loads(Path(online_json).read_text())["recipes"]
    cached = json.loads(Path(cached_json).read_text())["recipes"]
    rows = []
    for recipe, agg in cached.items():
        for test_set, entry in agg["test_sets"].items():
            for d in range(1, agg["num_blocks"] + 1):
                o, c = online[recipe]["test_sets"][test_set]["dld"][str(d)], entry["dld"][str(d)]
                spread = max(o["std"], c["std"])
                rows.append({"recipe": recipe, "test_set": test_set, "depth": d, "online": o, "cached": c,
                             "diff": c["mean"] - o["mean"],
                             "diff_in_std": (c["mean"] - o["mean"]) / spread if spread > 0 else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--tag", default="_cached", help="exp-suffix prefix of the cached DLD runs")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--online_json", help="accuracy_depth.py JSON of the online-teacher seeds (WER comparison)")
    parser.add_argument("--cached_json", help="accuracy_depth.py JSON of the cached seeds (--tag _cached)")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Path(args.recipe).resolve()
    seeds = parse_seeds(args.seeds)
    cached_exp = student_exp(recipe, "dld", args.tag, seeds[0])

    step = step_cost(recipe, cached_exp, args.batches, args.rounds, args.batch_size)
    once = dump_cost(recipe, cached_exp)
    runs = run_times(recipe, seeds, args.tag)
    name = recipe.parent.name
    print(f"## {name}: DLD training step, online teacher vs teacher-posterior cache "
          f"({step['batches']} real batches of {args.batch_size} x {args.rounds} rounds, {args.threads} threads)")
    print("| step | median s | / online DLD step |")
    print("|---|---:|---:|")
    for mode, label in (("online", "DLD, online teacher"), ("cached", "DLD, cached posteriors"), ("ld", "LD (no KL)")):
        print(f"| {label} | {step[f'{mode}_step_seconds']:.3f} | {step[f'{mode}_step_seconds'] / step['online_step_seconds']:.3f} |")
    print(f"\none-off dump of the training set ({once['train_utterances']} utterances, {once['train_frames']} frames, "
          f"top {once['topk']} of {once['vocabulary']} tokens): {once['dump_seconds_with_startup']:.1f} s with start-up; "
          f"{once['train_cache_bytes'] / 1e6:.2f} MB on disk; teacher mass outside the top {once['topk']}: "
          f"mean {once['mean_residual_mass']:.1e}, max {once['max_residual_mass']:.1e}")
    print("\n| seed | online: epochs / s | cached: epochs / s | cached / online |")
    print("|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['seed']} | {r['online']['epochs']} / {r['online']['seconds']:.0f} | "
              f"{r['cached']['epochs']} / {r['cached']['seconds']:.0f} | {fmt(r['cached_over_online'], 3)} |")
    mean_ratio = statistics.fmean(r["cached_over_online"] for r in runs)
    print(f"\nwhole runs: cached/online training wall-clock {mean_ratio:.3f} (mean over seeds; runs not interleaved)")
    wers = []
    if args.online_json and args.cached_json:
        wers = wer_comparison(args.online_json, args.cached_json)
        print("\n| set | depth | DLD online teacher | DLD cached posteriors | cached - online | / larger std |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in wers:
            print(f"| {r['recipe']}/{r['test_set']} | {r['depth']} | {r['online']['mean']:.1f} ± {r['online']['std']:.1f} | "
                  f"{r['cached']['mean']:.1f} ± {r['cached']['std']:.1f} | {r['diff']:+.1f} | {fmt(r['diff_in_std'], 2)} |")
    write_json(args.json, {"recipe": str(Path(args.recipe)), "tag": args.tag, "step_cost": step, "dump": once,
                           "runs": runs, "mean_run_ratio": mean_ratio, "wer": wers})


if __name__ == "__main__":
    main()
