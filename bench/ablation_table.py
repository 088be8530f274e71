#!/usr/bin/env python3
"""One table of DLD's WER at every depth across settings (ablations), from
the JSON files ``accuracy_depth.py`` wrote, with the LD baseline of each
(listed once where an ablation reuses the LD students of another run).

    python bench/ablation_table.py bench/results/accuracy_mini_dld.json \\
        bench/results/ablation_mini_dld_kdutt.json --out bench/results/ablations.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List


def rows(paths: List[str]) -> str:
    lines = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        setting = data.get("run_args") or "recipe defaults"
        for recipe, agg in data["recipes"].items():
            n = agg["num_blocks"]
            for test_set, entry in agg["test_sets"].items():
                shared_ld = data.get("ld_tag") is not None and data.get("ld_tag") != data.get("tag")
                for model in ("dld",) if shared_ld else ("ld", "dld"):  # a shared LD is listed once
                    cells = [f"{entry[model][str(d)]['mean']:.2f}" for d in range(1, n + 1)]
                    mean = sum(entry[model][str(d)]["mean"] for d in range(1, n + 1)) / n
                    seeds = len(entry[model]["1"]["values"])
                    lines.append(f"| {recipe}/{test_set} | {model.upper()} | `{setting}` | {seeds} | "
                                 + " | ".join(cells) + f" | {mean:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+")
    parser.add_argument("--out")
    args = parser.parse_args()
    depths = max(json.loads(Path(p).read_text())["recipes"][r]["num_blocks"]
                 for p in args.json for r in json.loads(Path(p).read_text())["recipes"])
    head = ("| corpus/test | model | setting | seeds | " + " | ".join(f"depth {d}" for d in range(1, depths + 1))
            + " | mean |\n|---|---|---|---:|" + "---:|" * (depths + 1))
    table = "WER (%) means over seeds; the teacher and test sets are the recipes' own.\n\n" + head + "\n" + rows(args.json)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
