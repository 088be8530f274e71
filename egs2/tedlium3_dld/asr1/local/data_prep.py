#!/usr/bin/env python3
"""Stage 1 of tedlium3_dld: Kaldi-style data dirs from TED-LIUM release 3.

The *legacy* split is read (``TEDLIUM_release-3/legacy/{train,dev,test}``),
the one the published TED-LIUM 3 results use: one NIST SPHERE recording per
talk in ``sph/<talk>.sph`` and its transcript in ``stm/<talk>.stm``, one
segment a line::

    <talk> <channel> <speaker> <start> <end> <label> <words...>

Each set becomes ``data/<set>`` with a ``segments`` file (the talk is the
recording; stage 3 cuts the segments out of the SPHERE files with soundfile,
no ``sph2pipe``), ``utt2spk`` per talk, and the text ESPnet's
``egs2/tedlium3`` recipe trains and scores on:

* segments marked ``ignore_time_segment_in_scoring`` are left out;
* pronunciation-variant marks ``(2)`` and ``<sil>`` tokens are removed, and a
  trailing ``(utterance-name)`` (train STM lines carry one);
* a token starting with an apostrophe is joined to the one before it
  (``it 's`` -> ``it's``), as ESPnet's ``join_suffix.py`` does;
* ``<``, ``>``, ``{``, ``}`` become ``[`` and ``]``: ``<unk>`` is kept, as
  ``[unk]``, in training text and references alike (ESPnet does so, and
  declares ``[unk]`` one BPE symbol); removing it from the references only
  would score a model for not saying a word the transcribers could not write.
* lines identical to the one before (after sorting by talk and start time)
  are kept once, as ESPnet's ``join_suffix.py`` does.

Utterance ids are ``<talk>-<start cs>-<end cs>`` (centiseconds, 7 digits, as
ESPnet's), so the talk comes first and the ids sort by time within a talk.
A segment whose transcript is empty after normalisation is left out and
counted.  The training segments are widened by 0.15 s at the start and 0.1 s
at the end, as ESPnet's recipe does (Kaldi's ``extend_segment_times.py``),
never into the neighbouring segment (they meet half way) nor outside the
recording; a segment with end <= start is left as it is, so that stage 3
lists it.  Segment times are not checked against the audio here: stage 3
lists and drops the segments that do not fit their recording.

    python local/data_prep.py --tedlium_root /data/TEDLIUM_release-3 --out data
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile

from espnet_dld.data.kaldi_dir import Segment, Utterance, write_data_dir

SETS = ("train", "dev", "test")
SPLIT = "legacy"
IGNORE = "ignore_time_segment_in_scoring"
PRONUNCIATION_VARIANT = re.compile(r"\([0-9]\)")
TRAILING_NAME = re.compile(r"\s*\([^ ]*\)\s*$")
BRACKETS = str.maketrans("<>{}", "[][]")
TRAIN_PADDING = (0.15, 0.1)  # seconds added before and after a training segment (ESPnet's)


@dataclass(frozen=True)
class StmLine:
    """One STM segment, with where it came from."""

    talk: str
    start: float
    end: float
    words: str
    where: str  # <stm file>:<line>


def normalize_words(words: str) -> str:
    """ESPnet's TED-LIUM 3 text of an STM line's words (see the module doc)."""
    words = TRAILING_NAME.sub("", PRONUNCIATION_VARIANT.sub("", words))
    tokens = [t for t in words.split() if t != "<sil>"]
    joined: List[str] = []
    for t in tokens:
        if joined and t.startswith("'"):
            joined[-1] += t
        else:
            joined.append(t)
    return " ".join(joined).translate(BRACKETS)


def read_stm(path: Path) -> Tuple[List[StmLine], int]:
    """The scored segments of one STM file, and how many were marked
    ``ignore_time_segment_in_scoring``.  Raises ValueError naming the file and
    line of a malformed one."""
    lines: List[StmLine] = []
    ignored = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        fields = line.split(maxsplit=6)
        where = f"{path}:{lineno}"
        try:
            if len(fields) < 6:
                raise ValueError
            start, end = float(fields[3]), float(fields[4])
        except ValueError:
            raise ValueError(
                f"{where}: expected '<talk> <channel> <speaker> <start> <end> <label> <words...>', got {line!r}"
            ) from None
        words = fields[6] if len(fields) > 6 else ""
        if IGNORE in words.split():
            ignored += 1
            continue
        lines.append(StmLine(fields[0], start, end, words, where))
    return lines, ignored


def utt_id(talk: str, start: float, end: float) -> str:
    return f"{talk}-{int(round(start * 100)):07d}-{int(round(end * 100)):07d}"


def pad_segments(segs: List[Segment], duration: Optional[float], padding: Tuple[float, float]) -> List[Segment]:
    """Widen the well-formed segments of one recording (sorted by start) by
    ``padding`` (before, after), within [0, ``duration``] when it is known,
    never past the middle of the gap to a neighbour, never narrower than
    they were."""
    before, after = padding
    out = []
    for i, s in enumerate(segs):
        if s.end <= s.start:
            out.append(s)  # bad: left for stage 3 to list
            continue
        lo, hi = max(0.0, s.start - before), s.end + after
        if duration is not None:
            hi = max(s.end, min(hi, duration))
        prev = next((p for p in reversed(segs[:i]) if p.end > p.start), None)
        nxt = next((n for n in segs[i + 1:] if n.end > n.start), None)
        if prev is not None and lo < prev.end + after:
            lo = max(lo, min(s.start, (prev.end + s.start) / 2))
        if nxt is not None and hi > nxt.start - before:
            hi = min(hi, max(s.end, (s.end + nxt.start) / 2))
        out.append(replace(s, start=lo, end=hi))
    return out


def recording_duration(path: Path) -> Optional[float]:
    """Seconds of a SPHERE file from its header; None when unreadable (stage 3 says why)."""
    try:
        return soundfile.info(str(path)).duration
    except Exception:
        return None


def read_set(
    root: Path, name: str, padding: Optional[Tuple[float, float]] = None
) -> Tuple[List[Utterance], Dict[str, int]]:
    """The utterances of ``legacy/<name>`` and counts of what was left out.

    Raises ValueError naming a missing folder, a malformed STM line, two STM
    lines with the same utterance id and different words, or the talks whose
    recording is missing.
    """
    set_dir = root / SPLIT / name
    stm_files = sorted((set_dir / "stm").glob("*.stm"))
    if not stm_files:
        raise ValueError(f"{set_dir / 'stm'}: no .stm files (expected TEDLIUM_release-3/{SPLIT}/{name}/stm/<talk>.stm)")
    lines: List[StmLine] = []
    counts = {"ignored": 0, "empty": 0, "duplicate": 0}
    for stm in stm_files:
        got, ignored = read_stm(stm)
        lines += got
        counts["ignored"] += ignored
    lines.sort(key=lambda s: (s.talk.encode(), s.start, s.end))
    by_talk: Dict[str, List[Tuple[str, Segment, str]]] = {}
    seen: Dict[str, Tuple[str, StmLine]] = {}
    for s in lines:
        text = normalize_words(s.words)
        if not text:
            counts["empty"] += 1
            continue
        uid = utt_id(s.talk, s.start, s.end)
        if uid in seen:
            if seen[uid][0] == text:
                counts["duplicate"] += 1
                continue
            raise ValueError(f"{s.where}: utterance {uid} also at {seen[uid][1].where}, with other words")
        seen[uid] = (text, s)
        by_talk.setdefault(s.talk, []).append((uid, Segment(s.talk, s.start, s.end), text))
    utts: List[Utterance] = []
    missing: List[str] = []
    for talk, rows in by_talk.items():
        sph = set_dir / "sph" / f"{talk}.sph"
        if not sph.is_file():
            missing.append(str(sph))
            continue
        segs = [seg for _, seg, _ in rows]
        if padding is not None:
            segs = pad_segments(segs, recording_duration(sph), padding)
        utts += [Utterance(uid, str(sph.resolve()), text, talk, seg) for (uid, _, text), seg in zip(rows, segs)]
    if missing:
        shown = "\n  ".join(missing[:5])
        raise ValueError(f"{set_dir}: the recordings of {len(missing)} talks are missing, e.g.\n  {shown}")
    if not utts:
        raise ValueError(f"{set_dir / 'stm'}: no scored segment in {len(stm_files)} STM files")
    return utts, counts


def find_root(path: Path) -> Path:
    """The ``TEDLIUM_release-3`` folder: ``path`` itself or the one in it."""
    for cand in (path, path / "TEDLIUM_release-3"):
        if (cand / SPLIT).is_dir():
            return cand
    raise ValueError(f"{path}: neither it nor {path / 'TEDLIUM_release-3'} holds a {SPLIT}/ folder")


def prepare(tedlium: Path, out: Path, sets: Sequence[str] = SETS,
            train_padding: Tuple[float, float] = TRAIN_PADDING) -> Dict[str, Dict[str, int]]:
    """Write data/<set> for each of ``sets``; returns per set the utterances
    written and what was left out."""
    root = find_root(tedlium)
    report = {}
    for name in sets:
        utts, counts = read_set(root, name, train_padding if name == "train" else None)
        write_data_dir(utts, out / name)
        report[name] = {"utterances": len(utts), "talks": len({u.spk for u in utts}), **counts}
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tedlium_root", type=Path, required=True,
                        help="TEDLIUM_release-3, or the folder holding it")
    parser.add_argument("--out", type=Path, default=Path("data"), help="where the data dirs go")
    parser.add_argument("--train_padding", type=float, nargs=2, default=TRAIN_PADDING, metavar=("BEFORE", "AFTER"),
                        help="seconds added around each training segment (0 0: none)")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.tedlium_root, args.out, train_padding=tuple(args.train_padding))
    except ValueError as e:
        print(f"local/data_prep.py: ERROR: {e}", file=sys.stderr)
        return 1
    for name, r in report.items():
        print(f"data/{name}: {r['utterances']} utterances from {r['talks']} talks; left out: "
              f"{r['ignored']} {IGNORE}, {r['empty']} empty after normalisation, {r['duplicate']} duplicate lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
