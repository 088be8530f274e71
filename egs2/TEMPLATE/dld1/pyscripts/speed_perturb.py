#!/usr/bin/env python3
"""Speed perturbation of a training set (stage 2), as Kaldi/ESPnet do it.

Speed factor f changes tempo and pitch together (sox ``speed``): the signal
is resampled from f * fs to fs, so it lasts 1/f as long.  Each factor other
than 1.0 adds copies with utterance and speaker ids prefixed ``sp<f>-``
(a perturbed speaker is another speaker), written as 16-bit wav files by
``--nj`` parallel processes (files already there are kept).

A data directory with a ``segments`` file is perturbed as Kaldi's
``perturb_data_dir_speed.sh`` does it: each recording once per factor (id
``sp<f>-<recording>``), its segments' times divided by the factor.

    python pyscripts/speed_perturb.py --in_dir data/train --out_dir data/train_sp \
        --wav_dir dump/speed_perturb/train --factors 0.9 1.0 1.1 --nj 8
"""
from __future__ import annotations

import argparse
import logging
from concurrent.futures import ProcessPoolExecutor
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import soundfile as sf
from tqdm import tqdm

from espnet_dld.data.atomic import write_audio_atomic
from espnet_dld.data.audio import float_to_int16, resample
from espnet_dld.data.kaldi_dir import Segment, Utterance, read_data_dir, write_data_dir
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging


def perturb(samples, fs: int, factor: float):
    """Play ``samples`` ``factor`` times faster (length / factor)."""
    return resample(samples, int(round(fs * factor)), fs)


def _write_perturbed(job: Tuple[Path, str, str, Path, float]) -> None:
    """Write one perturbed copy: (data dir, utterance or recording id, its audio, target file, factor)."""
    in_dir, utt_id, wav, target, factor = job
    try:
        samples, fs = sf.read(wav, dtype="float64", always_2d=False)
    except Exception as e:
        raise ValueError(f"{in_dir}/wav.scp: cannot read {wav} of utterance {utt_id}: {e}") from e
    if samples.ndim != 1:
        raise ValueError(f"{in_dir}/wav.scp: {wav} of utterance {utt_id} is not mono")
    write_audio_atomic(target, float_to_int16(perturb(samples, fs, factor)), fs)


def speed_perturb(in_dir: Path, out_dir: Path, wav_dir: Path, factors: Sequence[float], nj: int = 1) -> List[Utterance]:
    for f in factors:
        if not 0.5 <= f <= 2.0:
            raise ValueError(f"--factors: speed factor {f} is outside 0.5..2.0")
    if isinstance(nj, bool) or not isinstance(nj, int) or nj < 1:
        raise ValueError(f"--nj must be a positive integer, got {nj!r}")
    utts = read_data_dir(in_dir)
    out: List[Utterance] = []
    jobs: List[Tuple[Path, str, str, Path, float]] = []
    for factor in factors:
        if factor == 1.0:
            out.extend(utts)
            continue
        prefix = f"sp{factor:g}-"
        queued = set()
        for u in utts:
            seg = u.segment
            audio_id = u.utt_id if seg is None else seg.recording  # segments: one copy per recording
            target = wav_dir / f"{prefix}{audio_id}.wav"
            if audio_id not in queued and not target.is_file():
                jobs.append((in_dir, audio_id, u.wav, target, factor))
            queued.add(audio_id)
            if seg is not None:
                seg = Segment(prefix + seg.recording, seg.start / factor, -1 if seg.end == -1 else seg.end / factor)
            out.append(Utterance(prefix + u.utt_id, str(target.resolve()), u.text, prefix + u.spk, seg))
    progress = dict(total=len(jobs), desc=f"speed {' '.join(f'{f:g}' for f in factors)}", unit="utt")
    if nj > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(nj, len(jobs))) as pool:
            for _ in tqdm(pool.map(_write_perturbed, jobs, chunksize=max(1, len(jobs) // (8 * nj))), **progress):
                pass
    else:
        for job in tqdm(jobs, **progress):
            _write_perturbed(job)
    write_data_dir(out, out_dir)
    return out


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in_dir", required=True, type=Path)
    parser.add_argument("--out_dir", required=True, type=Path)
    parser.add_argument("--wav_dir", required=True, type=Path, help="where the perturbed audio is written")
    parser.add_argument("--factors", required=True, type=float, nargs="+")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes writing the perturbed audio")
    add_log_level(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)

    def run() -> None:
        utts = speed_perturb(args.in_dir, args.out_dir, args.wav_dir, args.factors, args.nj)
        logging.info("%s: %d utterances (factors %s)", args.out_dir, len(utts), " ".join(map(str, args.factors)))

    return run_tool("speed_perturb", run)


if __name__ == "__main__":
    sys.exit(main())
