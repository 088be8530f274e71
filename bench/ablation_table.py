#!/usr/bin/env python3
"""One table of DLD's WER at every depth across settings (ablations), from
the JSON files ``accuracy_depth.py`` wrote, with the LD baseline of each
(listed once where an ablation reuses the LD students of another run).

With ``--choose_on SET`` it also names the DLD setting with the lowest WER
averaged over depths on that set (a dev set: settings are chosen there, never
on test), and ``--png`` plots DLD's WER against depth per setting.

    python bench/ablation_table.py bench/results/accuracy_mini_dld.json \\
        bench/results/ablation_mini_dld_kdutt.json --out bench/results/ablations.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish_depth_axes, save_figure  # noqa: E402


def settings(paths: List[str]) -> List[Dict]:
    """One entry per (file, recipe, test set, model): the mean WER per depth over its seeds.
    A shared LD (an ablation that reused another run's LD students) is listed once: by the run that
    trained it where that run is among ``paths``, else by the first ablation that reused it."""
    files = [json.loads(Path(path).read_text()) for path in paths]
    listed_ld = {data.get("tag") for data in files if data.get("ld_tag") in (None, data.get("tag"))}
    out = []
    for data in files:
        setting = data.get("run_args") or "recipe defaults"
        shared_ld = data.get("ld_tag") is not None and data.get("ld_tag") != data.get("tag")
        if shared_ld and data.get("ld_tag") not in listed_ld:
            listed_ld.add(data.get("ld_tag"))
            shared_ld = False
        for recipe, agg in data["recipes"].items():
            n = agg["num_blocks"]
            for test_set, entry in agg["test_sets"].items():
                for model in ("dld",) if shared_ld else ("ld", "dld"):
                    means = [entry[model][str(d)]["mean"] for d in range(1, n + 1)]
                    out.append({"recipe": recipe, "test_set": test_set, "model": model, "setting": setting,
                                "seeds": len(entry[model]["1"]["values"]), "wer": means,
                                "mean": sum(means) / n})
    return out


def rows(entries: List[Dict]) -> str:
    return "\n".join(
        f"| {e['recipe']}/{e['test_set']} | {e['model'].upper()} | `{e['setting']}` | {e['seeds']} | "
        + " | ".join(f"{w:.2f}" for w in e["wer"]) + f" | {e['mean']:.2f} |"
        for e in entries)


def choose(entries: List[Dict], test_set: str) -> Optional[Dict]:
    """The DLD setting with the lowest depth-averaged WER on ``test_set`` (None if no DLD row has it)."""
    candidates = [e for e in entries if e["model"] == "dld" and e["test_set"] == test_set]
    return min(candidates, key=lambda e: e["mean"]) if candidates else None


def plot(entries: List[Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(e["recipe"], e["test_set"]) for e in entries})
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.0), squeeze=False)
    for ax, (recipe, test_set) in zip(axes[0], panels):
        for e in (e for e in entries if (e["recipe"], e["test_set"]) == (recipe, test_set)):
            depths = range(1, len(e["wer"]) + 1)
            style = "s--" if e["model"] == "ld" else "o-"
            ax.plot(depths, e["wer"], style, ms=4, label=f"{e['model'].upper()} {e['setting']} ({e['seeds']} seed(s))")
        ax.set_title(f"{recipe} / {test_set}")
        finish_depth_axes(ax, 100)
        ax.legend(fontsize=6)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+")
    parser.add_argument("--out")
    parser.add_argument("--choose_on", help="dev set to choose the DLD setting on (depth-averaged WER)")
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    entries = settings(args.json)
    depths = max(len(e["wer"]) for e in entries)
    head = ("| corpus/test | model | setting | seeds | " + " | ".join(f"depth {d}" for d in range(1, depths + 1))
            + " | mean |\n|---|---|---|---:|" + "---:|" * (depths + 1))
    table = "WER (%) means over seeds; the teacher and test sets are the recipes' own.\n\n" + head + "\n" + rows(entries)
    if args.choose_on:
        best = choose(entries, args.choose_on)
        if best is None:
            raise SystemExit(f"--choose_on {args.choose_on}: no DLD result on that set in {', '.join(args.json)}")
        table += (f"\n\nLowest DLD WER averaged over depths on {args.choose_on}: `{best['setting']}` "
                  f"({best['mean']:.2f} %).")
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        print(f"wrote {args.out}")
    if args.png:
        plot(entries, args.png)


if __name__ == "__main__":
    main()
