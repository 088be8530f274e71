#!/usr/bin/env python3
"""Collect the depth sweep of the teacher, the LD baseline and the DLD
student into one report: ``RESULTS.md``, ``results.json`` and a WER/RTF plot
per test set.

The point of the project is one number per (model, depth): how much WER a
dynamic-depth model gives up, and how much decoding time it saves, when only
K of its N encoder blocks run.  Those numbers are spread over one
``score/score.json`` and one ``decode_stats.json`` per decoding; this puts them
side by side, at the same depths, without inventing what was not decoded::

    <exp_dir>/<inference_tag>/<test_set>/depth<K>/score/score.json
    <exp_dir>/<inference_tag>/<test_set>/depth<K>/decode_stats.json
    <exp_dir>/<inference_tag>/<test_set>/full/...     (a static model)

``<inference_tag>`` is looked up as given and, failing that, as
``decode_<inference_tag>``.  A decoding written straight into
``<test_set>/`` (one depth, no ``depth<K>`` folder) is read too.
RTF = decode_seconds / (input_samples / input_rate).
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import math
import os
import platform
import re
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_dld.data.atomic import atomic_path, write_text_atomic
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

MODELS = ("teacher", "ld", "dld")
NAMES = {"teacher": "teacher", "ld": "LD", "dld": "DLD"}
DASH = "–"
_DEPTH_DIR = re.compile(r"^depth(\d+)$")


# -- reading ----------------------------------------------------------------
def parse_exp_dirs(items: Sequence[str]) -> Dict[str, Path]:
    """``["teacher=exp/a", "dld=exp/b"]`` -> ``{"teacher": Path("exp/a"), ...}``."""
    exp_dirs: Dict[str, Path] = {}
    for item in items:
        label, sep, path = item.partition("=")
        label = label.strip().lower()
        if not sep or not path:
            raise ValueError(f"--exp_dirs {item!r}: expected LABEL=DIR with LABEL one of {', '.join(MODELS)}")
        if label not in MODELS:
            raise ValueError(f"--exp_dirs {item!r}: unknown label {label!r}; use one of {', '.join(MODELS)}")
        if label in exp_dirs:
            raise ValueError(f"--exp_dirs: label {label!r} given twice")
        exp_dirs[label] = Path(path)
    if not exp_dirs:
        raise ValueError("--exp_dirs: give at least one LABEL=DIR")
    return exp_dirs


def _read_json(path: Path) -> Optional[Dict]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def decode_root(exp_dir: Path, inference_tag: str) -> Path:
    """``<exp_dir>/<inference_tag>``, or ``<exp_dir>/decode_<inference_tag>`` if
    only that exists (the first candidate when neither does)."""
    candidates = [exp_dir / inference_tag]
    if not inference_tag.startswith("decode_"):
        candidates.append(exp_dir / f"decode_{inference_tag}")
    for cand in candidates:
        if cand.is_dir():
            return cand
    return candidates[0]


def _depth_dirs(test_dir: Path) -> List[Tuple[Optional[int], Path]]:
    """The decode folders of one test set: ``(K, dir)`` for ``depth<K>``,
    ``(None, dir)`` for ``full`` or the test-set folder itself."""
    found: List[Tuple[Optional[int], Path]] = []
    if not test_dir.is_dir():
        return found
    for sub in sorted(test_dir.iterdir()):
        m = _DEPTH_DIR.match(sub.name)
        if sub.is_dir() and m:
            found.append((int(m.group(1)), sub))
        elif sub.is_dir() and sub.name == "full":
            found.append((None, sub))
    if not found and ((test_dir / "decode_stats.json").is_file() or (test_dir / "score" / "score.json").is_file()):
        found.append((None, test_dir))
    return found


def read_model(test_dir: Path, num_blocks: int, input_rate: float) -> Dict[int, Dict]:
    """All results of one model on one test set, keyed by depth."""
    results: Dict[int, Dict] = {}
    for dir_depth, ddir in _depth_dirs(test_dir):
        stats = _read_json(ddir / "decode_stats.json")
        score = _read_json(ddir / "score" / "score.json")
        if stats is None and score is None:
            logger.warning("%s: no decode_stats.json and no score/score.json; skipped", ddir)
            continue
        stats_depth = stats.get("depth") if stats else None
        if dir_depth is not None and stats_depth is not None and int(stats_depth) != dir_depth:
            raise ValueError(f"{ddir / 'decode_stats.json'}: depth {stats_depth} but the folder says {dir_depth}")
        depth = dir_depth if dir_depth is not None else int(stats_depth) if stats_depth is not None else num_blocks
        if not 1 <= depth <= num_blocks:
            raise ValueError(f"{ddir}: depth {depth} is outside 1..{num_blocks} (--num_blocks {num_blocks})")
        if depth in results:
            raise ValueError(f"{test_dir}: depth {depth} found twice: {results[depth]['dir']} and {ddir}")
        rec: Dict = {"dir": str(ddir), "wer": None, "cer": None, "rtf": None}
        if score is None:
            logger.warning("%s: decoded but not scored (no score/score.json)", ddir)
        else:
            if "wer" not in score:
                raise ValueError(f"{ddir / 'score' / 'score.json'}: no 'wer' field")
            rec.update(wer=score["wer"], cer=score.get("cer"), utterances=score.get("utterances"),
                       ref_words=score.get("ref_words"), missing_hyps=score.get("missing_hyps"))
            if score.get("missing_hyps"):
                logger.warning("%s: %s utterance(s) had no hypothesis", ddir, score["missing_hyps"])
        if stats is None:
            logger.warning("%s: no decode_stats.json, no RTF", ddir)
        else:
            samples, seconds = stats.get("input_samples"), stats.get("decode_seconds")
            rec.update(active_layers=stats.get("active_layers"), input_samples=samples, decode_seconds=seconds,
                       encoder_seconds=stats.get("encoder_seconds"))
            if samples and seconds is not None:
                rec["audio_seconds"] = samples / input_rate
                rec["rtf"] = seconds / rec["audio_seconds"]
                if stats.get("encoder_seconds") is not None:
                    rec["encoder_rtf"] = stats["encoder_seconds"] / rec["audio_seconds"]
            else:
                logger.warning("%s: decode_stats.json has no input_samples/decode_seconds, no RTF", ddir)
        results[depth] = rec
    return results


def collect(exp_dirs: Dict[str, Path], test_sets: Sequence[str], inference_tag: str, num_blocks: int,
            input_rate: float) -> Tuple[Dict[str, Dict[str, Dict[int, Dict]]], List[Path]]:
    """``{test_set: {model: {depth: record}}}`` and the folders looked in."""
    found: Dict[str, Dict[str, Dict[int, Dict]]] = {}
    looked: List[Path] = []
    for test_set in test_sets:
        found[test_set] = {}
        for model, exp_dir in exp_dirs.items():
            test_dir = decode_root(exp_dir, inference_tag) / test_set
            looked.append(test_dir)
            results = read_model(test_dir, num_blocks, input_rate)
            if results:
                found[test_set][model] = results
            else:
                logger.warning("no results in %s", test_dir)
    return found, looked


# -- tables -----------------------------------------------------------------
def _fmt(value: Optional[float], digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _ranges(layers: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    parts: List[str] = []
    layers = sorted(layers)
    start = prev = layers[0]
    for x in list(layers[1:]) + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(parts)


def _blocks(models: Dict[str, Dict[int, Dict]], depth: int, num_blocks: int) -> str:
    layers = {}
    for model in ("ld", "dld", "teacher"):
        rec = models.get(model, {}).get(depth)
        if rec and rec.get("active_layers"):
            layers[model] = _ranges(rec["active_layers"])
    if len(set(layers.values())) > 1:
        return " / ".join(f"{NAMES[m]} {v}" for m, v in layers.items())
    if layers:
        return next(iter(layers.values()))
    if depth == num_blocks and any(depth in recs for recs in models.values()):
        return "all"
    return DASH


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def build_rows(models: Dict[str, Dict[int, Dict]], num_blocks: int) -> List[Dict]:
    """One row per depth 1..N; ``None`` where nothing was decoded/scored.

    The teacher is static: its cells are filled at depth N only.
    """
    rows = []
    for depth in range(1, num_blocks + 1):
        row: Dict = {"depth": depth, "blocks": _blocks(models, depth, num_blocks)}
        for model in MODELS:
            rec = models.get(model, {}).get(depth)
            if model == "teacher" and depth != num_blocks:
                rec = None
            row[f"{model}_wer"] = rec["wer"] if rec else None
            row[f"{model}_rtf"] = rec["rtf"] if rec else None
        ld, dld = row["ld_wer"], row["dld_wer"]
        # Relative WER change of DLD against LD: negative = DLD is better.
        row["dld_vs_ld_rel"] = 100.0 * (dld - ld) / ld if ld and dld is not None else None
        rows.append(row)
    return rows


def mean_wers(rows: Sequence[Dict]) -> Dict:
    both = [r for r in rows if r["ld_wer"] is not None and r["dld_wer"] is not None]
    return {
        "ld": _mean([r["ld_wer"] for r in rows]),
        "ld_depths": sum(r["ld_wer"] is not None for r in rows),
        "dld": _mean([r["dld_wer"] for r in rows]),
        "dld_depths": sum(r["dld_wer"] is not None for r in rows),
        "ld_common": _mean([r["ld_wer"] for r in both]),
        "dld_common": _mean([r["dld_wer"] for r in both]),
        "common_depths": len(both),
    }


def markdown_table(rows: Sequence[Dict], means: Dict, num_blocks: int) -> str:
    header = ["depth", "blocks", "teacher WER", "LD WER", "DLD WER", "DLD vs LD (rel. %)",
              "teacher RTF", "LD RTF", "DLD RTF"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for r in rows:
        rel = DASH if r["dld_vs_ld_rel"] is None else f"{r['dld_vs_ld_rel']:+.1f}"
        cells = [str(r["depth"]), r["blocks"], _fmt(r["teacher_wer"], 2), _fmt(r["ld_wer"], 2),
                 _fmt(r["dld_wer"], 2), rel, _fmt(r["teacher_rtf"], 4), _fmt(r["ld_rtf"], 4),
                 _fmt(r["dld_rtf"], 4)]
        lines.append("| " + " | ".join(cells) + " |")
    mean_line = (f"Mean WER over depths: LD {_fmt(means['ld'], 2)} ({means['ld_depths']}/{num_blocks} depths), "
                 f"DLD {_fmt(means['dld'], 2)} ({means['dld_depths']}/{num_blocks} depths)")
    if means["common_depths"] and (means["common_depths"] != means["ld_depths"]
                                   or means["common_depths"] != means["dld_depths"]):
        mean_line += (f"; over the {means['common_depths']} depths both have: LD {_fmt(means['ld_common'], 2)}, "
                      f"DLD {_fmt(means['dld_common'], 2)}")
    return "\n".join(lines) + "\n\n" + mean_line + "."


# -- plot -------------------------------------------------------------------
def plot(models: Dict[str, Dict[int, Dict]], num_blocks: int, title: str, path: Path) -> bool:
    """WER and RTF against depth; returns False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"ld": dict(color="tab:blue", marker="o"), "dld": dict(color="tab:red", marker="s")}
    fig, (ax_wer, ax_rtf) = plt.subplots(2, 1, sharex=True, figsize=(7, 7))
    drawn = False
    for key, ax, label in (("wer", ax_wer, "WER (%)"), ("rtf", ax_rtf, "real-time factor")):
        for model in ("ld", "dld"):
            pts = sorted((d, r[key]) for d, r in models.get(model, {}).items() if r[key] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=NAMES[model], **styles[model])
                drawn = True
        teacher = models.get("teacher", {}).get(num_blocks)
        if teacher and teacher[key] is not None:
            ax.axhline(teacher[key], color="black", linestyle="--", linewidth=1,
                       label=f"teacher ({num_blocks} blocks)")
            ax.plot([num_blocks], [teacher[key]], color="black", marker="*", markersize=12, linestyle="none")
            drawn = True
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax_rtf.set_xlabel("encoder depth (blocks run)")
    ax_rtf.set_xticks(range(1, num_blocks + 1))
    ax_rtf.set_xlim(0.5, num_blocks + 0.5)
    ax_wer.set_title(title)
    fig.tight_layout()
    if drawn:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
    plt.close(fig)
    return drawn


# -- report -----------------------------------------------------------------
def _machine() -> Dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def make_report(
    exp_dirs: Dict[str, Path],
    test_sets: Sequence[str],
    inference_tag: str,
    num_blocks: int,
    out_dir: Path,
    input_rate: float = 16000,
    title: str = "Dynamic-depth ASR: WER and RTF against encoder depth",
    command: Optional[str] = None,
) -> str:
    """Write ``RESULTS.md``, ``results.json`` and ``wer_rtf_<test_set>.png``
    into ``out_dir``; returns the markdown tables (one section per test set)."""
    if num_blocks < 1:
        raise ValueError(f"--num_blocks must be >= 1, got {num_blocks}")
    if input_rate <= 0:
        raise ValueError(f"--input_rate must be > 0, got {input_rate}")
    if len(set(test_sets)) != len(test_sets):
        raise ValueError(f"--test_sets {list(test_sets)} repeats a test set")
    found, looked = collect(exp_dirs, test_sets, inference_tag, num_blocks, input_rate)
    if not any(found.values()):
        raise FileNotFoundError(
            "no decode results (depth<K>/ or full/ with score/score.json or decode_stats.json) found in: "
            + ", ".join(str(p) for p in looked)
        )
    out_dir = Path(out_dir)
    now = datetime.datetime.now().astimezone()
    machine = _machine()
    md = [
        f"# {title}",
        "",
        f"- date: {now.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- machine (where this report was made): {machine['processor']}, {machine['cpu_count']} CPUs, "
        f"{machine['platform']}",
        "- models: " + ", ".join(f"{NAMES[m]} = `{p}`" for m, p in exp_dirs.items()),
        f"- inference tag: `{inference_tag}`; encoder blocks N = {num_blocks}; "
        f"input rate {input_rate:g} model-input samples/s",
    ]
    if command:
        md.append(f"- command: `{command}`")
    md += [
        "",
        "WER in %.  `blocks`: 0-based indices of the encoder blocks that ran.  "
        "`DLD vs LD (rel. %)` = (DLD WER - LD WER) / LD WER x 100, negative = DLD better.  "
        "RTF = decode seconds / input seconds (input samples / input rate).  "
        f"`{DASH}` = not decoded or not scored.",
    ]
    tables: List[str] = []
    report: Dict = {
        "title": title, "date": now.isoformat(timespec="seconds"), "machine": machine,
        "command": command, "inference_tag": inference_tag, "num_blocks": num_blocks,
        "input_rate": input_rate, "exp_dirs": {m: str(p) for m, p in exp_dirs.items()}, "test_sets": {},
    }
    images: List[str] = []
    for test_set in test_sets:
        models = found[test_set]
        entry: Dict = {"results": models, "rows": [], "mean_wer": None, "plot": None}
        report["test_sets"][test_set] = entry
        md += ["", f"## {test_set}", ""]
        if not models:
            dirs = ", ".join(f"`{decode_root(p, inference_tag) / test_set}`" for p in exp_dirs.values())
            section = f"No results found in {dirs}."
            md.append(section)
            tables.append(f"## {test_set}\n\n{section}")
            continue
        for depth in sorted(models.get("teacher", {})):
            if depth != num_blocks:
                logger.warning("teacher decoded at depth %d on %s: in results.json, not in the table "
                               "(the table shows the teacher at depth %d only)", depth, test_set, num_blocks)
        rows = build_rows(models, num_blocks)
        means = mean_wers(rows)
        entry.update(rows=rows, mean_wer=means)
        section = markdown_table(rows, means, num_blocks)
        md.append(section)
        tables.append(f"## {test_set}\n\n{section}")
        png = f"wer_rtf_{test_set}.png"
        if plot(models, num_blocks, f"{title}\n{test_set}", out_dir / png):
            entry["plot"] = png
            images.append(f"![WER and RTF against depth, {test_set}]({png})")
    if images:
        md += ["", "## Plots", ""] + [line for img in images for line in (img, "")]
    write_text_atomic(out_dir / "RESULTS.md", "\n".join(md).rstrip("\n") + "\n")
    write_text_atomic(out_dir / "results.json", json.dumps(_jsonable(report), indent=1) + "\n")
    return "\n\n".join(tables)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="RESULTS.md, results.json and WER/RTF plots of a depth sweep (espnet-dld)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exp_dirs", type=str, nargs="+", required=True,
                        help="LABEL=DIR with LABEL teacher, ld or dld, e.g. teacher=exp/asr_teacher dld=exp/asr_dld")
    parser.add_argument("--test_sets", type=str, nargs="+", required=True, help="test set names, e.g. test dev")
    parser.add_argument("--inference_tag", type=str, required=True,
                        help="decode folder in each DIR (also tried with a decode_ prefix), e.g. decode_ctc_greedy")
    parser.add_argument("--num_blocks", type=int, required=True, help="N, the number of encoder blocks")
    parser.add_argument("--input_rate", type=float, default=16000,
                        help="model-input samples per second of audio (16000 for raw 16 kHz wav, 100 for fbank)")
    parser.add_argument("--out_dir", type=str, required=True, help="writes RESULTS.md, results.json and PNGs here")
    parser.add_argument("--title", type=str, default="Dynamic-depth ASR: WER and RTF against encoder depth")
    add_log_level(parser)
    return parser


def run(args: argparse.Namespace, command: str) -> None:
    tables = make_report(parse_exp_dirs(args.exp_dirs), args.test_sets, args.inference_tag, args.num_blocks,
                         Path(args.out_dir), args.input_rate, args.title, command)
    print(tables)
    print(f"\nWritten {Path(args.out_dir) / 'RESULTS.md'}")


def main(cmd: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if cmd is None else cmd)
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    command = "python pyscripts/make_report.py " + shlex.join(argv)
    return run_tool("make_report", lambda: run(args, command))


if __name__ == "__main__":
    sys.exit(main())
