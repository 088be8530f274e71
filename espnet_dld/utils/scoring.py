"""Scoring: word (and character) error rates, computed one way for every
number this project reports.

Corpus level: all substitutions, deletions and insertions over all
reference words (jiwer's alignment), not a mean of per-utterance rates.  An
empty hypothesis counts as all deletions.  :func:`score` scores a Kaldi
``text`` file of hypotheses against the reference ``text`` (words compared
as they are unless ``lowercase``); an utterance of the reference without a
hypothesis counts as all deletions (with a warning), a hypothesis for an
utterance not in the reference and an empty reference transcript are errors.
:func:`score_to_dir` writes ``score.json`` (read by the recipe's report) and
a readable ``result.txt``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import jiwer

from espnet_dld.data.atomic import write_text_atomic

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


def align_words(refs: Sequence[str], hyps: Sequence[str]) -> "jiwer.WordOutput":
    """jiwer's word alignment of each reference with its hypothesis (counts and chunks)."""
    return jiwer.process_words(list(refs), list(hyps))


def word_errors(words: "jiwer.WordOutput") -> int:
    """Substitutions + deletions + insertions of an alignment."""
    return words.substitutions + words.deletions + words.insertions


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus-level WER in percent of ``hyps`` against ``refs`` (same order)."""
    words = align_words(refs, hyps)
    return 100.0 * word_errors(words) / (words.hits + words.substitutions + words.deletions)


def read_text(path: PathLike, lowercase: bool = False) -> Dict[str, List[str]]:
    """Read a Kaldi ``text`` file: ``utt_id word word ...`` per line.

    A line with only the utterance id is an empty transcript.  Blank lines are
    skipped; a repeated utterance id is an error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    texts: Dict[str, List[str]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            utt, words = fields[0], fields[1:]
            if utt in texts:
                raise ValueError(f"{path}:{lineno}: utterance {utt!r} appears twice")
            texts[utt] = [w.lower() for w in words] if lowercase else words
    return texts


def _align(chunks, ref: List[str], hyp: List[str]) -> Tuple[List[str], List[str], List[str]]:
    """sclite-like aligned REF / HYP / EVAL columns from jiwer's chunks."""
    rows_ref: List[str] = []
    rows_hyp: List[str] = []
    rows_eval: List[str] = []
    for chunk in chunks:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "equal":
            pairs = [(a, b, "") for a, b in zip(r, h)]
        elif chunk.type == "substitute":
            pairs = [(a, b, "S") for a, b in zip(r, h)]
        elif chunk.type == "delete":
            pairs = [(a, "***", "D") for a in r]
        else:  # insert
            pairs = [("***", b, "I") for b in h]
        for a, b, e in pairs:
            width = max(len(a), len(b), len(e))
            rows_ref.append(a.ljust(width))
            rows_hyp.append(b.ljust(width))
            rows_eval.append(e.ljust(width))
    return rows_ref, rows_hyp, rows_eval


def score(
    ref_path: PathLike,
    hyp_path: PathLike,
    cer: bool = False,
    lowercase: bool = False,
) -> Tuple[Dict, List[Dict]]:
    """Score ``hyp_path`` against ``ref_path``.

    Returns the summary (the content of ``score.json``; percentages in %) and
    one record per reference utterance, in reference order.
    """
    refs = read_text(ref_path, lowercase)
    hyps = read_text(hyp_path, lowercase)
    if not refs:
        raise ValueError(f"reference {ref_path} has no utterances")
    empty = [utt for utt, words in refs.items() if not words]
    if empty:
        raise ValueError(
            f"reference {ref_path} has {len(empty)} empty transcript(s), e.g. utterance {empty[0]!r}; "
            "utterances without a transcript should have been filtered out of the test set"
        )
    unknown = [utt for utt in hyps if utt not in refs]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ValueError(
            f"hypothesis {hyp_path} has {len(unknown)} utterance(s) that are not in reference "
            f"{ref_path}: {shown}"
        )
    missing = [utt for utt in refs if utt not in hyps]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        logger.warning(
            "%d of %d utterances of %s have no hypothesis in %s (%s); they count as all deletions",
            len(missing), len(refs), ref_path, hyp_path, shown,
        )

    utts = list(refs)
    ref_words = [refs[u] for u in utts]
    hyp_words = [hyps.get(u, []) for u in utts]
    ref_strs = [" ".join(w) for w in ref_words]
    hyp_strs = [" ".join(w) for w in hyp_words]
    words = align_words(ref_strs, hyp_strs)

    records: List[Dict] = []
    for utt, r, h, chunks in zip(utts, ref_words, hyp_words, words.alignments):
        counts = {"substitute": 0, "delete": 0, "insert": 0}
        for chunk in chunks:
            if chunk.type in counts:
                counts[chunk.type] += max(chunk.ref_end_idx - chunk.ref_start_idx,
                                          chunk.hyp_end_idx - chunk.hyp_start_idx)
        errors = sum(counts.values())
        records.append({
            "utt": utt, "ref_words": len(r), "substitutions": counts["substitute"],
            "deletions": counts["delete"], "insertions": counts["insert"], "errors": errors,
            "wer": 100.0 * errors / len(r), "missing_hyp": utt not in hyps,
            "alignment": _align(chunks, r, h),
        })

    n_ref = sum(len(r) for r in ref_words)
    n_err = word_errors(words)
    summary: Dict = {
        "wer": round(100.0 * n_err / n_ref, 4),
        "cer": None,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "hits": words.hits,
        "ref_words": n_ref,
        "utterances": len(utts),
        "sentence_errors": sum(1 for rec in records if rec["errors"]),
        "missing_hyps": len(missing),
        "lowercase": lowercase,
        "ref": str(ref_path),
        "hyp": str(hyp_path),
    }
    if cer:
        # Characters of the space-joined words: the spaces between words count
        # as characters, like jiwer.cer and ESPnet's "<space>" char scoring.
        chars = jiwer.process_characters(ref_strs, hyp_strs)
        n_chars = chars.hits + chars.substitutions + chars.deletions
        summary.update(
            cer=round(100.0 * (chars.substitutions + chars.deletions + chars.insertions) / n_chars, 4),
            char_substitutions=chars.substitutions,
            char_deletions=chars.deletions,
            char_insertions=chars.insertions,
            char_hits=chars.hits,
            ref_chars=n_chars,
        )
    return summary, records


def _sum_table(label: str, snt: int, n: int, hits: int, sub: int, dele: int, ins: int, s_err: int) -> str:
    def pct(x: int, total: int) -> str:
        return f"{100.0 * x / total:6.1f}"

    unit = "# Wrd" if label == "words" else "# Chr"
    header = f"| {'SPKR':<9} | {'# Snt':>6} {unit:>7} | {'Corr':>6} {'Sub':>6} {'Del':>6} {'Ins':>6} {'Err':>6} {'S.Err':>6} |"
    line = "|" + "-" * (len(header) - 2) + "|"
    body = (
        f"| {'Sum/Avg':<9} | {snt:>6} {n:>7} | {pct(hits, n)} {pct(sub, n)} {pct(dele, n)} "
        f"{pct(ins, n)} {pct(sub + dele + ins, n)} {pct(s_err, snt)} |"
    )
    return "\n".join([f"{label}:", line, header, line, body, line])


def format_result(summary: Dict, records: Sequence[Dict], num_worst: int = 20) -> str:
    """The human-readable ``result.txt``."""
    s = summary
    errs = s["substitutions"] + s["deletions"] + s["insertions"]
    lines = [
        f"REF: {s['ref']}",
        f"HYP: {s['hyp']}",
        f"lowercase: {str(s['lowercase']).lower()}",
        "",
        f"%WER {s['wer']:.2f} [ {errs} / {s['ref_words']}, {s['insertions']} ins, "
        f"{s['deletions']} del, {s['substitutions']} sub ]",
    ]
    if s["cer"] is not None:
        cerrs = s["char_substitutions"] + s["char_deletions"] + s["char_insertions"]
        lines.append(
            f"%CER {s['cer']:.2f} [ {cerrs} / {s['ref_chars']}, {s['char_insertions']} ins, "
            f"{s['char_deletions']} del, {s['char_substitutions']} sub ]"
        )
    lines.append(f"%SER {100.0 * s['sentence_errors'] / s['utterances']:.2f} "
                 f"[ {s['sentence_errors']} / {s['utterances']} ]")
    if s["missing_hyps"]:
        lines.append(f"missing hypotheses: {s['missing_hyps']} (counted as all deletions)")
    lines += ["", _sum_table("words", s["utterances"], s["ref_words"], s["hits"], s["substitutions"],
                              s["deletions"], s["insertions"], s["sentence_errors"])]
    if s["cer"] is not None:
        lines += ["", _sum_table("characters (spaces count)", s["utterances"], s["ref_chars"], s["char_hits"],
                                  s["char_substitutions"], s["char_deletions"], s["char_insertions"],
                                  s["sentence_errors"])]
    wrong = sorted((r for r in records if r["errors"]), key=lambda r: (-r["errors"], -r["wer"], r["utt"]))
    lines += ["", f"Utterances with errors, worst first ({min(num_worst, len(wrong))} of {len(wrong)} shown):"]
    for rec in wrong[:num_worst]:
        ref_row, hyp_row, eval_row = rec["alignment"]
        note = "  (no hypothesis)" if rec["missing_hyp"] else ""
        lines += [
            "",
            f"{rec['utt']}: %WER {rec['wer']:.2f} [ {rec['errors']} / {rec['ref_words']}, "
            f"{rec['insertions']} ins, {rec['deletions']} del, {rec['substitutions']} sub ]{note}",
            "  REF:  " + " ".join(ref_row).rstrip(),
            "  HYP:  " + " ".join(hyp_row).rstrip(),
            "  EVAL: " + " ".join(eval_row).rstrip(),
        ]
    return "\n".join(lines) + "\n"


def score_to_dir(
    ref: PathLike, hyp: PathLike, out_dir: PathLike, cer: bool = False, lowercase: bool = False,
    num_worst: int = 20,
) -> Dict:
    """Score and write ``score.json`` and ``result.txt`` into ``out_dir``."""
    summary, records = score(ref, hyp, cer=cer, lowercase=lowercase)
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "result.txt", format_result(summary, records, num_worst))
    write_text_atomic(out_dir / "score.json", json.dumps(summary, indent=1) + "\n")
    return summary
