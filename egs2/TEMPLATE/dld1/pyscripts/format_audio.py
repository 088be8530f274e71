#!/usr/bin/env python3
"""Stage 3 (feats_type raw): check every recording of a data directory and
dump it at one sample rate, so that training never meets a bad file.

ESPnet's training reads ``wav.scp`` lazily and fails, hours in, on the first
missing, truncated, stereo or wrong-rate recording.  This tool reads every
entry of ``<in_dir>/wav.scp`` once, up front, and sorts it into:

* usable as is (mono, ``--fs`` Hz, WAV or FLAC): referenced in place by its
  absolute path, nothing is copied;
* convertible (another sample rate, another container, or several channels
  with ``--downmix true``): resampled with a polyphase filter and written as
  16-bit PCM to ``<out_dir>/data/<utt>.<audio_format>``;
* bad: missing, empty, unreadable, truncated, without samples, multi-channel
  (unless ``--downmix true``) or a Kaldi command pipe.

With a ``segments`` file (``<utt> <recording> <start> <end>`` in seconds, end
``-1`` = to the end of the recording, ESPnet's ``format_wav_scp.py``
semantics) ``wav.scp`` names recordings: each is checked and read once
(soundfile: WAV, FLAC, NIST SPHERE, ... so no ``sph2pipe``), and every
segment is cut from it and written to ``<out_dir>/data/<utt>.<audio_format>``
(resampled/downmixed as above).  A segment whose times do not fit its
recording (start < 0, end <= start, start at or after the recording's end,
end after it by more than ``SEGMENT_END_TOLERANCE`` seconds, nothing left
after rounding to samples) is a bad segment: always dropped, listed with the
``segments`` file and line, and counted.  An end within the tolerance is
clipped to the recording's end (segment times are rounded to centiseconds).

Bad audio stops the run (exit status 1) before any output is written,
unless ``--drop_bad_utts true``; either way the bad utterances (bad audio and
bad segments) are listed in ``<out_dir>/bad_utts.txt``
(``utt<TAB>file<TAB>reason``; for a bad segment ``file`` is
``<segments file>:<line>``).  The output
directory holds ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` (restricted to
the kept utterances), ``utt2num_samples`` and ``feats_type`` (``raw``).

Re-running rewrites everything deterministically: the same inputs give
byte-identical outputs, and text files whose content is unchanged are left
untouched.  Files under ``<out_dir>/data`` that the new ``wav.scp`` no longer
uses are removed.

    python pyscripts/format_audio.py --in_dir data/train \
        --out_dir dump/raw/train --fs 16000 [--drop_bad_utts true]
"""
from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import numpy as np
import soundfile
from tqdm import tqdm

from espnet_dld.data.atomic import write_audio_atomic, write_text_atomic
from espnet_dld.data.audio import resample
from espnet_dld.data.bad_utts import BAD_UTTS, BadUtt
from espnet_dld.data.kaldi_dir import Utterance, format_seconds, parse_segment, read_kv, spk2utt_of
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: soundfile container names whose mono files at the right rate are used as is
IN_PLACE_FORMATS = ("WAV", "WAVEX", "FLAC")
AUDIO_FORMATS = {"wav": "WAV", "flac": "FLAC"}
#: a segment may end this much (seconds) after its recording's end; it is clipped there
SEGMENT_END_TOLERANCE = 0.01


def str2bool(value: str) -> bool:
    """``true/false`` (also yes/no, 1/0) as argparse type, like ESPnet's."""
    v = value.strip().lower()
    if v in ("true", "t", "yes", "y", "1", "on"):
        return True
    if v in ("false", "f", "no", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


@dataclass(frozen=True)
class SegmentPlan:
    """One segment of a good recording, as sample frames of that recording."""

    utt_id: str
    recording: "AudioPlan"
    start: int
    end: int


@dataclass(frozen=True)
class AudioPlan:
    """What to do with one good recording."""

    utt_id: str
    file: str  # absolute path of the input
    sample_rate: int
    channels: int
    frames: int
    convert: bool  # False: referenced in place

    def why_convert(self, fs: int) -> str:
        parts = []
        if self.sample_rate != fs:
            parts.append(f"resample {self.sample_rate} -> {fs} Hz")
        if self.channels > 1:
            parts.append(f"downmix {self.channels} channels")
        return ", ".join(parts) or "re-encode"


def _wav_header_frames(path: str) -> Optional[int]:
    """Number of sample frames the ``data`` chunk of a RIFF/WAVE header
    declares, or None when the file is not a plain WAV or the size is unknown
    (streamed files write 0 or 0xFFFFFFFF).

    libsndfile silently shortens a truncated WAV to the bytes present, so the
    declared size is the only way to notice the truncation.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        block_align = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if cid == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            if cid == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack(endian + "H", fmt[12:14])[0]
                f.seek(size & 1, os.SEEK_CUR)
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def inspect_audio(
    utt_id: str, entry: str, fs: int, downmix: bool = False
) -> Union[AudioPlan, BadUtt]:
    """Check the recording of one ``wav.scp`` entry by reading all of it.

    Returns an :class:`AudioPlan` for a usable recording, else a
    :class:`BadUtt` saying why it is not (the file named as in ``wav.scp``).
    """
    entry = entry.strip()
    if entry.endswith("|"):
        return BadUtt(
            utt_id,
            entry,
            "Kaldi command pipe is not supported; write the audio to a file and "
            "list its path in wav.scp",
        )
    path = os.path.abspath(entry)
    if not os.path.exists(path):
        return BadUtt(utt_id, entry, "file not found")
    if not os.path.isfile(path):
        return BadUtt(utt_id, entry, "not a regular file")
    if os.path.getsize(path) == 0:
        return BadUtt(utt_id, entry, "empty file (0 bytes)")
    try:
        info = soundfile.info(path)
    except Exception as e:  # libsndfile's errors are of several types
        return BadUtt(utt_id, entry, f"unreadable or corrupt audio: {_one_line(e)}")
    if info.channels > 1 and not downmix:
        return BadUtt(
            utt_id,
            entry,
            f"{info.channels} channels (stereo/multi-channel); only mono is accepted "
            "(--downmix true averages the channels)",
        )
    if info.format in ("WAV", "WAVEX"):
        declared = _wav_header_frames(path)
        if declared is not None and declared > info.frames:
            return BadUtt(
                utt_id,
                entry,
                f"truncated: WAV header declares {declared} samples, file holds {info.frames}",
            )
    try:
        data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        return BadUtt(utt_id, entry, f"corrupt or truncated audio: {_one_line(e)}")
    if len(data) != info.frames:
        return BadUtt(
            utt_id,
            entry,
            f"truncated: header declares {info.frames} samples, only {len(data)} could be read",
        )
    if info.frames == 0:
        return BadUtt(utt_id, entry, "no audio samples (0 frames)")
    convert = info.channels > 1 or info.samplerate != fs or info.format not in IN_PLACE_FORMATS
    return AudioPlan(utt_id, path, info.samplerate, info.channels, info.frames, convert)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def audio_file_name(utt_id: str, audio_format: str) -> str:
    """File name of a converted recording: the utterance id, escaped so that
    any id (``/``, a leading dot, non-ASCII) gives a distinct plain name."""
    name = quote(utt_id, safe="-_.+=,@")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return f"{name}.{audio_format}"


def read_mono(path: str) -> Tuple[np.ndarray, int]:
    """All of a recording as float64 samples, channels averaged, and its rate."""
    data, sr = soundfile.read(path, dtype="float64", always_2d=True)
    return (data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]), sr


def write_pcm(x: np.ndarray, sr: int, fs: int, out_path: Path, audio_format: str) -> int:
    """Resample ``x`` from ``sr`` to ``fs`` Hz and write it as 16-bit PCM at
    ``out_path`` (atomically); returns the number of samples written."""
    y = resample(x, sr, fs)
    pcm = np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)
    write_audio_atomic(out_path, pcm, fs, fmt=AUDIO_FORMATS[audio_format])
    return len(pcm)


def convert_audio(plan: AudioPlan, fs: int, out_path: Path, audio_format: str) -> int:
    """Downmix/resample ``plan``'s file to ``fs`` Hz 16-bit PCM at ``out_path``
    (atomically); returns the number of samples written."""
    x, sr = read_mono(plan.file)
    return write_pcm(x, sr, fs, out_path, audio_format)


def plan_segments(
    segments_path: Path, recordings: Dict[str, Union[AudioPlan, BadUtt]]
) -> Tuple[List[SegmentPlan], List[BadUtt], List[BadUtt]]:
    """Place every line of ``segments_path`` in its recording.

    ``recordings`` maps each recording id of ``wav.scp`` to its inspection.
    Returns (segments to cut, utterances of bad recordings, bad segments);
    a bad segment names the ``segments`` file and line.
    """
    cuts: List[SegmentPlan] = []
    bad_audio: List[BadUtt] = []
    bad_segments: List[BadUtt] = []
    for lineno, utt, value in read_kv(segments_path):
        where = f"{segments_path}:{lineno}"
        seg = parse_segment(value, where)
        rec = recordings.get(seg.recording)
        if rec is None:
            raise ValueError(f"{where}: recording {seg.recording!r} of {utt!r} is not in wav.scp")
        if isinstance(rec, BadUtt):
            bad_audio.append(BadUtt(utt, rec.file, f"recording {seg.recording}: {rec.reason}"))
            continue
        duration = rec.frames / rec.sample_rate
        times = f"segment {format_seconds(seg.start)}-{format_seconds(seg.end)} s"
        start = int(round(seg.start * rec.sample_rate))
        end = rec.frames if seg.end == -1 else int(round(seg.end * rec.sample_rate))
        reason = None
        if seg.start < 0:
            reason = f"{times}: negative start"
        elif seg.end != -1 and seg.end <= seg.start:
            reason = f"{times}: end <= start"
        elif start >= rec.frames:
            reason = f"{times}: starts at or after the end of {seg.recording} ({duration:.3f} s)"
        elif seg.end != -1 and seg.end > duration + SEGMENT_END_TOLERANCE:
            reason = f"{times}: ends after the end of {seg.recording} ({duration:.3f} s)"
        elif min(end, rec.frames) <= start:
            reason = f"{times}: zero length at {rec.sample_rate} Hz"
        if reason is not None:
            bad_segments.append(BadUtt(utt, where, reason))
        else:
            cuts.append(SegmentPlan(utt, rec, start, min(end, rec.frames)))
    return cuts, bad_audio, bad_segments


def write_segments(
    cuts: Sequence[SegmentPlan], fs: int, data_dir: Path, audio_format: str
) -> List[Tuple[str, str, int]]:
    """Cut each segment from its recording (read once for all its segments) into
    ``data_dir``; returns (utt, written file, samples) per segment, in order."""
    by_recording: Dict[str, List[SegmentPlan]] = {}
    for c in cuts:
        by_recording.setdefault(c.recording.file, []).append(c)
    written: Dict[str, Tuple[str, str, int]] = {}
    for path, group in tqdm(by_recording.items(), desc="cut segments", unit="recording", disable=None):
        x, sr = read_mono(path)
        for c in group:
            out_path = (data_dir / audio_file_name(c.utt_id, audio_format)).absolute()
            n = write_pcm(x[c.start:c.end], sr, fs, out_path, audio_format)
            written[c.utt_id] = (c.utt_id, str(out_path), n)
    logger.info("cut %d segments from %d recordings into %s", len(cuts), len(by_recording), data_dir)
    return [written[c.utt_id] for c in cuts]


def _kv_text(rows: Sequence[Tuple[str, str]]) -> str:
    return "".join(f"{k} {v}".rstrip(" ") + "\n" for k, v in rows)


def format_audio(
    in_dir: PathLike,
    out_dir: PathLike,
    fs: int = 16000,
    drop_bad_utts: bool = False,
    audio_format: str = "wav",
    downmix: bool = False,
) -> Tuple[int, List[BadUtt]]:
    """Check and dump the recordings of ``in_dir`` into ``out_dir``.

    Returns (number of utterances written, bad utterances and bad segments).
    Raises ValueError (after writing ``<out_dir>/bad_utts.txt``) when there is
    bad audio and ``drop_bad_utts`` is False, or when no utterance is left.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if fs <= 0:
        raise ValueError(f"--fs must be positive, got {fs}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"--audio_format must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}")
    if not in_dir.is_dir():
        raise ValueError(f"--in_dir {in_dir}: not a directory")
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--out_dir must differ from --in_dir ({in_dir})")
    wav = read_kv(in_dir / "wav.scp")
    text = read_kv(in_dir / "text", allow_empty_value=True)
    utt2spk = read_kv(in_dir / "utt2spk")
    for lineno, utt, spk in utt2spk:
        if len(spk.split()) != 1:
            raise ValueError(f"{in_dir / 'utt2spk'}:{lineno}: bad speaker id {spk!r} for {utt!r}")

    segmented = (in_dir / "segments").exists()
    unit = "recording" if segmented else "utt"
    plans: List[AudioPlan] = []
    bad: List[BadUtt] = []
    for _, utt, entry in tqdm(wav, desc="check audio", unit=unit, disable=None):
        result = inspect_audio(utt, entry, fs, downmix)
        (bad if isinstance(result, BadUtt) else plans).append(result)
    bad_segments: List[BadUtt] = []
    if segmented:
        cuts, bad, bad_segments = plan_segments(
            in_dir / "segments", {p.utt_id: p for p in plans + bad})
        listed, n_utts, kept_count = in_dir / "segments", len(cuts) + len(bad) + len(bad_segments), len(cuts)
    else:
        listed, n_utts, kept_count = in_dir / "wav.scp", len(wav), len(plans)

    bad_text = "".join(b.line() + "\n" for b in bad + bad_segments)
    if bad_text:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / BAD_UTTS, bad_text)
    if bad:
        if not drop_bad_utts:
            listing = "\n".join(f"  {b.utt_id}  {b.file}: {b.reason}" for b in bad)
            raise ValueError(
                f"{len(bad)} bad utterance(s) of {n_utts} in {listed}:\n{listing}\n"
                f"Nothing was written to {out_dir} except the list in {out_dir / BAD_UTTS}. "
                "Fix or remove them, or rerun with --drop_bad_utts true to leave them out."
            )
        logger.warning(
            "dropping %d bad utterance(s) of %d, listed in %s", len(bad), n_utts, out_dir / BAD_UTTS
        )
    if bad_segments:
        logger.warning(
            "dropping %d bad segment(s) of %d in %s, listed in %s:\n%s", len(bad_segments), n_utts,
            listed, out_dir / BAD_UTTS, "\n".join(f"  {b.utt_id}  {b.file}: {b.reason}" for b in bad_segments),
        )
    if not kept_count:
        raise ValueError(f"no usable utterance in {listed} (all {n_utts} are bad)")

    data_dir = out_dir / "data"
    wav_rows: List[Tuple[str, str]] = []
    num_samples: Dict[str, int] = {}
    if segmented:
        for utt, path, n in write_segments(cuts, fs, data_dir, audio_format):
            wav_rows.append((utt, path))
            num_samples[utt] = n
        plans = []
    to_convert = [p for p in plans if p.convert]
    if to_convert:
        why = Counter(p.why_convert(fs) for p in to_convert)
        logger.info(
            "converting %d of %d recordings into %s (%s)",
            len(to_convert), len(plans), data_dir, ", ".join(f"{w}: {n}" for w, n in sorted(why.items())),
        )
    for plan in tqdm(plans, desc="write audio", unit="utt", disable=None if to_convert else True):
        if plan.convert:
            out_path = (data_dir / audio_file_name(plan.utt_id, audio_format)).absolute()
            logger.debug("%s: %s (%s)", plan.utt_id, plan.file, plan.why_convert(fs))
            num_samples[plan.utt_id] = convert_audio(plan, fs, out_path, audio_format)
            wav_rows.append((plan.utt_id, str(out_path)))
        else:
            num_samples[plan.utt_id] = plan.frames
            wav_rows.append((plan.utt_id, plan.file))

    kept = set(num_samples)
    n_out = len(kept)
    utt2spk_rows = [(u, s) for _, u, s in utt2spk if u in kept]
    spk2utt = spk2utt_of([Utterance(u, "", "", s) for u, s in utt2spk_rows])
    files = {
        "wav.scp": _kv_text(wav_rows),
        "text": _kv_text([(u, t) for _, u, t in text if u in kept]),
        "utt2spk": _kv_text(utt2spk_rows),
        "spk2utt": _kv_text([(s, " ".join(us)) for s, us in spk2utt.items()]),
        "utt2num_samples": _kv_text([(u, str(num_samples[u])) for u, _ in wav_rows]),
        "feats_type": "raw\n",
        BAD_UTTS: bad_text,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_text_atomic(out_dir / name, content)
    _remove_stale(data_dir, {os.path.realpath(p) for _, p in wav_rows})
    n_in_place = len(plans) - len(to_convert)
    logger.info(
        "%s: %d utterances (%d referenced in place, %d converted, %d cut from segments, %d bad dropped)",
        out_dir, n_out, n_in_place, len(to_convert), n_out - len(plans), len(bad) + len(bad_segments),
    )
    return n_out, bad + bad_segments


def _remove_stale(data_dir: Path, used: set) -> None:
    """Delete files of ``data_dir`` (ours) that the new wav.scp does not use
    (``used``: real paths of every file it lists)."""
    if not data_dir.is_dir():
        return
    stale = sorted(
        p for p in data_dir.iterdir() if p.is_file() and os.path.realpath(p) not in used
    )
    for p in stale:
        p.unlink()
    if stale:
        logger.info("removed %d stale file(s) from %s", len(stale), data_dir)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyscripts/format_audio.py",
        description="Check the recordings of a Kaldi data directory and dump them "
        "as mono --fs Hz audio (stage 3, feats_type raw).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--in_dir", required=True, help="data directory with wav.scp, text, utt2spk")
    parser.add_argument("--out_dir", required=True, help="output dump directory")
    parser.add_argument("--fs", type=int, default=16000, help="sample rate of the output (Hz)")
    parser.add_argument(
        "--drop_bad_utts",
        type=str2bool,
        default=False,
        help="leave bad utterances out (listed in <out_dir>/bad_utts.txt) instead of stopping",
    )
    parser.add_argument(
        "--audio_format",
        default="wav",
        choices=sorted(AUDIO_FORMATS),
        help="container of converted recordings (16-bit PCM)",
    )
    parser.add_argument(
        "--downmix",
        type=str2bool,
        default=False,
        help="average the channels of multi-channel recordings instead of rejecting them",
    )
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error)."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("format_audio", lambda: format_audio(
        args.in_dir,
        args.out_dir,
        fs=args.fs,
        drop_bad_utts=args.drop_bad_utts,
        audio_format=args.audio_format,
        downmix=args.downmix,
    ))


if __name__ == "__main__":
    sys.exit(main())
