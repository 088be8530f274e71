#!/usr/bin/env python3
"""Stage 3 (feats_type fbank): Kaldi-compatible log-mel filterbank features
of a raw dump directory, stored as a Kaldi ark/scp pair.

Extracting once up front makes training epochs cheaper than computing the
frontend on the fly, and the features match Kaldi's ``compute-fbank-feats``
(``torchaudio.compliance.kaldi.fbank``: povey window, 25 ms frames every
10 ms, no dither, samples scaled to the 16-bit integer range as Kaldi reads
them), so they are deterministic and comparable across runs.

Output directory:

* ``feats.ark`` (binary float32 matrices, frames x ``--n_mels``) and
  ``feats.scp`` (``utt <abs path of feats.ark>:<offset>``), read by ESPnet as
  ``feats.scp,speech,kaldi_ark``;
* ``utt2num_frames``, ``feats_dim`` (``--n_mels``), ``frame_shift`` (ms),
  ``feats_type`` (``fbank``);
* ``text``, ``utt2spk``, ``spk2utt`` of the input, for the same utterances.

A recording shorter than one frame gets a 0-frame matrix (and a warning);
stage 4 (``filter_data``) removes it as too short.  Every file is written
under a temporary name and renamed; ``feats.scp`` is removed before
``feats.ark`` is replaced so an interrupted run never pairs an old scp with a
new ark.  Re-running with the same input gives byte-identical output (files
whose content does not change are not rewritten).

    python pyscripts/extract_fbank.py --in_dir dump/raw/train \
        --out_dir dump/fbank/train --n_mels 80 --fs 16000 [--nj 4]
"""
from __future__ import annotations

import argparse
import filecmp
import logging
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import kaldiio
import numpy as np
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi_compliance
from tqdm import tqdm

from espnet_dld.data.atomic import atomic_path, write_text_atomic
from espnet_dld.data.kaldi_dir import Utterance, read_kv, spk2utt_of
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def compute_fbank(
    samples: np.ndarray,
    fs: int,
    n_mels: int = 80,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
) -> np.ndarray:
    """Kaldi log-mel fbank of a mono signal in 16-bit integer scale
    (float values in [-32768, 32767]); returns float32 (frames, n_mels).

    A signal shorter than one window gives a (0, n_mels) matrix.
    """
    x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(1, -1)
    window = int(fs * frame_length * 0.001)
    if x.shape[1] < max(window, 2):
        return np.zeros((0, n_mels), dtype=np.float32)
    feats = kaldi_compliance.fbank(
        x,
        num_mel_bins=n_mels,
        frame_length=frame_length,
        frame_shift=frame_shift,
        dither=0.0,
        sample_frequency=float(fs),
    )
    return feats.numpy().astype(np.float32, copy=False)


def read_mono(utt_id: str, path: str, fs: int) -> np.ndarray:
    """Samples of a mono ``fs`` Hz recording, in 16-bit integer scale.

    Raises ValueError naming the utterance and file when the file cannot be
    read, has several channels or another sample rate.
    """
    if path.endswith("|"):
        raise ValueError(f"utterance {utt_id!r}: {path}: command pipes are not supported (run format_audio first)")
    try:
        data, sr = soundfile.read(path, dtype="float64", always_2d=True)
    except Exception as e:
        raise ValueError(f"utterance {utt_id!r}: {path}: cannot read audio: {' '.join(str(e).split())}") from None
    if sr != fs:
        raise ValueError(
            f"utterance {utt_id!r}: {path}: sample rate {sr} Hz, expected --fs {fs} "
            "(format the directory with pyscripts/format_audio.py first)"
        )
    if data.shape[1] != 1:
        raise ValueError(f"utterance {utt_id!r}: {path}: {data.shape[1]} channels, expected mono")
    return data[:, 0] * 32768.0


# Settings of the worker processes (set by _init_worker).
_WORKER: Dict[str, float] = {}


def _init_worker(fs: int, n_mels: int, frame_length: float, frame_shift: float) -> None:
    torch.set_num_threads(1)
    _WORKER.update(fs=fs, n_mels=n_mels, frame_length=frame_length, frame_shift=frame_shift)


def _features(item: Tuple[str, str]) -> Tuple[str, np.ndarray]:
    utt_id, path = item
    fs = int(_WORKER["fs"])
    samples = read_mono(utt_id, path, fs)
    feats = compute_fbank(
        samples, fs, int(_WORKER["n_mels"]), _WORKER["frame_length"], _WORKER["frame_shift"]
    )
    return utt_id, feats


def _iter_features(
    items: List[Tuple[str, str]], nj: int, settings: Tuple[int, int, float, float]
) -> Iterator[Tuple[str, np.ndarray]]:
    """Features of ``items`` in their order, computed by ``nj`` processes."""
    if nj <= 1 or len(items) <= 1:
        _init_worker(*settings)
        yield from map(_features, items)
        return
    chunksize = max(1, min(16, len(items) // (4 * nj)))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(nj, initializer=_init_worker, initargs=settings) as pool:
        yield from pool.imap(_features, items, chunksize=chunksize)


def _kv_text(rows: Sequence[Tuple[str, str]]) -> str:
    return "".join(f"{k} {v}".rstrip(" ") + "\n" for k, v in rows)


def extract_fbank(
    in_dir: PathLike,
    out_dir: PathLike,
    n_mels: int = 80,
    fs: int = 16000,
    nj: int = 1,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
) -> int:
    """Write fbank features of ``in_dir``'s ``wav.scp`` into ``out_dir``;
    returns the number of utterances.  Raises ValueError naming the offending
    option, file or utterance."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    for name, value in (("--n_mels", n_mels), ("--fs", fs), ("--nj", nj)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if not 0 < frame_shift <= frame_length:
        raise ValueError(
            f"need 0 < --frame_shift <= --frame_length, got {frame_shift} and {frame_length} ms"
        )
    if not in_dir.is_dir():
        raise ValueError(f"--in_dir {in_dir}: not a directory")
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"--out_dir must differ from --in_dir ({in_dir})")
    feats_type_file = in_dir / "feats_type"
    if feats_type_file.is_file():
        in_type = feats_type_file.read_text(encoding="utf-8").strip()
        if in_type != "raw":
            raise ValueError(f"{feats_type_file}: feats_type is {in_type!r}, expected 'raw' (audio)")
    wav = read_kv(in_dir / "wav.scp")
    text = read_kv(in_dir / "text", allow_empty_value=True)
    utt2spk = read_kv(in_dir / "utt2spk")

    items = [(utt, entry) for _, utt, entry in wav]
    settings = (fs, n_mels, frame_length, frame_shift)
    ark_path = out_dir / "feats.ark"
    ark_abs = os.path.abspath(ark_path)
    scp_rows: List[Tuple[str, str]] = []
    frames_rows: List[Tuple[str, str]] = []
    empty: List[str] = []
    logger.info("extracting %d-bin fbank of %d utterances with %d job(s)", n_mels, len(items), nj)
    with atomic_path(ark_path) as tmp_ark:
        with open(tmp_ark, "wb") as fd:
            features = _iter_features(items, nj, settings)
            for utt, feats in tqdm(features, total=len(items), desc="fbank", unit="utt", disable=None):
                # kaldiio writes "<key> " then the matrix; the scp offset points
                # at the matrix, as Kaldi's does.
                offset = fd.tell() + len((utt + " ").encode("utf-8"))
                kaldiio.save_ark(fd, {utt: feats})
                scp_rows.append((utt, f"{ark_abs}:{offset}"))
                frames_rows.append((utt, str(feats.shape[0])))
                if feats.shape[0] == 0:
                    empty.append(utt)
        if not (ark_path.is_file() and filecmp.cmp(tmp_ark, ark_path, shallow=False)):
            # The old scp must not outlive the ark it indexes.
            (out_dir / "feats.scp").unlink(missing_ok=True)
    if empty:
        logger.warning(
            "%d utterance(s) shorter than one %g ms frame got 0 frames (filter_data removes them): %s",
            len(empty), frame_length, " ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""),
        )

    kept = {utt for utt, _ in scp_rows}
    utt2spk_rows = [(u, s) for _, u, s in utt2spk if u in kept]
    spk2utt = spk2utt_of([Utterance(u, "", "", s) for u, s in utt2spk_rows])
    files = {
        "feats.scp": _kv_text(scp_rows),
        "utt2num_frames": _kv_text(frames_rows),
        "feats_dim": f"{n_mels}\n",
        "frame_shift": f"{frame_shift:g}\n",
        "feats_type": "fbank\n",
        "text": _kv_text([(u, t) for _, u, t in text if u in kept]),
        "utt2spk": _kv_text(utt2spk_rows),
        "spk2utt": _kv_text([(spk, " ".join(us)) for spk, us in spk2utt.items()]),
    }
    for name, content in files.items():
        write_text_atomic(out_dir / name, content)
    logger.info("%s: %d-dimensional fbank of %d utterances", out_dir, n_mels, len(scp_rows))
    return len(scp_rows)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyscripts/extract_fbank.py",
        description="Kaldi-compatible log-mel fbank features of a raw dump directory "
        "(stage 3, feats_type fbank), written as feats.ark/feats.scp.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--in_dir", required=True, help="raw dump directory (wav.scp, text, utt2spk)")
    parser.add_argument("--out_dir", required=True, help="output directory")
    parser.add_argument("--n_mels", type=int, default=80, help="number of mel bins")
    parser.add_argument("--fs", type=int, default=16000, help="sample rate every recording must have (Hz)")
    parser.add_argument("--nj", type=int, default=1, help="number of parallel processes")
    parser.add_argument("--frame_length", type=float, default=25.0, help="frame length (ms)")
    parser.add_argument("--frame_shift", type=float, default=10.0, help="frame shift (ms)")
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error)."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("extract_fbank", lambda: extract_fbank(
        args.in_dir,
        args.out_dir,
        n_mels=args.n_mels,
        fs=args.fs,
        nj=args.nj,
        frame_length=args.frame_length,
        frame_shift=args.frame_shift,
    ))


if __name__ == "__main__":
    sys.exit(main())
