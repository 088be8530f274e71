#!/usr/bin/env python3
"""Stage 4: remove the utterances a training run should not see, before it
starts: too short or too long, an empty transcript, or missing from one of
the directory's files.

ESPnet's batch sampler and CTC loss fail (or waste memory) on such
utterances, and an utterance absent from, say, ``text`` breaks data loading
at an arbitrary step.  Durations come from ``utt2num_samples`` / ``--fs``
when ``<in_dir>/feats_type`` is ``raw`` and from ``utt2num_frames`` times the
frame shift (``<in_dir>/frame_shift`` in ms, else ``--frame_shift``) when it
is ``fbank``.  An utterance is kept when ``--min_seconds <= duration <=
--max_seconds`` (and its duration is above zero).

Every utterance-keyed file of the input (``wav.scp``, ``feats.scp``,
``text*``, ``utt2*``, ``*.scp``) is copied restricted to the kept
utterances, ``spk2utt`` is rebuilt from ``utt2spk``, other ``spk2*`` files
keep the remaining speakers, and the scalar files (``feats_type``,
``feats_dim``, ``frame_shift``, ...) are copied as they are.  Hidden files,
sub-directories, ``*.ark`` archives (``feats.scp`` keeps pointing at the
input's) and the reports ``bad_utts.txt``/``removed_utts.txt`` are not
copied.  The removed utterances are listed with their reason in
``<out_dir>/removed_utts.txt`` (``utt<TAB>reason``).

With ``--token_list`` the kept transcripts are also tokenized with ESPnet's
tokenizer, and those containing tokens that would map to ``<unk>`` are
counted in a warning (they are kept).

    python pyscripts/filter_data.py --in_dir dump/raw/org/train \
        --out_dir dump/raw/train --min_seconds 0.3 --max_seconds 20
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from espnet_dld.data.atomic import write_text_atomic
from espnet_dld.data.kaldi_dir import Utterance, read_kv, spk2utt_of
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: files of one line that are copied as they are
SCALAR_FILES = ("feats_type", "feats_dim", "frame_shift", "audio_format", "fs")
#: reports of the preparation tools, not data
REPORT_FILES = ("bad_utts.txt", "removed_utts.txt")
#: utterance-keyed files each feats_type needs, the duration file first
REQUIRED = {
    "raw": ("utt2num_samples", "wav.scp", "text", "utt2spk"),
    "fbank": ("utt2num_frames", "feats.scp", "text", "utt2spk"),
}


@dataclass
class FilterResult:
    """Outcome of :func:`filter_data`."""

    total: int
    kept: List[str]
    removed: Dict[str, str] = field(default_factory=dict)  # utt -> reason

    def summary(self) -> str:
        counts = Counter(self.removed.values())
        order = ["too short", "too long", "empty text"]
        reasons = [r for r in order if r in counts] + sorted(r for r in counts if r not in order)
        detail = ", ".join(f"{r}: {counts[r]}" for r in reasons)
        return f"filter_data: kept {len(self.kept)} of {self.total}" + (f" ({detail})" if detail else "")


def _is_utt_file(name: str) -> bool:
    return name in ("wav.scp", "text", "utt2spk") or name.startswith(("text", "utt2")) or name.endswith(".scp")


def _classify(in_dir: Path) -> Tuple[List[str], List[str], List[str]]:
    """(utterance-keyed, speaker-keyed, copied-as-is) file names of in_dir."""
    utt_files, spk_files, plain = [], [], []
    for p in sorted(in_dir.iterdir()):
        name = p.name
        if name.startswith(".") or not p.is_file() or name in REPORT_FILES or name.endswith(".ark"):
            continue
        if name == "segments":
            raise ValueError(f"{p}: data directories with segments are not supported")
        if name in SCALAR_FILES:
            plain.append(name)
        elif _is_utt_file(name):
            utt_files.append(name)
        elif name.startswith("spk2"):
            spk_files.append(name)
        else:
            logger.warning("%s: not an utterance- or speaker-keyed file; copied unchanged", p)
            plain.append(name)
    return utt_files, spk_files, plain


def _duration_reader(
    in_dir: Path, fs: int, frame_shift_ms: Optional[float]
) -> Tuple[str, str, Callable[[int], float]]:
    """(feats_type, duration file, its length -> seconds) of in_dir."""
    type_file = in_dir / "feats_type"
    if not type_file.is_file():
        raise ValueError(f"{type_file}: missing; cannot tell raw audio from fbank features")
    feats_type = type_file.read_text(encoding="utf-8").strip()
    if feats_type not in REQUIRED:
        raise ValueError(f"{type_file}: unknown feats_type {feats_type!r} (expected raw or fbank)")
    if feats_type == "raw":
        if fs <= 0:
            raise ValueError(f"--fs must be positive, got {fs}")
        return feats_type, "utt2num_samples", lambda n: n / fs
    if frame_shift_ms is None:
        shift_file = in_dir / "frame_shift"
        frame_shift_ms = 10.0
        if shift_file.is_file():
            try:
                frame_shift_ms = float(shift_file.read_text(encoding="utf-8").strip())
            except ValueError:
                raise ValueError(f"{shift_file}: not a number of milliseconds") from None
    if frame_shift_ms <= 0:
        raise ValueError(f"frame shift must be positive, got {frame_shift_ms} ms")
    return feats_type, "utt2num_frames", lambda n: n * frame_shift_ms / 1000.0


def filter_data(
    in_dir: PathLike,
    out_dir: PathLike,
    min_seconds: float = 0.1,
    max_seconds: float = 20.0,
    fs: int = 16000,
    frame_shift_ms: Optional[float] = None,
) -> FilterResult:
    """Copy ``in_dir`` to ``out_dir`` without the utterances to remove.

    Raises ValueError naming the option or file at fault, or when no
    utterance is left (nothing is written then).
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ValueError(f"--in_dir {in_dir}: not a directory")
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--out_dir must differ from --in_dir ({in_dir})")
    if not 0 <= min_seconds <= max_seconds:
        raise ValueError(
            f"need 0 <= --min_seconds <= --max_seconds, got {min_seconds} and {max_seconds}"
        )
    feats_type, dur_file, to_seconds = _duration_reader(in_dir, fs, frame_shift_ms)
    utt_files, spk_files, plain = _classify(in_dir)
    for name in REQUIRED[feats_type]:
        if name not in utt_files:
            raise ValueError(f"{in_dir / name}: missing (needed for feats_type {feats_type})")
    # Required files first so that "missing from" names the most telling one.
    utt_files = list(REQUIRED[feats_type]) + [n for n in utt_files if n not in REQUIRED[feats_type]]

    tables: Dict[str, Dict[str, str]] = {}
    for name in utt_files:
        rows = read_kv(in_dir / name, allow_empty_value=name.startswith("text"))
        tables[name] = {k: v for _, k, v in rows}

    counts: Dict[str, int] = {}
    for utt, value in tables[dur_file].items():
        try:
            counts[utt] = int(value)
        except ValueError:
            raise ValueError(f"{in_dir / dur_file}: {utt!r} has a non-integer length {value!r}") from None

    all_utts = sorted(set().union(*tables.values()), key=lambda u: u.encode("utf-8"))
    result = FilterResult(total=len(all_utts), kept=[])
    for utt in all_utts:
        missing = next((n for n in utt_files if utt not in tables[n]), None)
        if missing is not None:
            reason = f"missing from {missing}"
        elif not tables["text"][utt].strip():
            reason = "empty text"
        else:
            seconds = to_seconds(counts[utt])
            if seconds <= 0 or seconds < min_seconds:
                reason = "too short"
            elif seconds > max_seconds:
                reason = "too long"
            else:
                result.kept.append(utt)
                continue
        result.removed[utt] = reason

    if not result.kept:
        raise ValueError(
            f"no utterance of {in_dir} is left ({result.summary()}); check "
            f"--min_seconds {min_seconds} / --max_seconds {max_seconds} and the input files"
        )

    files: Dict[str, str] = {}
    for name in utt_files:
        table = tables[name]
        files[name] = "".join(f"{u} {table[u]}".rstrip(" ") + "\n" for u in result.kept)
    speakers = spk2utt_of([Utterance(u, "", "", tables["utt2spk"][u]) for u in result.kept])
    files["spk2utt"] = "".join(f"{s} {' '.join(us)}\n" for s, us in speakers.items())
    for name in spk_files:
        if name == "spk2utt":
            continue
        rows = read_kv(in_dir / name)
        files[name] = "".join(f"{s} {v}\n" for _, s, v in rows if s in speakers)
    for name in plain:
        try:
            files[name] = (in_dir / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            logger.warning("%s: not UTF-8 text; not copied", in_dir / name)
    files["removed_utts.txt"] = "".join(f"{u}\t{r}\n" for u, r in result.removed.items())

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_text_atomic(out_dir / name, content)
    return result


def _check_token_options(
    token_list: PathLike, token_type: str, bpemodel: Optional[PathLike]
) -> None:
    if token_type not in ("char", "bpe"):
        raise ValueError(f"--token_type must be char or bpe, got {token_type!r}")
    if not Path(token_list).is_file():
        raise ValueError(f"--token_list {token_list}: file not found")
    if token_type == "bpe":
        if bpemodel is None:
            raise ValueError("--token_type bpe needs --bpemodel")
        if not Path(bpemodel).is_file():
            raise ValueError(f"--bpemodel {bpemodel}: file not found")


def count_unk_transcripts(
    text: Dict[str, str],
    token_list: PathLike,
    token_type: str,
    bpemodel: Optional[PathLike] = None,
) -> Tuple[int, Counter, List[str]]:
    """Transcripts containing tokens outside ``token_list`` (so mapped to
    ``<unk>`` by ESPnet): (count, Counter of unknown tokens, their utt ids)."""
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.text.build_tokenizer import build_tokenizer
    _check_token_options(token_list, token_type, bpemodel)
    with open(token_list, encoding="utf-8") as f:
        vocab = {line.rstrip() for line in f}
    tokenizer = build_tokenizer(
        token_type=token_type, bpemodel=str(bpemodel) if bpemodel is not None else None
    )
    unknown: Counter = Counter()
    utts: List[str] = []
    for utt, line in text.items():
        missing = [t for t in tokenizer.text2tokens(line) if t not in vocab]
        if missing:
            utts.append(utt)
            unknown.update(missing)
    return len(utts), unknown, utts


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyscripts/filter_data.py",
        description="Remove too short/long utterances, empty transcripts and utterances "
        "missing from a file of a dump directory (stage 4).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--in_dir", required=True, help="dump directory with a feats_type file")
    parser.add_argument("--out_dir", required=True, help="output directory")
    parser.add_argument("--min_seconds", type=float, default=0.1, help="shortest duration kept (s)")
    parser.add_argument("--max_seconds", type=float, default=20.0, help="longest duration kept (s)")
    parser.add_argument("--fs", type=int, default=16000, help="sample rate of a raw directory (Hz)")
    parser.add_argument(
        "--frame_shift",
        type=float,
        default=None,
        help="frame shift of an fbank directory (ms); default: <in_dir>/frame_shift, else 10",
    )
    group = parser.add_argument_group("<unk> check (optional, nothing is removed)")
    group.add_argument("--token_list", default=None, help="tokens.txt to check the transcripts against")
    group.add_argument("--token_type", default="bpe", choices=("char", "bpe"), help="token type of --token_list")
    group.add_argument("--bpemodel", default=None, help="sentencepiece model for --token_type bpe")
    add_log_level(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    """Filter, then (optionally) report transcripts with out-of-list tokens."""
    if args.token_list is not None:
        _check_token_options(args.token_list, args.token_type, args.bpemodel)
    result = filter_data(
        args.in_dir,
        args.out_dir,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        fs=args.fs,
        frame_shift_ms=args.frame_shift,
    )
    print(result.summary())
    logger.info("removed utterances are listed in %s", Path(args.out_dir) / "removed_utts.txt")
    if args.token_list is not None:
        text = {k: v for _, k, v in read_kv(Path(args.out_dir) / "text")}
        n, unknown, utts = count_unk_transcripts(text, args.token_list, args.token_type, args.bpemodel)
        if n:
            top = ", ".join(f"{t!r} ({c})" for t, c in unknown.most_common(10))
            logger.warning(
                "%d of %d transcripts contain tokens not in %s (mapped to <unk>, kept): %s; e.g. %s",
                n, len(text), args.token_list, top, " ".join(utts[:5]),
            )
        else:
            logger.info("no transcript has tokens outside %s", args.token_list)


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error)."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("filter_data", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
