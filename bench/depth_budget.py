#!/usr/bin/env python3
"""Holding a latency budget while the host gets busier: fixed full depth,
fixed budget-chosen depth and the adaptive depth budget on a real test set.

One process loads a packed DLD model (``Speech2Text.from_pretrained``) and
decodes the test set once per pass (``--modes``), each utterance timed on its
own; by default the passes are interleaved (each utterance decoded by every
pass in turn), so that they are compared at the same moments of the host:

* ``full``: every block (no budget);
* ``depth1``: one block (no budget; after the load starts with the threads
  the adaptive pass would take): the most any depth controller can keep
  within the budget, since depth 1 is the cheapest it may choose;
* ``fixed``: ``rtf_budget=B``, the depth chosen once from the calibration;
* ``adaptive_blind``: ``rtf_budget=B, adaptive=True, cpu_contention=False``
  (the load learned from decoded utterances alone);
* ``adaptive``: ``rtf_budget=B, adaptive=True``, Speech2Text's defaults:
  the CPU contention sensor and the thread count it sets
  (``--adapt_threads false`` keeps the threads).

Halfway through each pass a competing process (a busy loop pinned to one
core, started and stopped by this script) takes one of the cores.  The budget
``B`` is set between the calibrated depth-1 and full-depth costs
(``--budget_point``: 0 = depth 1's, 1 = full depth's RTF, at the test set's
mean utterance length).  Reported per pass: the share of utterances whose RTF
(call wall time / audio seconds) is within ``B`` before and after the load
starts, the mean depth, the WER; ``--json`` holds them and the
per-utterance RTF and depth that ``--png`` plots.

    python bench/depth_budget.py --model egs2/fsdd_dld/asr1/exp/asr_dld_conv1d_seed0/asr_model_dld.zip \\
        --wav_scp egs2/fsdd_dld/asr1/dump/raw/test/wav.scp --text egs2/fsdd_dld/asr1/dump/raw/test/text \\
        --json bench/results/depth_budget_fsdd_dld.json --png bench/results/depth_budget_fsdd_dld.png

``--calibration_blocks 12`` also times the calibration of a randomly
initialised 12-block, d=256 conformer built from the model's config (how long
loading with ``rtf_budget`` takes for a paper-sized encoder).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, fmt, read_scp, save_figure, write_json  # noqa: E402

sys.path.insert(0, str(REPO))
from espnet_dld.utils.cli import str2bool_or_none  # noqa: E402

MODES = ("full", "depth1", "fixed", "adaptive_blind", "adaptive")
BUSY_LOOP = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


class Competitor:
    """A busy loop on one core, at this process's priority (started and
    stopped by us, by its process id)."""

    def __init__(self, core: int):
        self.core, self.proc = core, None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.core)])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


class Decoder(NamedTuple):
    """One pass's decoder: the instance, the depth it is held at (None: its
    budget's), the torch threads once the load runs (None: the caller's)."""

    s2t: object
    depth: Optional[int]
    threads_under_load: Optional[int]


def pass_order(modes: Sequence[str], rng: random.Random) -> List[str]:
    """The order the passes decode one utterance in: shuffled afresh for each
    (``rng`` seeded per run), so that no pass always follows the same one.  A
    call runs faster right after one on the same model instance (its weights
    still cached: a depth-1 call 1.7-3.4 %, one-off, docs/depth_budget.md); a
    rotation keeps the cyclic order, and with it put the depth1 pass after
    the full pass, then on the same instance, on 4 utterances of 5."""
    order = list(modes)
    rng.shuffle(order)
    return order


def decode_interleaved(decoders: Dict[str, Decoder], utts: List[Tuple[str, np.ndarray]], load_at: int,
                       competitor: Competitor, seed: int = 0) -> Dict[str, List[Dict]]:
    """Decode every utterance with every decoder, one after the other, before
    the next utterance (timed one by one); the competitor runs from
    utterance ``load_at`` on.  With several decoders the passes are paired:
    this host's speed drifts by up to 2x over the minute a pass takes, so
    passes run one after the other compare moments as much as decoders."""
    threads, rng = torch.get_num_threads(), random.Random(seed)
    out: Dict[str, List[Dict]] = {mode: [] for mode in decoders}
    try:
        for i, (key, speech) in enumerate(utts):
            if i == load_at:
                competitor.start()
                time.sleep(0.3)  # let it get going
            for mode in pass_order(list(decoders), rng):
                s2t, depth, under_load = decoders[mode]
                torch.set_num_threads(under_load if under_load and i >= load_at else threads)
                start = time.perf_counter()
                result = s2t(speech, depth=depth)
                seconds = time.perf_counter() - start
                duration = len(speech) / s2t.sample_rate
                last = s2t.depth_budget.history[-1] if s2t.depth_budget is not None else None
                out[mode].append({"key": key, "loaded": i >= load_at, "depth": s2t.last_depth, "duration": duration,
                                  "seconds": seconds, "rtf": seconds / duration, "text": result[0][0],
                                  "level": last.level if last else None, "threads": torch.get_num_threads()})
    finally:
        competitor.stop()
        torch.set_num_threads(threads)
    return out


def wer(records: List[Dict], refs: Dict[str, str]) -> float:
    from espnet_dld.utils.scoring import corpus_wer

    keys = list(dict.fromkeys(r["key"] for r in records))  # --repeat decodes a key several times
    last = {r["key"]: r["text"] for r in records}
    return corpus_wer([refs[k] for k in keys], [last[k] for k in keys])


def against_depth1(records: List[Dict], depth1: List[Dict], budget: float) -> Dict:
    """A pass's misses after the load set against the depth1 pass's on the
    same utterances (meaningful where the passes were interleaved): its
    misses at depth 1 (where no controller could go lower) and deeper (a
    depth chosen too deep), the depth1 pass's, both on the same utterance,
    and the median ratio of its RTF to depth 1's on the utterances it
    decoded at depth 1 (what its calls cost beyond depth 1's own)."""
    pairs = [(r, d) for r, d in zip(records, depth1) if r["loaded"]]
    if any(r["key"] != d["key"] for r, d in pairs):
        raise ValueError("the passes decoded different utterances in the same position")
    at_depth1 = [r["rtf"] / d["rtf"] for r, d in pairs if r["depth"] == 1]
    return {"misses_at_depth1": sum(r["rtf"] > budget for r, _ in pairs if r["depth"] == 1),
            "misses_deeper": sum(r["rtf"] > budget for r, _ in pairs if r["depth"] > 1),
            "depth1_misses": sum(d["rtf"] > budget for _, d in pairs),
            "both_missed": sum(r["rtf"] > budget and d["rtf"] > budget for r, d in pairs),
            "utterances_at_depth1": len(at_depth1),
            "rtf_over_depth1_median": statistics.median(at_depth1) if at_depth1 else None}


def summarise(records: List[Dict], budget: float, refs: Dict[str, str]) -> Dict:
    before = [r for r in records if not r["loaded"]]
    after = [r for r in records if r["loaded"]]

    def share(rs):
        return sum(r["rtf"] <= budget for r in rs) / len(rs) if rs else None

    return {"within_budget_before": share(before), "within_budget_after": share(after),
            "mean_depth": statistics.fmean(r["depth"] for r in records),
            "mean_depth_before": statistics.fmean(r["depth"] for r in before),
            "mean_depth_after": statistics.fmean(r["depth"] for r in after),
            "mean_rtf_before": statistics.fmean(r["rtf"] for r in before),
            "mean_rtf_after": statistics.fmean(r["rtf"] for r in after),
            # the spread a budget has to absorb: a share within it is decided by the slow tail
            "rtf_p50_p95_before": np.percentile([r["rtf"] for r in before], [50, 95]).tolist(),
            "rtf_p50_p95_after": np.percentile([r["rtf"] for r in after], [50, 95]).tolist(),
            "wer": wer(records, refs)}


def calibration_time(config: Path, blocks: int, seconds: float) -> Dict:
    """Load a randomly initialised ``blocks``-block, d=256 conformer from
    ``config`` with ``rtf_budget`` and time its calibration."""
    from espnet_dld import Speech2Text
    from espnet_dld.asr.depth_budget import CALIBRATION_PASSES

    conf = yaml.safe_load(config.read_text())
    conf["encoder_conf"].update(num_blocks=blocks, output_size=256, attention_heads=4, linear_units=1024)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(conf))
        start = time.perf_counter()
        s2t = Speech2Text(path, rtf_budget=1e9, ctc_greedy=True, calibration_seconds=seconds,
                          calibration_passes=CALIBRATION_PASSES, device="cpu")
        load = time.perf_counter() - start
    params = sum(p.numel() for p in s2t.asr_model.parameters())
    return {"num_blocks": blocks, "output_size": 256, "input_layer": conf["encoder_conf"].get("input_layer"),
            "parameters": params, "calibration_seconds": seconds,
            "calibration_decodes": 1 + len(s2t.calibration_points) * CALIBRATION_PASSES,
            "calibration_wall_s": s2t.calibration_seconds_taken, "load_wall_s": load}


def plot(passes: Dict[str, List[Dict]], budget: float, load_at: int, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rtf, ax_depth) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    colors = {"full": "tab:red", "depth1": "tab:green", "fixed": "tab:orange", "adaptive_blind": "tab:gray",
              "adaptive": "tab:blue"}
    for mode, records in passes.items():
        x = range(len(records))
        ax_rtf.plot(x, [r["rtf"] for r in records], ".", ms=3, color=colors[mode], label=mode)
        ax_depth.step(x, [r["depth"] for r in records], where="mid", color=colors[mode], label=mode)
    for ax in (ax_rtf, ax_depth):
        ax.axvline(load_at - 0.5, color="k", ls=":", lw=1)
        ax.grid(alpha=0.3)
    ax_rtf.axhline(budget, color="k", ls="--", lw=1, label=f"budget {budget:.4f}")
    ax_rtf.set_yscale("log")
    ax_rtf.set_ylabel("RTF per utterance")
    ax_rtf.set_title(title, fontsize=10)
    ax_rtf.legend(fontsize=8, loc="upper left")
    ax_depth.set_ylabel("encoder depth")
    ax_depth.set_xlabel("utterance (the competing process runs right of the dotted line)")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="packed DLD model zip")
    parser.add_argument("--wav_scp", type=Path, required=True)
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--budget_point", type=float, default=0.5,
                        help="budget between depth 1's (0) and full depth's (1) calibrated RTF")
    parser.add_argument("--rtf_budget", type=float, default=None, help="the budget itself (overrides --budget_point)")
    parser.add_argument("--repeat", type=int, default=1, help="decode the test set this many times per pass")
    parser.add_argument("--runs", type=int, default=3,
                        help="independent runs (each mode's pass, budgeted instances calibrated afresh); the host's "
                        "speed varies between runs, so one run settles nothing")
    parser.add_argument("--max_utts", type=int, default=None)
    parser.add_argument("--core", type=int, default=1, help="the core the competing process takes")
    parser.add_argument("--decoder_core", type=int, default=None,
                        help="pin the decoder to this core with one thread (a deployment that gives each decoder "
                        "a core); with --core the same, the competitor shares the decoder's own core")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the decoder")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="the passes to run")
    parser.add_argument("--seed", type=int, default=0,
                        help="the interleaved passes' orders are shuffled with seed * runs + run (give each "
                        "invocation of a set its own)")
    parser.add_argument("--order", choices=("interleaved", "sequential"), default="interleaved",
                        help="interleaved: each utterance decoded by every pass in turn (paired: the host's speed "
                        "drifts between passes run one after the other); sequential: one pass after the other, "
                        "as the results before 2026-12-06 were measured")
    parser.add_argument("--adapt_threads", type=str2bool_or_none, default=None,
                        help="whether the adaptive pass sets the decoder's threads to the cores left free "
                        "(default: Speech2Text's, on with the sensor)")
    parser.add_argument("--load_window", type=int, default=None,
                        help="the adaptive passes' load window (default: CostModel's)")
    parser.add_argument("--load_quantile", type=float, default=None,
                        help="the adaptive passes' load quantile (default: CostModel's; 0.9 with window 10 was "
                        "the earlier default)")
    parser.add_argument("--calibration_blocks", type=int, default=0,
                        help="also time the calibration of a random conformer of this many blocks (d=256)")
    parser.add_argument("--note", type=str, default=None, help="what else ran on the machine, for the JSON")
    parser.add_argument("--json", type=str, default=None)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()

    from espnet_dld import Speech2Text
    from espnet_dld.utils.model_zoo import unpack_model

    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    if (args.load_window is not None and args.load_window < 1) or not 0 <= (args.load_quantile or 0) <= 1:
        parser.error(f"--load_window must be >= 1 and --load_quantile in [0, 1], got {args.load_window}, "
                     f"{args.load_quantile}")
    if args.decoder_core is not None:
        if args.threads != 1:
            parser.error(f"--decoder_core {args.decoder_core} pins the decoder to one core: give --threads 1, "
                         f"not {args.threads}")
        os.sched_setaffinity(0, {args.decoder_core})
    torch.set_num_threads(args.threads)
    files = unpack_model(args.model)
    refs = {k: v.strip() for k, v in read_scp(args.text).items()}
    wavs = list(read_scp(args.wav_scp).items())[: args.max_utts]
    full = Speech2Text(**files, ctc_greedy=True, device="cpu")
    unbudgeted = {"full": full, "depth1": Speech2Text(**files, ctc_greedy=True, device="cpu")}  # an instance each
    utts = [(key, full.audio_input.prepare(*sf.read(path, dtype="float32"))) for key, path in wavs]
    utts = utts * args.repeat
    mean_dur = statistics.fmean(len(s) / full.sample_rate for _, s in utts)
    probe = Speech2Text(**files, ctc_greedy=True, device="cpu", rtf_budget=1e9, calibration_seconds=mean_dur)
    cost = probe.depth_budget.cost
    n = probe.num_layers
    rtf1, rtfn = cost.rtf(1, mean_dur), cost.rtf(n, mean_dur)
    budget = args.rtf_budget or rtf1 + args.budget_point * (rtfn - rtf1)
    # a budget below depth 1's own cost on a quiet host: no controller can meet it for those utterances
    over_at_depth1 = sum(cost.rtf(1, len(s) / full.sample_rate) > budget for _, s in utts) / len(utts)
    print(f"{len(utts)} utterances, mean {mean_dur:.2f} s; calibrated RTF depth 1 {rtf1:.4f}, depth {n} "
          f"{rtfn:.4f} (calibration {probe.calibration_seconds_taken:.2f} s); budget {budget:.4f}; "
          f"{100 * over_at_depth1:.1f} % of the utterances are predicted over it at depth 1 on a quiet host")
    budgeted = dict(files, ctc_greedy=True, device="cpu", rtf_budget=budget, calibration_seconds=mean_dur)
    load_at = len(utts) // 2
    competitor = Competitor(args.core)
    load_average = {"start": os.getloadavg()}
    runs = []
    for run in range(args.runs):
        passes, results, adapt_threads = one_run(args, budgeted, unbudgeted, n, utts, load_at, competitor, budget,
                                                    refs, seed=args.seed * args.runs + run)
        runs.append({"passes": passes, "results": results})
        print(f"\nrun {run + 1} of {args.runs}")
        print_table(args.modes, results)
        for mode in ("adaptive_blind", "adaptive"):
            pair = results.get(mode, {}).get("after_load_against_depth1")
            if pair and pair["utterances_at_depth1"]:
                print(f"{mode} after the load against depth1 ({args.order}): misses at depth 1 "
                      f"{pair['misses_at_depth1']}, deeper {pair['misses_deeper']}; depth1's {pair['depth1_misses']} "
                      f"(both {pair['both_missed']}); its RTF over depth 1's at depth 1 (median of "
                      f"{pair['utterances_at_depth1']}) {pair['rtf_over_depth1_median']:.3f}")
    load_average["end"] = os.getloadavg()
    target, met = None, None
    if "adaptive" in args.modes:
        after = [r["results"]["adaptive"]["within_budget_after"] for r in runs]
        met = sum(a >= 0.95 for a in after)
        target = met == len(runs)
        print(f"\nadaptive within budget after the load: {', '.join(f'{100 * a:.1f}' for a in after)} % "
              f"(target >= 95 %: met in {met} of {len(runs)} runs)")
    if args.runs > 1:
        print("\nover the runs, within budget after the load (mean, min-max):")
        for mode in args.modes:
            after = [100 * r["results"][mode]["within_budget_after"] for r in runs]
            wers = [r["results"][mode]["wer"] for r in runs]
            print(f"  {mode}: {statistics.fmean(after):.1f} % ({min(after):.1f}-{max(after):.1f}); mean depth after "
                  f"{statistics.fmean(r['results'][mode]['mean_depth_after'] for r in runs):.2f}; WER "
                  f"{statistics.fmean(wers):.2f} % ({min(wers):.2f}-{max(wers):.2f})")
    calib = None
    if args.calibration_blocks:
        calib = calibration_time(Path(files["asr_train_config"]), args.calibration_blocks, 2.0)
        print(f"calibration of a random {calib['num_blocks']}-block d=256 conformer ({calib['parameters'] / 1e6:.1f} M "
              f"parameters), {calib['calibration_decodes']} decodes of 2 s / 1 s input, {args.threads} threads: "
              f"{calib['calibration_wall_s']:.2f} s")
    if args.png:
        pinned = "" if args.decoder_core is None else f"\n(decoder pinned to core {args.decoder_core}, 1 thread)"
        pinned += "" if adapt_threads is not False else "; adaptive keeps its threads"
        plot(runs[0]["passes"], budget, load_at, f"{args.model.name}: rtf_budget {budget:.4f}, competing process on "
             f"core {args.core} from utterance {load_at} (run 1 of {args.runs}; passes {args.order}){pinned}", args.png)
    write_json(args.json, {
        "model": str(args.model), "wav_scp": str(args.wav_scp), "utterances": len(utts), "repeat": args.repeat,
        "mean_duration_s": mean_dur, "order": args.order, "seed": args.seed, "threads": args.threads,
        "competitor_core": args.core, "decoder_core": args.decoder_core, "load_at": load_at,
        "note": args.note, "load_average_1_5_15min": load_average, "num_blocks": n,
        "calibrated_rtf": {"depth1": rtf1, f"depth{n}": rtfn},
        "calibration_wall_s": probe.calibration_seconds_taken, "rtf_budget": budget,
        "budget_point": None if args.rtf_budget else args.budget_point,
        "runs": [r["results"] for r in runs], "depth1_over_budget_quiet_share": over_at_depth1,
        "target_adaptive_within_after_0.95_every_run": target, "runs_meeting_target": met,
        "calibration_12_blocks": calib, "adapt_threads": adapt_threads,
        "load_rule_overrides": {"load_window": args.load_window, "load_quantile": args.load_quantile},
        "per_utterance": [{m: [{k: r[k] for k in ("key", "duration", "depth", "rtf", "loaded", "level", "threads")}
                               for r in run["passes"][m]] for m in args.modes} for run in runs],
    })


def one_run(args, budgeted: Dict, unbudgeted: Dict, n: int, utts, load_at: int, competitor: Competitor,
            budget: float, refs: Dict[str, str], seed: int = 0) -> Tuple[Dict, Dict, Optional[bool]]:
    """One pass per mode, budgeted instances built (and calibrated) afresh:
    a run's adaptive passes do not start from what an earlier run learned.
    ``--order interleaved`` builds them all first and decodes each utterance
    with every pass in turn (in an order shuffled with ``seed``); ``sequential``
    builds each right before its pass.  Every pass has a model instance of
    its own (``unbudgeted`` holds the full and depth1 passes')."""
    from espnet_dld import Speech2Text
    from espnet_dld.asr.cpu_contention import CpuContention

    options = {"fixed": {}, "adaptive_blind": dict(adaptive=True, cpu_contention=False),
               "adaptive": dict(adaptive=True, adapt_threads=args.adapt_threads)}
    fixed_depth = {"full": n, "depth1": 1}
    results: Dict[str, Dict] = {}

    def build(mode: str) -> Decoder:
        torch.set_num_threads(args.threads)  # each pass starts (and calibrates) with the same threads
        s2t, depth = ((unbudgeted[mode], fixed_depth[mode]) if mode in fixed_depth
                      else (Speech2Text(**budgeted, **options[mode]), None))
        if mode.startswith("adaptive"):  # set before any utterance is observed: the window is made on the first
            cost_model = s2t.depth_budget.cost
            cost_model.load_window = args.load_window or cost_model.load_window
            cost_model.load_quantile = cost_model.load_quantile if args.load_quantile is None else args.load_quantile
        s2t(utts[0][1], depth=depth)  # warm-up
        results[mode] = {"depth_chosen_at_load": s2t.depth_budget.depth if s2t.depth_budget is not None else depth}
        under_load = None  # depth 1 gets the threads the adaptive default would take: the cores left free
        if mode == "depth1" and args.adapt_threads is not False and CpuContention.available() \
                and args.decoder_core is None:
            under_load = max(1, args.threads - 1)
        return Decoder(s2t, depth, under_load)

    if args.order == "interleaved":
        decoders = {mode: build(mode) for mode in args.modes}
        torch.set_num_threads(args.threads)
        passes = decode_interleaved(decoders, utts, load_at, competitor, seed)
    else:
        decoders, passes = {}, {}
        for mode in args.modes:
            decoders[mode] = build(mode)
            passes[mode] = decode_interleaved({mode: decoders[mode]}, utts, load_at, competitor)[mode]
    for mode, (s2t, _, _) in decoders.items():
        results[mode].update(summarise(passes[mode], budget, refs))
        if mode.startswith("adaptive") and "depth1" in passes:
            results[mode]["after_load_against_depth1"] = against_depth1(passes[mode], passes["depth1"], budget)
        if s2t.depth_budget is not None:
            results[mode]["calibration_wall_s"] = s2t.calibration_seconds_taken
            results[mode]["cost_model_after"] = s2t.depth_budget.cost.as_dict()
    adapt_threads = decoders["adaptive"].s2t.depth_budget.adapt_threads if "adaptive" in decoders else None
    return passes, results, adapt_threads


def print_table(modes, results: Dict) -> None:
    print("| pass | within budget before load | after load | mean depth (before/after) | RTF p50/p95 before | "
          "after | WER (%) |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        r = results[mode]
        print(f"| {mode} | {100 * r['within_budget_before']:.1f} % | {100 * r['within_budget_after']:.1f} % | "
              f"{fmt(r['mean_depth'])} ({fmt(r['mean_depth_before'])}/{fmt(r['mean_depth_after'])}) | "
              f"{'/'.join(f'{x:.4f}' for x in r['rtf_p50_p95_before'])} | "
              f"{'/'.join(f'{x:.4f}' for x in r['rtf_p50_p95_after'])} | {fmt(r['wer'])} |")


if __name__ == "__main__":
    main()
