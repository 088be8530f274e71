#!/usr/bin/env python3
"""The README's accuracy and depth-policy tables, printed as markdown from
the JSON in bench/results/ (rounded once, from the stored means and standard
deviations, never from a printout of them).

    python bench/readme_tables.py [--results bench/results]

Accuracy table (``accuracy_<recipe>.json`` of ``accuracy_depth.py``): WER %
mean ± std over seeds of LD and DLD per depth, and DLD relative to LD, bold
where DLD is at least 10 % lower (the paper's claim at high dropping).

Front-end table (``accuracy_<recipe>.json`` and ``accuracy_<recipe>_conv1d.json``):
WER % of LD and DLD per depth with ESPnet's conv2d and with ``conv1d4x``,
and conv1d4x relative to conv2d for DLD.

AN4 table (``accuracy_an4_dld.json`` and ``accuracy_an4_dld_cer.json``):
WER and CER of LD and DLD per depth on AN4's test and train_dev sets, the
static models trained alone and the teacher; one seed shows its value,
several their mean ± std, and "DLD vs LD" then says in how many seeds DLD
was lower.  Below it, issue 15's targets on ``test`` (means over the
seeds) with what was measured and whether each is met.

Depth-policy table (``depth_policy_<recipe>.json`` and, for the profile
searched by dev WER, ``depth_policy_wer_<recipe>.json`` of
``depth_policy.py``): DLD students per policy; bold marks the policy whose
mean is at least 0.5 % (relative) lower than every other policy's, the two
profile columns counting as one policy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_depth import rel_gain  # noqa: E402

#: (recipe, test set, column title) of the accuracy table, in order
ACCURACY_COLUMNS = (("mini_dld", "test", "mini_dld test"), ("fsdd_dld", "test", "FSDD test"),
                    ("fsdd_dld", "dev", "FSDD dev"))
#: (recipe, test set, column title) of the depth-policy table
POLICY_COLUMNS = (("mini_dld", "test", "mini_dld test"), ("fsdd_dld", "test", "FSDD test"))
POLICIES = (("uniform", "uniform"), ("first", "first"), ("profile", "profile (loss)"),
            ("profile_wer", "profile (WER)"))
#: (accuracy JSON suffix, column title) of the front-end table
FRONTENDS = (("", "conv2d"), ("_conv1d", "conv1d4x"))
BOLD_GAIN = 0.10  # accuracy table: DLD this much lower than LD
POLICY_MARGIN = 0.005  # depth-policy table: a policy this much lower than every other
#: ESPnet's published egs2/an4/asr1 result (transformer, attention + CTC, beam 10), test WER %
ESPNET_AN4_TEST_WER = 7.6
TEACHER_TARGET_RATIO = 1.5  # issue 15: our greedy-CTC teacher within 1.5x of ESPnet's published WER


def mean_std(v: Dict) -> str:
    return f"{v['mean']:.1f} ± {v['std']:.1f}"


def bold(text: str, on: bool) -> str:
    return f"**{text}**" if on else text


def signed_pct(fraction: float) -> str:
    return f"{100 * fraction + 0.0:+.1f} %"  # + 0.0: a tie prints "+0.0 %", not "-0.0 %"


def relative(ld: float, dld: float) -> str:
    """DLD against LD in %, negative when DLD is better, bold from 10 % better."""
    return bold(signed_pct(-rel_gain(ld, dld)), rel_gain(ld, dld) >= BOLD_GAIN)


def load(results: Path, name: str) -> Dict:
    path = results / name
    if not path.is_file():
        raise SystemExit(f"{path} does not exist (run the benchmark that writes it, see the README's Reproducing)")
    return json.loads(path.read_text(encoding="utf-8"))


def accuracy_table(results: Path, columns: Sequence[Tuple[str, str, str]] = ACCURACY_COLUMNS) -> str:
    entries = [load(results, f"accuracy_{r}.json")["recipes"][r]["test_sets"][t] for r, t, _ in columns]
    num_blocks = {len(e["ld"]) for e in entries}
    if len(num_blocks) != 1:
        raise SystemExit(f"the accuracy results have different depths: {sorted(num_blocks)}")
    n = num_blocks.pop()
    head = "| depth |" + "".join(f" {title}: LD | DLD | DLD vs LD |" for _, _, title in columns)
    lines = [head, "|---:|" + "---:|---:|---:|" * len(columns)]
    for d in range(1, n + 1):
        row = f"| {d}{' (all)' if d == n else ''} |"
        for e in entries:
            ld, dld = e["ld"][str(d)], e["dld"][str(d)]
            row += f" {mean_std(ld)} | {mean_std(dld)} | {relative(ld['mean'], dld['mean'])} |"
        lines.append(row)
    lines.append("| teacher |" + "".join(f" {e['teacher']:.1f} | | |" for e in entries))
    return "\n".join(lines)


def frontend_table(results: Path, recipe: str = "fsdd_dld", test_set: str = "test") -> str:
    """WER against depth of the same recipe with each front end: what the
    cheaper Conv1d front end costs or gains in accuracy."""
    entries = [load(results, f"accuracy_{recipe}{suffix}.json")["recipes"][recipe]["test_sets"][test_set]
               for suffix, _ in FRONTENDS]
    n = len(entries[0]["dld"])
    if any(len(e["dld"]) != n for e in entries):
        raise SystemExit(f"{recipe}: the front ends' results have different depths")
    head = "| depth |" + "".join(f" {t}: LD | {t}: DLD |" for _, t in FRONTENDS) + " DLD: conv1d4x vs conv2d |"
    lines = [head, "|---:|" + "---:|---:|" * len(FRONTENDS) + "---:|"]
    for d in range(1, n + 1):
        cells = "".join(f" {mean_std(e['ld'][str(d)])} | {mean_std(e['dld'][str(d)])} |" for e in entries)
        first, last = entries[0]["dld"][str(d)]["mean"], entries[-1]["dld"][str(d)]["mean"]
        lines.append(f"| {d}{' (all)' if d == n else ''} |{cells} {-100 * rel_gain(first, last):+.1f} % |")
    lines.append("| teacher |" + "".join(f" {e['teacher']:.1f} | |" for e in entries) + " |")
    return "\n".join(lines)


def seed_cell(v: Dict) -> str:
    """mean ± std over seeds, or the one value of a single seed (a std of one run says nothing)."""
    return mean_std(v) if len(v.get("values", ())) > 1 else f"{v['mean']:.1f}"


def relative_paired(ld: Dict, dld: Dict) -> str:
    """DLD against LD on the means and, over several seeds, in how many of
    them DLD was lower (students of one seed share the seed: a paired count)."""
    cell = relative(ld["mean"], dld["mean"])
    values = list(zip(ld.get("values", ()), dld.get("values", ())))
    return cell + (f" ({sum(d < l for l, d in values)}/{len(values)})" if len(values) > 1 else "")


def an4_table(results: Path, recipe: str = "an4_dld") -> str:
    """The headline real-speech table: WER and CER on ``test`` and WER on
    ``train_dev`` at every depth for LD and DLD, then the static models
    trained alone at a fixed depth and the teacher (``accuracy_an4_dld.json``
    and ``accuracy_an4_dld_cer.json`` of ``accuracy_depth.py --static ...``)."""
    wer = load(results, f"accuracy_{recipe}.json")["recipes"][recipe]["test_sets"]
    cer = load(results, f"accuracy_{recipe}_cer.json")["recipes"][recipe]["test_sets"]
    columns = ((wer["test"], "test WER", True), (cer["test"], "test CER", False),
               (wer["train_dev"], "train_dev WER", True))
    n = len(wer["test"]["dld"])
    head = "| depth |" + "".join(f" {t}: LD | DLD |" + (" DLD vs LD |" if rel else "") for _, t, rel in columns)
    lines = [head, "|---:|" + "".join("---:|---:|" + ("---:|" if rel else "") for _, _, rel in columns)]
    for d in range(1, n + 1):
        row = f"| {d}{' (all)' if d == n else ''} |"
        for e, _, rel in columns:
            ld, dld = e["ld"][str(d)], e["dld"][str(d)]
            row += f" {seed_cell(ld)} | {seed_cell(dld)} |" + (f" {relative_paired(ld, dld)} |" if rel else "")
        lines.append(row)
    for blocks in sorted(wer["test"].get("static") or {}, key=int):
        row = f"| static {blocks} blocks, trained alone |"
        for e, _, rel in columns:
            row += f" {e['static'][blocks]:.1f} | |" + (" |" if rel else "")
        lines.append(row)
    lines.append("| teacher (12 blocks) |" + "".join(f" {e['teacher']:.1f} | |" + (" |" if rel else "")
                                                for e, _, rel in columns))
    return "\n".join(lines)


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def an4_targets_table(results: Path, recipe: str = "an4_dld", test_set: str = "test") -> str:
    """Issue 15's targets on AN4 ``test``: what each asks, what the seeds'
    means give (the verdicts are ``accuracy_depth.check_targets``'s, stored in
    the JSON) and, for the teacher, the ratio to ESPnet's published WER."""
    entry = load(results, f"accuracy_{recipe}.json")["recipes"][recipe]["test_sets"][test_set]
    t, teacher = entry["targets"], entry["teacher"]
    ld = {int(d): v["mean"] for d, v in entry["ld"].items()}
    dld = {int(d): v["mean"] for d, v in entry["dld"].items()}
    n = max(dld)
    worse = t["dld_le_ld_every_depth"]["depths_missed"]
    low = t["low_depths_10pct"]
    upper = t["half_depth_1p5x_teacher"]["depths"]
    worst = max(upper, key=lambda d: dld[d])
    ratio = teacher / ESPNET_AN4_TEST_WER
    rows = [
        ("DLD <= LD at every depth",
         "DLD worse at depths " + ", ".join(f"{d} ({signed_pct(-rel_gain(ld[d], dld[d]))})" for d in worse)
         if worse else "DLD <= LD at all depths", t["dld_le_ld_every_depth"]["met"]),
        (f"DLD at least 10 % lower than LD at depths <= {n // 4} (N/4)",
         "DLD vs LD: " + ", ".join(f"depth {d} {signed_pct(-low['rel_gain'][str(d)])}" for d in low["depths"]), low["met"]),
        ("DLD at full depth within 5 % of the teacher",
         f"{dld[n]:.1f} against {teacher:.1f} ({signed_pct(t['full_depth']['rel_to_teacher'])})",
         t["full_depth"]["met"]),
        (f"DLD within 1.5x the teacher down to depth {min(upper)}",
         f"worst: depth {worst}, {dld[worst]:.1f} = {dld[worst] / teacher:.2f}x", t["half_depth_1p5x_teacher"]["met"]),
        (f"teacher (greedy CTC) within {TEACHER_TARGET_RATIO}x of ESPnet's {ESPNET_AN4_TEST_WER} %",
         f"{teacher:.1f} = {ratio:.1f}x", ratio <= TEACHER_TARGET_RATIO),
    ]
    lines = [f"| target ({test_set}, mean over the seeds) | measured, WER % | |", "|---|---|---|"]
    lines += [f"| {what} | {measured} | {met(ok)} |" for what, measured, ok in rows]
    return "\n".join(lines)


def policy_cells(by_policy: Dict[str, Dict]) -> List[str]:
    """One row's cells: bold for the policy at least POLICY_MARGIN lower than every other."""
    group = {p: "profile" if p.startswith("profile") else p for p in by_policy}
    cells = []
    for p, v in by_policy.items():
        others = [o["mean"] for q, o in by_policy.items() if group[q] != group[p]]
        cells.append(bold(mean_std(v), all(v["mean"] <= (1 - POLICY_MARGIN) * m for m in others)))
    return cells


def policy_table(results: Path, columns: Sequence[Tuple[str, str, str]] = POLICY_COLUMNS) -> str:
    per_column = []
    for recipe, test_set, _ in columns:
        loss = load(results, f"depth_policy_{recipe}.json")["recipes"][recipe]["students"]["dld"]
        wer = load(results, f"depth_policy_wer_{recipe}.json")["recipes"][recipe]["students"]["dld"]
        sets = {p: loss["test_sets"][test_set][p] for p in ("uniform", "first", "profile")}
        sets["profile_wer"] = wer["test_sets"][test_set]["profile"]
        per_column.append((loss["num_blocks"], sets))
    n = per_column[0][0]
    head = "| depth |" + "".join(f" {title}: " + " | ".join(t for _, t in POLICIES) + " |" for _, _, title in columns)
    lines = [head, "|---:|" + "---:|" * len(POLICIES) * len(columns)]
    for d in range(1, n):
        row = f"| {d} |"
        for _, sets in per_column:
            row += "".join(f" {c} |" for c in policy_cells({p: sets[p][str(d)] for p, _ in POLICIES}))
        lines.append(row)
    # at full depth every policy runs every block
    lines.append(f"| {n} |" + "".join(f" {mean_std(sets['uniform'][str(n)])} |" + " = |" * (len(POLICIES) - 1)
                                    for _, sets in per_column))
    return "\n".join(lines)


def main(cmd: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(cmd)
    print("**Accuracy against depth**, WER % (mean ± standard deviation over 3 seeds):\n")
    print(accuracy_table(args.results))
    print("\n**Front ends** (FSDD test), WER % (mean ± std over 3 seeds):\n")
    print(frontend_table(args.results))
    print("\n**Depth policies** (DLD students), WER % (mean ± std over 3 seeds):\n")
    print(policy_table(args.results))
    print("\n**AN4** (12 blocks), WER and CER %:\n")
    print(an4_table(args.results))
    print("\n**AN4 targets** (issue 15):\n")
    print(an4_targets_table(args.results))


if __name__ == "__main__":
    main()
