"""Kaldi-style data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``
and, for utterances cut from longer recordings, ``segments``.

ESPnet's recipes (and Kaldi's ``utils/``) expect every file sorted by its key in
C-locale byte order, the same utterance set in every utterance-keyed file, and
utterance ids that start with their speaker id, so that sorting ``utt2spk`` by
utterance and ``spk2utt`` by speaker give the same order.  :func:`write_data_dir`
enforces these rules when writing and :func:`validate_data_dir` checks them on
an existing folder, naming the file and the first line that breaks one.

With a ``segments`` file (``<utt> <recording> <start> <end>``, seconds, end
``-1`` = to the end of the recording, as ESPnet's ``format_wav_scp.py`` reads
it) ``wav.scp`` is keyed by recording instead of utterance.  Whether a
segment's times fit its recording is not checked here (that needs the audio):
stage 3 (``pyscripts/format_audio.py``) lists and drops the ones that do not.

Command line::

    python -m espnet_dld.data.kaldi_dir validate data/train [--no_check_wavs]
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from espnet_dld.data.atomic import write_text_atomic

PathLike = Union[str, os.PathLike]

UTT_FILES = ("wav.scp", "text", "utt2spk")
DATA_FILES = UTT_FILES + ("spk2utt",)


@dataclass(frozen=True)
class Segment:
    """Where an utterance lies in a longer recording: one ``segments`` line."""

    recording: str
    start: float  # seconds
    end: float  # seconds; -1: to the end of the recording


@dataclass(frozen=True)
class Utterance:
    """One entry of a data directory."""

    utt_id: str
    wav: str  # a path (or any wav.scp rxspecifier); with a segment: its recording's
    text: str
    spk: str
    segment: Optional[Segment] = None


def format_seconds(t: float) -> str:
    """A segment time as ``segments`` holds it: at most 3 decimals, ``-1`` kept."""
    return format(round(t, 3), ".3f").rstrip("0").rstrip(".") or "0"


def parse_segment(value: str, where: str) -> Segment:
    """``<recording> <start> <end>`` (the value of a ``segments`` line)."""
    parts = value.split()
    try:
        if len(parts) != 3:
            raise ValueError
        return Segment(parts[0], float(parts[1]), float(parts[2]))
    except ValueError:
        raise ValueError(f"{where}: expected '<utt> <recording> <start> <end>' (seconds), got {value!r}") from None


def _sort_key(key: str) -> bytes:
    # Kaldi sorts with LC_ALL=C: byte order of the UTF-8 encoding.
    return key.encode("utf-8")


def _check_id(kind: str, value: str, where: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{where}: {kind} {value!r} is empty or contains whitespace")


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace so a transcript fits on one ``text`` line."""
    return " ".join(text.split())


def check_utterances(utts: Iterable[Utterance]) -> List[Utterance]:
    """Return ``utts`` sorted by utterance id after checking the Kaldi rules.

    Raises ValueError naming the offending utterance (duplicate id, id not
    prefixed by its speaker, empty transcript, whitespace in ids, newline in
    the wav entry, or speakers whose order disagrees with the utterance order).
    """
    by_id: Dict[str, Utterance] = {}
    for u in utts:
        where = f"utterance {u.utt_id!r}"
        _check_id("utterance id", u.utt_id, where)
        _check_id("speaker id", u.spk, where)
        if u.utt_id in by_id:
            raise ValueError(f"{where}: duplicate utterance id")
        if not u.utt_id.startswith(u.spk):
            raise ValueError(
                f"{where}: utterance id must start with its speaker id {u.spk!r} "
                "(Kaldi sorts utt2spk and spk2utt the same way only then)"
            )
        if not normalize_text(u.text):
            raise ValueError(f"{where}: empty transcript")
        if not u.wav.strip() or "\n" in u.wav or "\r" in u.wav:
            raise ValueError(f"{where}: bad wav entry {u.wav!r}")
        by_id[u.utt_id] = u
    ordered = [by_id[k] for k in sorted(by_id, key=_sort_key)]
    _check_speaker_order([(u.utt_id, u.spk) for u in ordered], "sorted utterances")
    return ordered


def _check_speaker_order(pairs: Sequence[Tuple[str, str]], where: str) -> None:
    """Speakers must appear in sorted, contiguous runs when utts are sorted."""
    seen = set()
    prev: Optional[str] = None
    for i, (utt, spk) in enumerate(pairs, start=1):
        if spk != prev:
            if spk in seen or (prev is not None and _sort_key(spk) < _sort_key(prev)):
                raise ValueError(
                    f"{where}:{i}: speaker {spk!r} of utterance {utt!r} is out of order: "
                    "sorting by utterance and by speaker disagree "
                    "(prefix utterance ids with the speaker id and a '-')"
                )
            seen.add(spk)
            prev = spk


def spk2utt_of(utts: Sequence[Utterance]) -> Dict[str, List[str]]:
    """Speaker -> its utterance ids, both in sorted order."""
    out: Dict[str, List[str]] = {}
    for u in sorted(utts, key=lambda u: _sort_key(u.utt_id)):
        out.setdefault(u.spk, []).append(u.utt_id)
    return {k: out[k] for k in sorted(out, key=_sort_key)}


def write_data_dir(utts: Iterable[Utterance], out_dir: PathLike) -> Path:
    """Write ``wav.scp``, ``text``, ``utt2spk`` and ``spk2utt`` into ``out_dir``.

    Each file is written atomically and only when its content changes, so a
    re-run with the same utterances leaves the folder byte-identical and
    untouched.
    """
    out_dir = Path(out_dir)
    ordered = check_utterances(utts)
    if not ordered:
        raise ValueError(f"{out_dir}: no utterances to write")
    segmented = [u for u in ordered if u.segment is not None]
    if segmented and len(segmented) != len(ordered):
        u = next(u for u in ordered if u.segment is None)
        raise ValueError(f"utterance {u.utt_id!r}: no segment, but others have one (all or none)")
    if segmented:
        recordings: Dict[str, str] = {}
        for u in ordered:
            rec = u.segment.recording
            _check_id("recording id", rec, f"utterance {u.utt_id!r}")
            if recordings.setdefault(rec, u.wav) != u.wav:
                raise ValueError(f"recording {rec!r} has two audio entries: {recordings[rec]!r} and {u.wav!r}")
        wav_rows = [(r, recordings[r]) for r in sorted(recordings, key=_sort_key)]
    else:
        wav_rows = [(u.utt_id, u.wav) for u in ordered]
    files = {
        "wav.scp": "".join(f"{k} {w}\n" for k, w in wav_rows),
        "text": "".join(f"{u.utt_id} {normalize_text(u.text)}\n" for u in ordered),
        "utt2spk": "".join(f"{u.utt_id} {u.spk}\n" for u in ordered),
        "spk2utt": "".join(
            f"{spk} {' '.join(ids)}\n" for spk, ids in spk2utt_of(ordered).items()
        ),
    }
    if segmented:
        files["segments"] = "".join(
            f"{u.utt_id} {u.segment.recording} {format_seconds(u.segment.start)} {format_seconds(u.segment.end)}\n"
            for u in ordered
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_text_atomic(out_dir / name, content)
    if not segmented and (out_dir / "segments").exists():
        (out_dir / "segments").unlink()  # from an earlier, segmented write
    return out_dir


def read_kv(
    path: PathLike, allow_empty_value: bool = False, kaldi_sorted: bool = True
) -> List[Tuple[int, str, str]]:
    """(line number, key, value) of a ``key value`` file (``wav.scp``,
    ``text``, an scp or shape file, ...): the one reader of such files.

    ``kaldi_sorted`` also requires unique keys in Kaldi's (LC_ALL=C) order, as
    a data directory has them; without it the rows come in file order (ESPnet's
    shape files and ark/scp pairs are not sorted).  Errors name the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: missing" + (" (required in a Kaldi data directory)" if kaldi_sorted else ""))
    rows: List[Tuple[int, str, str]] = []
    prev: Optional[str] = None
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            parts = line.split(maxsplit=1)
            if not parts or line != line.lstrip():
                raise ValueError(f"{path}:{lineno}: malformed line {line!r}")
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise ValueError(f"{path}:{lineno}: empty value for {key!r}: {line!r}")
            if kaldi_sorted and prev is not None and _sort_key(key) <= _sort_key(prev):
                problem = "duplicate key" if key == prev else "not sorted (LC_ALL=C order)"
                raise ValueError(f"{path}:{lineno}: {problem}: {line!r} after {prev!r}")
            prev = key
            rows.append((lineno, key, value))
    if not rows:
        raise ValueError(f"{path}: empty file")
    return rows


def read_keys(path: PathLike) -> List[str]:
    """The keys (first column) of a ``key value`` file, in file order (none
    for an empty file)."""
    if Path(path).is_file() and not Path(path).read_text(encoding="utf-8").strip():
        return []
    return [key for _, key, _ in read_kv(path, allow_empty_value=True, kaldi_sorted=False)]


def _wav_file_of(entry: str) -> Optional[Path]:
    """The file a wav.scp entry reads, or None for a command pipe."""
    entry = entry.strip()
    if entry.endswith("|"):
        return None
    path = Path(entry)
    if not path.exists() and ":" in entry:
        # ark:offset specifier, e.g. foo.ark:1234
        head, _, tail = entry.rpartition(":")
        if tail.isdigit():
            return Path(head)
    return path


def validate_data_dir(path: PathLike, check_wavs: bool = True) -> int:
    """Check a data directory against the Kaldi conventions.

    Checks: the four files exist and are sorted without duplicates; ``wav.scp``
    (or, with a ``segments`` file, ``segments``), ``text`` and ``utt2spk`` hold
    the same utterances, and every segment's recording is in ``wav.scp``; no
    transcript is empty;
    utterance ids start with their speaker id and speaker order agrees with
    utterance order; ``spk2utt`` is exactly the inverse of ``utt2spk``; and (if
    ``check_wavs``) every wav file exists (relative paths from the current
    folder, as ESPnet reads them).

    Returns the number of utterances.  Raises ValueError naming the file and
    the first bad line.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a directory")
    wav = read_kv(path / "wav.scp")
    utts = wav
    if (path / "segments").exists():
        utts = read_kv(path / "segments")
        recordings = {key for _, key, _ in wav}
        for lineno, key, value in utts:
            seg = parse_segment(value, f"{path / 'segments'}:{lineno}")
            if seg.recording not in recordings:
                raise ValueError(f"{path / 'segments'}:{lineno}: recording {seg.recording!r} of {key!r} not in wav.scp")
    utt_file = "segments" if utts is not wav else "wav.scp"
    text = read_kv(path / "text", allow_empty_value=True)
    utt2spk = read_kv(path / "utt2spk")
    spk2utt = read_kv(path / "spk2utt")

    for lineno, key, value in text:
        if not value:
            raise ValueError(f"{path / 'text'}:{lineno}: empty transcript for {key!r}")

    ref = {key for _, key, _ in utts}
    for name, rows in (("text", text), ("utt2spk", utt2spk)):
        keys = {key for _, key, _ in rows}
        for lineno, key, _ in rows:
            if key not in ref:
                raise ValueError(f"{path / name}:{lineno}: utterance {key!r} not in {utt_file}")
        for lineno, key, _ in utts:
            if key not in keys:
                raise ValueError(
                    f"{path / utt_file}:{lineno}: utterance {key!r} missing from {name}"
                )

    for lineno, utt, spk in utt2spk:
        if len(spk.split()) != 1:
            raise ValueError(f"{path / 'utt2spk'}:{lineno}: bad speaker id {spk!r}")
        if not utt.startswith(spk):
            raise ValueError(
                f"{path / 'utt2spk'}:{lineno}: utterance {utt!r} does not start with "
                f"its speaker id {spk!r}"
            )
    _check_speaker_order([(u, s) for _, u, s in utt2spk], str(path / "utt2spk"))

    expected: Dict[str, List[str]] = {}
    for _, utt, spk in utt2spk:
        expected.setdefault(spk, []).append(utt)
    for lineno, spk, value in spk2utt:
        if value.split() != expected.pop(spk, None):
            raise ValueError(
                f"{path / 'spk2utt'}:{lineno}: speaker {spk!r} does not list exactly "
                "its utterances from utt2spk in sorted order"
            )
    if expected:
        spk = sorted(expected, key=_sort_key)[0]
        raise ValueError(f"{path / 'spk2utt'}: speaker {spk!r} of utt2spk is missing")

    if check_wavs:
        for lineno, key, value in wav:
            f = _wav_file_of(value)
            if f is not None and not f.is_file():
                raise ValueError(
                    f"{path / 'wav.scp'}:{lineno}: audio file of {key!r} not found: {f}"
                )
    return len(utts)


def read_segments(path: PathLike) -> Dict[str, Segment]:
    """Utterance -> its segment, from a ``segments`` file (errors name the line)."""
    return {key: parse_segment(value, f"{path}:{lineno}") for lineno, key, value in read_kv(path)}


def read_data_dir(path: PathLike) -> List[Utterance]:
    """Read a data directory (validated, wav files not checked) as Utterances;
    with a ``segments`` file, each carries its segment and its recording's audio."""
    path = Path(path)
    validate_data_dir(path, check_wavs=False)
    wav = {k: v for _, k, v in read_kv(path / "wav.scp")}
    text = {k: v for _, k, v in read_kv(path / "text")}
    if (path / "segments").exists():
        segs = read_segments(path / "segments")
        return [
            Utterance(utt, wav[segs[utt].recording], text[utt], spk, segs[utt])
            for _, utt, spk in read_kv(path / "utt2spk")
        ]
    return [
        Utterance(utt, wav[utt], text[utt], spk)
        for _, utt, spk in read_kv(path / "utt2spk")
    ]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m espnet_dld.data.kaldi_dir",
        description="Tools for Kaldi-style data directories.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check data directories against Kaldi conventions")
    v.add_argument("dirs", nargs="+", metavar="DIR")
    v.add_argument(
        "--no_check_wavs",
        action="store_true",
        help="do not check that the audio files of wav.scp exist",
    )
    c = sub.add_parser("combine", help="merge data directories (disjoint utterance ids) into one")
    c.add_argument("out_dir", metavar="OUT_DIR")
    c.add_argument("dirs", nargs="+", metavar="DIR")
    return parser


def combine_data_dirs(out_dir: PathLike, dirs: Sequence[PathLike]) -> Path:
    """Write the union of ``dirs`` to ``out_dir``; a repeated utterance id is an error."""
    seen: Dict[str, Path] = {}
    utts: List[Utterance] = []
    for d in dirs:
        for u in read_data_dir(d):
            if u.utt_id in seen:
                raise ValueError(f"utterance {u.utt_id!r} is in both {seen[u.utt_id]} and {d}")
            seen[u.utt_id] = Path(d)
            utts.append(u)
    return write_data_dir(utts, out_dir)


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    if args.command == "combine":
        try:
            out = combine_data_dirs(args.out_dir, args.dirs)
        except ValueError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 1
        print(f"{out}: combined {len(args.dirs)} data dirs")
        return 0
    status = 0
    for d in args.dirs:
        try:
            n = validate_data_dir(d, check_wavs=not args.no_check_wavs)
        except ValueError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            status = 1
        else:
            n_spk = len(read_kv(Path(d) / "spk2utt"))
            print(f"{d}: OK ({n} utterances, {n_spk} speakers)")
    return status


if __name__ == "__main__":
    sys.exit(main())
