#!/usr/bin/env python3
"""WER against encoder depth for each depth policy: uniform, first and a
measured depth profile, over training seeds.

For each seed run of a recipe (``exp/asr_<student><tag>_seed<S>``, made by
``accuracy_depth.py``), the depth profile is searched on the recipe's valid
set if ``depth_profile.yaml`` is missing or belongs to other weights
(``python -m espnet_dld.bin.depth_profile``); then one process per model
loads it once with ``Speech2Text(ctc_greedy=True)`` and decodes every test
set with the blocks each policy picks at every depth (a block subset that
several policies share is decoded once).  WER is scored against
``dump/<feats_type>/<set>/text`` as the recipe scores it
(``espnet_dld.utils.scoring``, jiwer); mean and sample standard deviation over
seeds per policy and depth go into a table, ``--json`` and a plot.

    python bench/depth_policy.py --recipe egs2/mini_dld/asr1 --seeds 0 1 2 \\
        --json bench/results/depth_policy_mini_dld.json

A test set that is also the valid set (fsdd_dld: ``dev``) is where the
profile was searched, which favours it; compare the policies on the others.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, finish_depth_axes, parse_seeds, save_figure, student_exp, write_json  # noqa: E402

sys.path.insert(0, str(REPO))  # this checkout's espnet_dld, also in the subprocesses (env())

POLICIES = ("uniform", "first", "profile")
MODEL_FILE = "valid.loss_ctc.ave.pth"
PROGRESS = "depth_policy: "  # the worker's progress lines, among ESPnet's warnings


# -- recipe --------------------------------------------------------------------
def run_sh_option(recipe: Path, name: str) -> Optional[str]:
    """The value ``run.sh`` passes to ``dld.sh`` for ``--<name>`` (None if it passes none)."""
    text = (recipe / "run.sh").read_text()
    m = re.search(rf"--{name}\s+(\"[^\"]*\"|'[^']*'|\S+)", text)
    return m.group(1).strip("\"'") if m else None


def recipe_sets(recipe: Path, valid_set: Optional[str], test_sets: Optional[List[str]],
                feats_type: Optional[str]) -> Tuple[str, List[str], str]:
    """Valid set, test sets and feature type: given, else as ``run.sh`` passes them."""
    valid = valid_set or run_sh_option(recipe, "valid_set")
    tests = test_sets or (run_sh_option(recipe, "test_sets") or "").split()
    feats = feats_type or run_sh_option(recipe, "feats_type") or "raw"
    if not valid or not tests:
        raise SystemExit(f"{recipe}/run.sh names no --valid_set/--test_sets; give --valid_set and --test_sets")
    return valid, tests, feats


def data_dir(recipe: Path, feats_type: str, name: str) -> Tuple[Path, str, str]:
    """``dump/<feats>/<set>``, its scp and ESPnet's type for it."""
    scp, kind = ("wav.scp", "sound") if feats_type == "raw" else ("feats.scp", "kaldi_ark")
    folder = recipe / "dump" / feats_type / name
    for f in (scp, "text"):
        if not (folder / f).is_file():
            raise SystemExit(f"{folder / f} is missing: run the recipe's stages 1-4 first")
    return folder, scp, kind


def env() -> Dict[str, str]:
    """Subprocesses import this checkout's espnet_dld."""
    paths = [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def ensure_profile(recipe: Path, exp: Path, valid: Tuple[Path, str, str], criterion: str) -> Path:
    """``exp/depth_profile.yaml``, searched on the valid set unless it exists
    for these weights."""
    from espnet_dld.asr.encoder.depth_profile_file import read_depth_profile
    from espnet_dld.utils.checkpoint import file_sha256

    # the recipe's file holds the default criterion; another criterion gets its own file
    path = exp / ("depth_profile.yaml" if criterion == "ctc_loss" else f"depth_profile_{criterion}.yaml")
    if path.is_file():
        record = read_depth_profile(path)
        if record.get("model_sha256") in (None, file_sha256(exp / MODEL_FILE)) and \
                record.get("criterion", criterion) == criterion:
            print(f"  {path.relative_to(recipe)}: {record.get('criterion', '?')} profile {record['profile']}")
            return path
        print(f"  {path.relative_to(recipe)} was measured on other weights: searching again")
    folder, scp, kind = valid
    cmd = [sys.executable, "-m", "espnet_dld.bin.depth_profile", "--asr_model_file",
           str((exp / MODEL_FILE).relative_to(recipe)), "--criterion", criterion,
           "--data_path_and_name_and_type", f"{(folder / scp).relative_to(recipe)},speech,{kind}",
           "--data_path_and_name_and_type", f"{(folder / 'text').relative_to(recipe)},text,text",
           "--out", str(path.relative_to(recipe))]
    print(f"  ({recipe}) {shlex.join(cmd[1:])}", flush=True)
    r = subprocess.run(cmd, cwd=recipe, env=env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the depth profile search of {exp} failed:\n{r.stderr[-3000:]}")
    print("\n".join("  " + line for line in r.stdout.strip().splitlines()))
    return path


# -- decoding (one process per model) -----------------------------------------
def decode_worker(job: Dict) -> Dict:
    """Load the model once, decode each test set with every distinct block
    subset the policies pick, score it; runs in the recipe folder."""
    import torch

    from espnet_dld import Speech2Text
    from espnet_dld.bin.depth_profile import load_utterances
    from espnet_dld.utils.scoring import score

    torch.set_num_threads(job["threads"])
    exp = Path(job["exp"])
    s2t = Speech2Text(exp / "config.yaml", exp / MODEL_FILE, ctc_greedy=True, device="cpu",
                      depth_profile=job["profile"])
    if s2t.num_layers is None:
        raise SystemExit(f"{exp}: the encoder is static; depth policies need a dld_* model")
    n = s2t.num_layers
    choice = {}
    for policy in job["policies"]:
        s2t.set_depth_policy(policy)
        choice[policy] = {k: s2t.set_depth(k) for k in range(1, n + 1)}
    subsets = sorted({tuple(layers) for per in choice.values() for layers in per.values()}, key=lambda s: (len(s), s))
    out: Dict = {"num_blocks": n, "layers": choice, "test_sets": {}}
    with tempfile.TemporaryDirectory(prefix="depth_policy.") as tmp:
        for name, (scp, kind, text) in job["test_sets"].items():
            utts = load_utterances([(scp, "speech", kind)], s2t.asr_train_args)
            if job["max_utts"]:
                utts = utts[: job["max_utts"]]
                text = reference_subset(text, [key for key, _ in utts], Path(tmp) / f"{name}.ref")
            wer = {}
            for layers in subsets:
                s2t.set_depth(layers=list(layers))
                hyp = Path(tmp) / f"{name}.{'-'.join(map(str, layers))}.txt"
                hyp.write_text("".join(f"{key} {s2t(data['speech'])[0][0]}\n" for key, data in utts))
                wer[layers] = score(text, hyp)[0]["wer"]
            out["test_sets"][name] = {
                "utterances": len(utts),
                "wer": {p: {k: wer[tuple(choice[p][k])] for k in range(1, n + 1)} for p in job["policies"]},
            }
            print(f"{PROGRESS}{name}: {len(utts)} utterances x {len(subsets)} block subsets decoded", file=sys.stderr)
    return out


def reference_subset(text: str, keys: List[str], out: Path) -> str:
    """The reference lines of ``keys`` only (``--max_utts``), written to ``out``."""
    wanted = set(keys)
    out.write_text("".join(line + "\n" for line in Path(text).read_text().splitlines()
                           if line.split(maxsplit=1)[0] in wanted))
    return str(out)


def decode_model(recipe: Path, exp: Path, profile: Path, test_sets: Dict, policies: List[str],
                 threads: int, max_utts: int) -> Dict:
    job = {"exp": str(exp), "profile": str(profile), "policies": policies, "threads": threads,
           "max_utts": max_utts, "test_sets": test_sets}
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)], cwd=recipe,
                       env=env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"decoding {exp} failed:\n{r.stderr[-3000:]}")
    progress = [line[len(PROGRESS):] for line in r.stderr.splitlines() if line.startswith(PROGRESS)]
    sys.stdout.write("".join(f"  {line}\n" for line in progress))
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- aggregate -----------------------------------------------------------------
def spread(values: List[float]) -> Dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def aggregate(runs: Dict[int, Dict], policies: List[str]) -> Dict:
    """Per test set, policy and depth: WER over seeds, and the blocks each seed ran."""
    first = next(iter(runs.values()))
    n = first["num_blocks"]
    out: Dict = {"num_blocks": n, "seeds": list(runs), "test_sets": {}}
    for name in first["test_sets"]:
        entry = {}
        for p in policies:
            entry[p] = {}
            for k in range(1, n + 1):
                wers = [run["test_sets"][name]["wer"][p][str(k)] for run in runs.values()]
                layers = {seed: run["layers"][p][str(k)] for seed, run in runs.items()}
                entry[p][k] = {**spread(wers), "layers": layers}
        out["test_sets"][name] = entry
    return out


def rel(a: float, b: float) -> str:
    """How much lower ``b`` is than ``a``, relative, as a signed percentage (negative: lower)."""
    return f"{100 * (b - a) / a:+.1f} %" if a else "–"


def table(title: str, test_set: str, entry: Dict, n: int, policies: List[str], biased: bool) -> str:
    seeds = len(next(iter(entry[policies[0]].values()))["values"])
    cell = lambda v: f"{v['mean']:.2f} ± {v['std']:.2f}"  # noqa: E731
    lines = [f"### {title} / {test_set}: WER (%) over {seeds} seed(s), mean ± std"]
    if biased:
        lines.append(f"\n**{test_set} is the valid set the profile was searched on: biased in favour of `profile`; "
                     "compare the policies on the other test sets.**")
    has_profile = "profile" in policies and "uniform" in policies
    head = "| depth | " + " | ".join(policies) + " |" + (" profile vs uniform (rel.) | profile blocks (per seed) |"
                                                           if has_profile else "")
    lines += ["", head, "|---:|" + "---|" * len(policies) + ("---:|---|" if has_profile else "")]
    for k in range(1, n + 1):
        row = f"| {k} | " + " | ".join(cell(entry[p][k]) for p in policies) + " |"
        if has_profile:
            blocks = " / ".join(str(v) for v in entry["profile"][k]["layers"].values())
            row += f" {rel(entry['uniform'][k]['mean'], entry['profile'][k]['mean'])} | {blocks} |"
        lines.append(row)
    return "\n".join(lines)


def plot(panels: List[Tuple[str, Dict, List[str]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"uniform": "s--", "first": "^:", "profile": "o-"}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, entry, policies) in zip(axes[0], panels):
        depths = sorted(entry[policies[0]])
        for p in policies:
            ax.errorbar(depths, [entry[p][d]["mean"] for d in depths], yerr=[entry[p][d]["std"] for d in depths],
                        fmt=styles.get(p, "x-"), capsize=3, label=p)
        ax.set_title(title, fontsize=9)
        finish_depth_axes(ax, max(entry[p][d]["max"] + entry[p][d]["std"] for p in policies for d in depths) + 5)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", help="recipe dir (repeatable)")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--students", nargs="+", default=["dld"], choices=["dld", "ld"])
    parser.add_argument("--tag", default="", help="exp-suffix prefix of an ablation, e.g. _kdT2")
    parser.add_argument("--valid_set", help="where the profile is searched (default: run.sh's --valid_set)")
    parser.add_argument("--test_sets", nargs="+", help="default: run.sh's --test_sets")
    parser.add_argument("--feats_type", choices=["raw", "fbank"], help="default: run.sh's --feats_type, else raw")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--criterion", default="ctc_loss", choices=["ctc_loss", "wer"],
                        help="criterion of a profile search this script runs (existing profiles are kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for decoding")
    parser.add_argument("--max_utts", type=int, default=0, help="decode only the first N utterances (0: all)")
    parser.add_argument("--json", help="write the aggregate here")
    parser.add_argument("--plot", help="PNG path (default: next to --json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(decode_worker(json.loads(args.worker))))
        return
    if not args.recipe:
        parser.error("--recipe is required")
    seeds = parse_seeds(args.seeds)

    results: Dict = {}
    notes: List[str] = []
    panels = []
    for r in args.recipe:
        recipe = (Path.cwd() / r).resolve()
        if not (recipe / "run.sh").is_file():
            raise SystemExit(f"--recipe {r}: no run.sh in {recipe}")
        valid_set, test_sets, feats = recipe_sets(recipe, args.valid_set, args.test_sets, args.feats_type)
        valid = data_dir(recipe, feats, valid_set)
        sets = {}
        for name in test_sets:
            folder, scp, kind = data_dir(recipe, feats, name)
            sets[name] = (str(folder / scp), kind, str(folder / "text"))
        name = recipe.parent.name
        results[name] = {"valid_set": valid_set, "test_sets": test_sets, "feats_type": feats, "students": {}}
        if valid_set in test_sets:
            notes.append(f"{name}: the test set {valid_set!r} is the valid set the depth profile was searched on "
                         "(biased in favour of 'profile'); the other test sets are the fair comparison")
        for student in args.students:
            runs = {}
            for seed in seeds:
                exp = student_exp(recipe, student, args.tag, seed)
                if not (exp / MODEL_FILE).is_file():
                    raise SystemExit(f"{exp / MODEL_FILE} is missing: train seed {seed} first "
                                     f"(bench/accuracy_depth.py --recipe {r} --seeds {seed} --run)")
                print(f"[{name} {student} seed {seed}] {exp}", flush=True)
                profile = ensure_profile(recipe, exp, valid, args.criterion) if "profile" in args.policies \
                    else exp / "depth_profile.yaml"
                runs[seed] = decode_model(recipe, exp, profile, sets, args.policies, args.threads, args.max_utts)
            agg = aggregate(runs, args.policies)
            results[name]["students"][student] = agg
            for test_set, entry in agg["test_sets"].items():
                print("\n" + table(f"{name} {student.upper()}", test_set, entry, agg["num_blocks"], args.policies,
                                   biased=test_set == valid_set) + "\n")
                panels.append((f"{name} {student.upper()} / {test_set}" + (" (= valid set)" if test_set == valid_set
                                                                           else ""), entry, args.policies))
    for note in notes:
        print(f"NOTE: {note}")
    write_json(args.json, {"seeds": seeds, "students": args.students, "tag": args.tag, "policies": args.policies,
                           "criterion_if_searched": args.criterion, "max_utts": args.max_utts, "notes": notes,
                           "recipes": results})
    png = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if png:
        plot(panels, Path(png))


if __name__ == "__main__":
    main()
