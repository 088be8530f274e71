#!/usr/bin/env python3
"""Training cost of DLD against the LD baseline.

Two measurements:

1. **Time to LD's best dev error**, from the seed runs' ``train.log``
   (ESPnet's per-epoch results: wall-clock of the epoch's training and
   validation, and the validation CTC character error rate at full depth,
   the dev error ESPnet measures during training).  For each seed: LD's best
   dev CER and the wall-clock LD took to first reach it; the wall-clock DLD
   took to first reach the same CER (or "not reached").  Wall-clock in the
   logs depends on what else the machine ran, so the ratio is also given in
   epochs x the step-time ratio of measurement 2.
2. **Step cost**: one DLD training step (student forward + backward + the
   frozen teacher's forward) against one LD step (the same student without
   the teacher) on real batches of the recipe's training data, interleaved
   in one process; the teacher's share of a DLD step.

    python bench/training_cost.py --recipe egs2/mini_dld/asr1 --seeds 0 1 2 \\
        --json bench/results/training_cost_mini_dld.json

Target (issue 4): DLD reaches LD's best dev error in <= 67 % of LD's time.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, parse_seeds, student_exp, write_json  # noqa: E402

_EPOCH = re.compile(r"(\d+)epoch results: \[train\] (.*?), \[valid\] (.*)$")
_DURATION = re.compile(r"(?:(\d+) hours?(?:,| and)? ?)?(?:(\d+) minutes?(?: and)? ?)?(?:([\d.]+) seconds)?")


def seconds(text: str) -> float:
    """ESPnet's humanfriendly durations: '23.14 seconds', '1 minute and 47.33 seconds'."""
    m = _DURATION.fullmatch(text.strip())
    if not m or not any(m.groups()):
        raise ValueError(f"cannot read duration {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mi + s


def _fields(text: str) -> Dict[str, str]:
    out = {}
    for part in re.split(r", (?=\w+=)", text):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def read_epochs(train_log: Path) -> List[Dict]:
    """Per epoch: training seconds, validation seconds, valid cer_ctc, seconds per step."""
    if not train_log.is_file():
        raise SystemExit(f"{train_log} is missing: train the seed first (bench/accuracy_depth.py --run)")
    epochs: Dict[int, Dict] = {}
    for line in train_log.read_text(errors="replace").splitlines():
        m = _EPOCH.search(line)
        if not m:
            continue
        train, valid = _fields(m.group(2)), _fields(m.group(3))
        epochs[int(m.group(1))] = {  # a resumed run logs again from its checkpoint: keep the last
            "epoch": int(m.group(1)),
            "train_seconds": seconds(train["time"]),
            "valid_seconds": seconds(valid["time"]),
            "step_seconds": float(train["train_time"]),
            "valid_cer": float(valid["cer_ctc"]),
        }
    if not epochs:
        raise SystemExit(f"{train_log}: no 'Nepoch results' lines")
    return [epochs[e] for e in sorted(epochs)]


def time_to(epochs: List[Dict], cer: float) -> Optional[Dict]:
    """Wall-clock and epochs until the dev CER first reaches ``cer``."""
    total = 0.0
    for e in epochs:
        total += e["train_seconds"] + e["valid_seconds"]
        if e["valid_cer"] <= cer + 1e-9:
            return {"epochs": e["epoch"], "seconds": total}
    return None


def convergence(recipe: Path, seeds: List[int], tag: str, ld_tag: str) -> List[Dict]:
    rows = []
    for seed in seeds:
        ld = read_epochs(student_exp(recipe, "ld", ld_tag, seed) / "train.log")
        dld = read_epochs(student_exp(recipe, "dld", tag, seed) / "train.log")
        best = min(e["valid_cer"] for e in ld)
        row = {"seed": seed, "ld_best_cer": best, "ld": time_to(ld, best), "dld": time_to(dld, best),
               "dld_best_cer": min(e["valid_cer"] for e in dld),
               "ld_step_seconds": statistics.median(e["step_seconds"] for e in ld),
               "dld_step_seconds": statistics.median(e["step_seconds"] for e in dld)}
        if row["dld"] is not None:
            row["wallclock_ratio"] = row["dld"]["seconds"] / row["ld"]["seconds"]
            row["epoch_ratio"] = row["dld"]["epochs"] / row["ld"]["epochs"]
        rows.append(row)
    return rows


# -- step cost -----------------------------------------------------------------
def real_batches(recipe: Path, exp: Path, batches: int, batch_size: int):
    """The experiment's model (built as for training) and its first ``batches``
    training batches, read by ESPnet's loader from the config's data options."""
    import espnet_dld.tasks.asr  # noqa: F401
    from espnet_dld.tasks.asr import ASRTask

    with contextlib.chdir(recipe):  # the config's paths are relative to the recipe
        model, args = ASRTask.build_model_from_file(exp / "config.yaml", None, "cpu")
        data = [tuple(x) for x in args.train_data_path_and_name_and_type]
        loader = ASRTask.build_streaming_iterator(
            data_path_and_name_and_type=data, batch_size=batch_size, dtype="float32", key_file=None,
            num_workers=0, preprocess_fn=ASRTask.build_preprocess_fn(args, False),
            collate_fn=ASRTask.build_collate_fn(args, False), allow_variable_data_keys=False, inference=False,
        )
        real = []
        for _, batch in loader:
            real.append(batch)
            if len(real) == batches:
                break
    return model, args, real


def step_cost(recipe: Path, exp: Path, batches: int, rounds: int, batch_size: int) -> Dict:
    """Median seconds of a DLD step, an LD step and the teacher's forward."""
    model, _, real = real_batches(recipe, exp, batches, batch_size)
    teacher = model.teacher
    if teacher is None:
        raise SystemExit(f"{exp}: not a DLD student with a teacher (model_conf.teacher_model)")
    model.train()
    times: Dict[str, List[float]] = {"dld": [], "ld": [], "teacher": []}

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def train_step() -> None:
        loss = model(**b)[0]
        loss.backward()
        model.zero_grad(set_to_none=True)

    def teacher_forward() -> None:
        model.teacher_ctc_logits(b["speech"].clone(), b["speech_lengths"])

    b = real[0]  # warm-up: first calls allocate
    train_step()
    teacher_forward()
    for r in range(rounds):
        for i, b in enumerate(real):
            torch.manual_seed(1000 * r + i)  # LD and DLD steps draw the same gates
            t_dld = timed(train_step)
            object.__setattr__(model, "_teacher", None)
            torch.manual_seed(1000 * r + i)
            t_ld = timed(train_step)
            object.__setattr__(model, "_teacher", teacher)
            times["dld"].append(t_dld)
            times["ld"].append(t_ld)
            times["teacher"].append(timed(teacher_forward))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "batches": len(real), "rounds": rounds, "batch_size": batch_size,
        "dld_step_seconds": med["dld"], "ld_step_seconds": med["ld"], "teacher_forward_seconds": med["teacher"],
        "dld_over_ld": med["dld"] / med["ld"], "teacher_share_of_dld_step": med["teacher"] / med["dld"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--tag", default="", help="exp-suffix prefix of the DLD runs")
    parser.add_argument("--ld_tag", default=None, help="exp-suffix prefix of the LD runs (default: --tag)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Path(args.recipe).resolve()
    seeds = parse_seeds(args.seeds)
    ld_tag = args.tag if args.ld_tag is None else args.ld_tag

    rows = convergence(recipe, seeds, args.tag, ld_tag)
    step = step_cost(recipe, student_exp(recipe, "dld", args.tag, seeds[0]), args.batches, args.rounds,
                     args.batch_size)
    print(f"## {recipe.parent.name}: time to LD's best dev CER (full depth), from train.log")
    print("| seed | LD best dev CER | LD: epochs / s | DLD: epochs / s | DLD/LD wall-clock | DLD/LD epochs x step ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        dld = "not reached" if r["dld"] is None else f"{r['dld']['epochs']} / {r['dld']['seconds']:.0f}"
        est = None if r["dld"] is None else r["epoch_ratio"] * step["dld_over_ld"]
        r["estimated_ratio"] = est
        print(f"| {r['seed']} | {r['ld_best_cer']:.3f} | {r['ld']['epochs']} / {r['ld']['seconds']:.0f} | {dld} | "
              f"{fmt(r.get('wallclock_ratio'), 3)} | {fmt(est, 3)} |")
    reached = [r for r in rows if r["dld"] is not None]
    summary = {
        "seeds_reached": f"{len(reached)}/{len(rows)}",
        "mean_wallclock_ratio": statistics.fmean(r["wallclock_ratio"] for r in reached) if reached else None,
        "mean_estimated_ratio": statistics.fmean(r["estimated_ratio"] for r in reached) if reached else None,
    }
    print(f"\nDLD reached LD's best dev CER in {summary['seeds_reached']} seeds; mean DLD/LD wall-clock "
          f"{fmt(summary['mean_wallclock_ratio'], 3)}, epochs x step ratio {fmt(summary['mean_estimated_ratio'], 3)}"
          " (target <= 0.67)")
    print(f"\n## step cost ({step['batches']} real batches of {args.batch_size} x {args.rounds} rounds, "
          f"{args.threads} threads): DLD step {step['dld_step_seconds']:.3f} s, LD step {step['ld_step_seconds']:.3f} s, "
          f"DLD/LD {step['dld_over_ld']:.3f}; teacher forward {step['teacher_forward_seconds']:.3f} s = "
          f"{100 * step['teacher_share_of_dld_step']:.1f} % of a DLD step")
    write_json(args.json, {"recipe": str(Path(args.recipe)), "tag": args.tag, "ld_tag": ld_tag,
                           "convergence": rows, "summary": summary, "step_cost": step})


if __name__ == "__main__":
    main()
