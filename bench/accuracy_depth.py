#!/usr/bin/env python3
"""WER (or CER, ``--metric cer``) against encoder depth for the teacher, LD
and DLD, over training seeds.

One recipe run trains one teacher; the LD and DLD students are trained once
per seed (``--student_args "--seed S"``) into ``exp/asr_{ld,dld}<tag>_seed<S>``
and each seed gets its own report (``exp/report<tag>_seed<S>/results.json``)
and packed DLD model (``exp/asr_dld<tag>_seed<S>/asr_model_dld.zip``, which
``decode_cost.py`` times).
This script runs what is missing through the recipe's ``run.sh`` (stages are
idempotent, so finished seeds cost a few seconds) and aggregates the reports:
mean, sample standard deviation, min and max over seeds at every depth, the
issue-4 targets checked on the means, a table and a plot with error bars.

    python bench/accuracy_depth.py --recipe egs2/mini_dld/asr1 --seeds 0 1 2 \\
        --run --json bench/results/accuracy_mini_dld.json
    # an ablation: other options for both students, under their own tag
    python bench/accuracy_depth.py --recipe egs2/mini_dld/asr1 --seeds 0 1 2 --run \\
        --tag _kdT2 --ld_tag "" --run_args "--student_args '--model_conf kd_temperature=2.0'"

Targets (issues 4 and 15), on the means over seeds: DLD <= LD at every
depth; at depths <= N/4, DLD at least 10 % lower (relative) than LD; at full
depth DLD <= LD and within 5 % (relative) of the teacher; DLD within 1.5x the
teacher's error down to depth N/2.  ``--static exp/asr_static3 ...`` adds
models trained alone at a fixed depth (their full-depth scores) to the table
and the plot.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    finish_depth_axes, fmt, parse_seeds, report_json, save_figure, student_exp, suffix, write_json,
)


def share_ld(recipe: Path, seeds: List[int], tag: str, ld_tag: str) -> None:
    """Point ``asr_ld<tag>_seed<S>`` at ``asr_ld<ld_tag>_seed<S>``: options that
    only change the KL term leave the LD baseline (no teacher) as it is, so an
    ablation of them need not train it again."""
    for seed in seeds:
        source = student_exp(recipe, "ld", ld_tag, seed)
        link = student_exp(recipe, "ld", tag, seed)
        if not (source / "valid.loss_ctc.ave.pth").is_file() and not (source / "config.yaml").is_file():
            raise SystemExit(f"--ld_tag {ld_tag!r}: {source} is not trained; run the seeds without --ld_tag first")
        if link.is_symlink() or not link.exists():
            if link.is_symlink():
                link.unlink()
            link.symlink_to(source.name)


def run_recipe(recipe: Path, seeds: List[int], tag: str, run_args: str, ld_tag: Optional[str]) -> None:
    """Train what is missing: data + teacher once, then the students per seed."""
    extra = shlex.split(run_args)
    if ld_tag is not None and ld_tag != tag:
        share_ld(recipe, seeds, tag, ld_tag)
    steps = [["./run.sh", "--stage", "1", "--stop_stage", "11", *extra]]
    for seed in seeds:
        steps.append([
            "./run.sh", "--stage", "12", "--stop_stage", "15", "--exp_suffix", suffix(tag, seed),
            *merge_student_args(extra, f"--seed {seed}"),
        ])
    for i, cmd in enumerate(steps):
        print(f"[{i + 1}/{len(steps)}] ({recipe}) {shlex.join(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=recipe).returncode != 0:
            raise SystemExit(f"{recipe}: {shlex.join(cmd)} failed; its log names the stage and file")


def merge_student_args(extra: List[str], seed_args: str) -> List[str]:
    """``run_args`` with the seed added to its ``--student_args`` (or a new one)."""
    out, merged = list(extra), False
    for i, arg in enumerate(out[:-1]):
        if arg == "--student_args":
            out[i + 1] = f"{out[i + 1]} {seed_args}"
            merged = True
    return out if merged else out + ["--student_args", seed_args]


def load_reports(recipe: Path, seeds: List[int], tag: str) -> List[Dict]:
    reports = []
    for seed in seeds:
        path = report_json(recipe, tag, seed)
        if not path.is_file():
            raise SystemExit(
                f"{path} is missing: run this script with --run, or "
                f"(cd {recipe} && ./run.sh --stage 12 --stop_stage 14 --exp_suffix {suffix(tag, seed)} "
                f"--student_args '--seed {seed}')"
            )
        reports.append(json.loads(path.read_text()))
    return reports


def spread(values: List[float]) -> Dict[str, Optional[float]]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def aggregate(reports: List[Dict], seeds: List[int], metric: str = "wer") -> Dict:
    """Per test set: the teacher's ``metric`` (wer or cer) and, per student and
    depth, the metric over seeds."""
    num_blocks = int(reports[0]["num_blocks"])
    out: Dict = {"num_blocks": num_blocks, "seeds": seeds, "metric": metric, "test_sets": {}}
    for test_set in reports[0]["test_sets"]:
        results = [r["test_sets"][test_set]["results"] for r in reports]
        teacher = list(results[0].get("teacher", {}).values())
        entry: Dict = {"teacher": teacher[0].get(metric) if teacher else None}
        for model in ("ld", "dld"):
            entry[model] = {}
            for depth in range(1, num_blocks + 1):
                values = [res.get(model, {}).get(str(depth), {}).get(metric) for res in results]
                if any(v is None for v in values):
                    raise SystemExit(f"{test_set}: {model} at depth {depth} is not decoded (or has no {metric}) "
                                     f"for every seed {seeds}")
                entry[model][depth] = spread(values)
        entry["targets"] = check_targets(entry, num_blocks)
        out["test_sets"][test_set] = entry
    return out


def static_models(recipe: Path, exps: List[str], inference_tag: str, test_sets: List[str],
                  metric: str) -> Dict[str, Dict[str, float]]:
    """Models trained on their own at a fixed depth (``--teacher_exp
    exp/asr_static3 --teacher_args "--encoder_conf num_blocks=3"``, decoded by
    stage 13 as a teacher): ``{test_set: {num_blocks: metric}}``, the
    reference a dynamic model is held against at that depth."""
    out: Dict[str, Dict[str, float]] = {t: {} for t in test_sets}
    for name in exps:
        exp = recipe / name
        config = exp / "config.yaml"
        if not config.is_file():
            raise SystemExit(f"--static {name}: {config} is missing (train it with stage 11, see docs/an4.md)")
        blocks = int(yaml.safe_load(config.read_text())["encoder_conf"]["num_blocks"])
        for test_set in test_sets:
            score = exp / inference_tag / test_set / "full" / "score" / "score.json"
            if not score.is_file():
                raise SystemExit(f"--static {name}: {score} is missing (decode it with stage 13)")
            out[test_set][str(blocks)] = float(json.loads(score.read_text())[metric])
    return out


def rel_gain(ld: float, dld: float) -> float:
    """How much lower DLD's WER is than LD's, relative (0.1 = 10 % lower)."""
    return (ld - dld) / ld if ld else 0.0


#: Reports store each seed's WER with 4 decimals, so two means of the same error
#: count can differ by a few 1e-5: closer than this they are a tie, not a loss.
TIE = 1e-3


def not_worse(dld: float, ld: float) -> bool:
    return dld <= ld + TIE


def check_targets(entry: Dict, num_blocks: int) -> Dict:
    ld = {d: v["mean"] for d, v in entry["ld"].items()}
    dld = {d: v["mean"] for d, v in entry["dld"].items()}
    low = [d for d in ld if d <= num_blocks / 4]
    upper = [d for d in dld if d >= num_blocks / 2]
    teacher, full = entry["teacher"], num_blocks
    above_1p5x = [d for d in upper if teacher is None or dld[d] > 1.5 * teacher]
    return {
        "dld_le_ld_every_depth": {
            "met": all(not_worse(dld[d], ld[d]) for d in ld),
            "depths_missed": [d for d in ld if not not_worse(dld[d], ld[d])],
        },
        "low_depths_10pct": {
            "depths": low,
            "rel_gain": {d: round(rel_gain(ld[d], dld[d]), 4) for d in low},
            "met": all(rel_gain(ld[d], dld[d]) >= 0.10 for d in low),
        },
        "full_depth": {
            "dld_le_ld": not_worse(dld[full], ld[full]),
            "rel_to_teacher": None if not teacher else round((dld[full] - teacher) / teacher, 4),
            "met": not_worse(dld[full], ld[full]) and teacher is not None and dld[full] <= 1.05 * teacher,
        },
        # issue 15: the DLD curve within 1.5x the teacher's error down to half depth
        "half_depth_1p5x_teacher": {"depths": upper, "met": not above_1p5x, "depths_missed": above_1p5x},
    }


def table(name: str, test_set: str, entry: Dict, num_blocks: int, metric: str = "wer") -> str:
    n = len(next(iter(entry["ld"].values()))["values"])
    lines = [
        f"### {name} / {test_set}: {metric.upper()} (%) over {n} seeds, mean ± std [min–max]; teacher {fmt(entry['teacher'])}",
        "",
        "| depth | LD | DLD | DLD vs LD (rel.) |",
        "|---:|---|---|---:|",
    ]
    for d in range(1, num_blocks + 1):
        ld, dld = entry["ld"][d], entry["dld"][d]
        cell = lambda v: f"{v['mean']:.2f} ± {v['std']:.2f} [{v['min']:.1f}–{v['max']:.1f}]"  # noqa: E731
        lines.append(f"| {d} | {cell(ld)} | {cell(dld)} | {-100 * rel_gain(ld['mean'], dld['mean']) + 0.0:+.1f} % |")
    t = entry["targets"]
    lines += [
        "",
        f"- DLD <= LD at every depth: {'met' if t['dld_le_ld_every_depth']['met'] else 'MISSED at depths ' + str(t['dld_le_ld_every_depth']['depths_missed'])}",
        f"- depths <= N/4 ({t['low_depths_10pct']['depths']}) at least 10 % lower: "
        f"{'met' if t['low_depths_10pct']['met'] else 'MISSED'} (gain {t['low_depths_10pct']['rel_gain']})",
        f"- full depth: DLD <= LD {t['full_depth']['dld_le_ld']}, DLD vs teacher "
        f"{100 * (t['full_depth']['rel_to_teacher'] or 0):+.1f} % rel. (target <= +5 %): "
        f"{'met' if t['full_depth']['met'] else 'MISSED'}",
        f"- DLD within 1.5x the teacher down to depth N/2: "
        f"{'met' if t['half_depth_1p5x_teacher']['met'] else 'MISSED at depths ' + str(t['half_depth_1p5x_teacher']['depths_missed'])}",
    ]
    for blocks, value in (entry.get("static") or {}).items():
        dld = entry["dld"][int(blocks)]["mean"]
        lines.append(f"- static {blocks}-block model trained alone: {value:.2f}; DLD at depth {blocks}: {dld:.2f} "
                     f"({-100 * rel_gain(value, dld):+.1f} % rel.)")
    return "\n".join(lines)


def plot(results: Dict[str, Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, ts, e) for name, agg in results.items() for ts, e in agg["test_sets"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (name, test_set, entry) in zip(axes[0], panels):
        depths = sorted(entry["ld"])
        for model, style in (("ld", "s--"), ("dld", "o-")):
            ax.errorbar(depths, [entry[model][d]["mean"] for d in depths],
                        yerr=[entry[model][d]["std"] for d in depths], fmt=style, capsize=3,
                        label=model.upper())
        if entry["teacher"] is not None:
            ax.axhline(entry["teacher"], color="grey", lw=1, ls=":", label="teacher")
        static = entry.get("static") or {}
        if static:
            ax.plot([int(k) for k in static], list(static.values()), "k*", ms=10, label="static (trained alone)")
        ax.set_title(f"{name} / {test_set}")
        finish_depth_axes(ax, min(100, max(entry["ld"][depths[0]]["max"], entry["dld"][depths[0]]["max"]) + 5))
        ax.set_ylabel(f"{results[name].get('metric', 'wer').upper()} (%)")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", required=True, help="recipe dir (repeatable)")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--tag", default="", help="exp-suffix prefix of an ablation, e.g. _kdT2")
    parser.add_argument("--run", action="store_true", help="train/decode what is missing through run.sh")
    parser.add_argument("--run_args", default="", help="extra run.sh options (one string)")
    parser.add_argument("--ld_tag", help="reuse the LD students of this tag (ablations of KD-only options)")
    parser.add_argument("--metric", choices=("wer", "cer"), default="wer", help="error rate to aggregate")
    parser.add_argument("--static", nargs="+", default=[],
                        help="exp dirs (relative to the recipe) of static models trained alone at a fixed depth, "
                        "e.g. exp/asr_static3 exp/asr_static6: their full-depth scores join the table and plot")
    parser.add_argument("--json", help="write the aggregate here")
    parser.add_argument("--plot", help="PNG path (default: next to --json)")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)

    results = {}
    for r in args.recipe:
        recipe = (Path.cwd() / r).resolve()
        if not (recipe / "run.sh").is_file():
            raise SystemExit(f"--recipe {r}: no run.sh in {recipe}")
        if args.run:
            run_recipe(recipe, seeds, args.tag, args.run_args, args.ld_tag)
        name = recipe.parent.name
        reports = load_reports(recipe, seeds, args.tag)
        results[name] = aggregate(reports, seeds, args.metric)
        if args.static:
            static = static_models(recipe, args.static, reports[0]["inference_tag"],
                                   list(results[name]["test_sets"]), args.metric)
            for test_set, entry in results[name]["test_sets"].items():
                entry["static"] = static[test_set]
        for test_set, entry in results[name]["test_sets"].items():
            print(table(name, test_set, entry, results[name]["num_blocks"], args.metric) + "\n")
    write_json(args.json, {"tag": args.tag, "ld_tag": args.ld_tag, "run_args": args.run_args, "recipes": results})
    png = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if png:
        plot(results, Path(png))


if __name__ == "__main__":
    main()
