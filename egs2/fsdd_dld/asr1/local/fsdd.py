"""Connected-digit utterances built from the Free Spoken Digit Dataset (FSDD).

FSDD holds real recordings of isolated English digits (``recordings/``, files
``{digit}_{speaker}_{take}.wav``, 8 kHz mono 16-bit, six speakers with 50
takes of each digit).  Isolated digits are too short for a sequence model, so
each utterance here concatenates 1-7 recordings of one speaker with short
random pauses, is resampled to 16 kHz, gets a very low noise floor so the
pauses are not digital silence, and is transcribed with the digit words
(``seven three zero``).

The split is by speaker (speaker-independent test): by default ``george`` is
the dev speaker, ``theo`` the test speaker and the other four train.  Within a
split, each speaker's recordings are drawn from a shuffled pool that is only
refilled when empty, so every recording is used once before any is used again
(the default sizes use each recording at least once), and the digit sequences
are random.  Everything is seeded: the same options give byte-identical files,
and a re-run only makes what is missing (see :mod:`espnet_dld.data.wav_plan`).

Command line::

    python local/fsdd.py --fsdd_root ../shared/data/fsdd \
        --out_wav wav/fsdd --out_data data [--train_utts 1500 --dev_utts 200 ...]
"""

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile

from espnet_dld.data.atomic import write_audio_atomic
from espnet_dld.data.audio import float_to_int16, int16_to_float, resample
from espnet_dld.data.kaldi_dir import Utterance, validate_data_dir, write_data_dir
from espnet_dld.data.wav_plan import PlannedWav, realize_plan
from espnet_dld.utils.cli import print_dirs, run_tool

PathLike = Union[str, os.PathLike]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SOURCE_SAMPLE_RATE = 8000
SAMPLE_RATE = 16000
DEFAULT_DEV_SPEAKERS = ("george",)
DEFAULT_TEST_SPEAKERS = ("theo",)
SPLITS = ("train", "dev", "test")
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
_FORMAT_VERSION = 1  # bump when the audio recipe changes, to invalidate old files


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: int
    speaker: str
    take: int


def recordings_dir(fsdd_root: PathLike) -> Path:
    """The ``recordings/`` folder of an FSDD checkout, with a clear error if absent."""
    root = Path(fsdd_root)
    if (root / "recordings").is_dir():
        return root / "recordings"
    if root.name == "recordings" and root.is_dir():
        return root
    raise FileNotFoundError(
        f"FSDD recordings not found: {root / 'recordings'} does not exist. "
        "Set FSDD in db.sh (or the --fsdd_root option / FSDD environment variable) "
        "to the folder containing recordings/ of the Free Spoken Digit Dataset; "
        "from a project checkout it is ../shared/data/fsdd."
    )


def scan_recordings(fsdd_root: PathLike) -> Dict[str, List[Recording]]:
    """Speaker -> recordings sorted by (digit, take)."""
    rec_dir = recordings_dir(fsdd_root)
    by_spk: Dict[str, List[Recording]] = {}
    for p in rec_dir.iterdir():
        m = _NAME.match(p.name)
        if m is None:
            if p.suffix == ".wav":
                logging.warning("%s: not named {digit}_{speaker}_{take}.wav; skipped", p)
            continue
        r = Recording(p, int(m.group(1)), m.group(2), int(m.group(3)))
        by_spk.setdefault(r.speaker, []).append(r)
    if not by_spk:
        raise FileNotFoundError(
            f"{rec_dir}: no FSDD recordings named {{digit}}_{{speaker}}_{{take}}.wav"
        )
    return {s: sorted(v, key=lambda r: (r.digit, r.take)) for s, v in sorted(by_spk.items())}


def split_speakers(
    speakers: Sequence[str],
    dev_speakers: Sequence[str] = DEFAULT_DEV_SPEAKERS,
    test_speakers: Sequence[str] = DEFAULT_TEST_SPEAKERS,
) -> Dict[str, List[str]]:
    """Split -> sorted speakers; train gets every speaker not in dev or test."""
    known = set(speakers)
    for name, group in (("dev", dev_speakers), ("test", test_speakers)):
        unknown = sorted(set(group) - known)
        if unknown:
            raise ValueError(
                f"{name} speaker(s) {unknown} not among the FSDD speakers {sorted(known)}"
            )
    overlap = set(dev_speakers) & set(test_speakers)
    if overlap:
        raise ValueError(f"speaker(s) {sorted(overlap)} are in both dev and test")
    split = {
        "train": sorted(known - set(dev_speakers) - set(test_speakers)),
        "dev": sorted(set(dev_speakers)),
        "test": sorted(set(test_speakers)),
    }
    for name, group in split.items():
        if not group:
            raise ValueError(f"no {name} speakers left (speakers: {sorted(known)})")
    return split


def plan_split(
    recordings: Dict[str, List[Recording]],
    speakers: Sequence[str],
    num_utts: int,
    rng: np.random.Generator,
    min_digits: int = 1,
    max_digits: int = 7,
    pause_ms: Tuple[int, int] = (50, 250),
    noise_db: Tuple[float, float] = (-70.0, -55.0),
) -> List[Tuple[str, str, List[Recording], Dict]]:
    """Decide (utt_id, speaker, recordings, audio spec) for one split.

    Utterance ``k`` goes to speaker ``speakers[k % n]`` and takes the next
    ``1..7`` recordings from that speaker's shuffled pool.
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    pools: Dict[str, List[Recording]] = {s: [] for s in speakers}
    counts: Dict[str, int] = {s: 0 for s in speakers}
    lo, hi = (int(v * SOURCE_SAMPLE_RATE / 1000) for v in pause_ms)
    out = []
    for k in range(num_utts):
        spk = speakers[k % len(speakers)]
        n = int(rng.integers(min_digits, max_digits + 1))
        chosen: List[Recording] = []
        while len(chosen) < n:
            if not pools[spk]:
                pools[spk] = [recordings[spk][i] for i in rng.permutation(len(recordings[spk]))]
            chosen.append(pools[spk].pop())
        spec = {
            "v": _FORMAT_VERSION,
            "sr": SAMPLE_RATE,
            "src": [r.path.name for r in chosen],
            # silence (in source samples) before, between and after the digits
            "pauses": [int(p) for p in rng.integers(lo, hi + 1, size=n + 1)],
            "noise_db": round(float(rng.uniform(*noise_db)), 2),
            "noise_seed": int(rng.integers(2**31)),
        }
        out.append((f"{spk}-{counts[spk]:04d}", spk, chosen, spec))
        counts[spk] += 1
    return out


def digits_text(recordings: Sequence[Recording]) -> str:
    """The transcript: digit words, e.g. ``seven three zero``."""
    return " ".join(DIGIT_WORDS[r.digit] for r in recordings)


def render(spec: Dict, rec_dir: Path) -> np.ndarray:
    """Make the int16 16 kHz samples described by a plan ``spec``."""
    parts = [np.zeros(spec["pauses"][0])]
    for name, pause in zip(spec["src"], spec["pauses"][1:]):
        path = rec_dir / name
        x, sr = soundfile.read(str(path), dtype="int16", always_2d=True)
        if sr != SOURCE_SAMPLE_RATE or x.shape[1] != 1:
            raise ValueError(
                f"{path}: expected {SOURCE_SAMPLE_RATE} Hz mono, got {sr} Hz, {x.shape[1]} channels"
            )
        parts += [int16_to_float(x[:, 0]), np.zeros(pause)]
    y = resample(np.concatenate(parts), SOURCE_SAMPLE_RATE, spec["sr"])
    noise = np.random.default_rng(spec["noise_seed"]).standard_normal(len(y))
    y = y + 10.0 ** (spec["noise_db"] / 20.0) * noise
    return float_to_int16(y)


def prepare_fsdd(
    fsdd_root: PathLike,
    out_wav: PathLike,
    out_data: PathLike,
    train_utts: int = 1500,
    dev_utts: int = 200,
    test_utts: int = 200,
    dev_speakers: Sequence[str] = DEFAULT_DEV_SPEAKERS,
    test_speakers: Sequence[str] = DEFAULT_TEST_SPEAKERS,
    min_digits: int = 1,
    max_digits: int = 7,
    seed: int = 0,
) -> Dict[str, Path]:
    """Write wavs to ``out_wav/<split>/`` and data dirs to ``out_data/<split>``.

    Returns split -> data dir.  A split with 0 utterances is skipped.
    """
    rec_dir = recordings_dir(fsdd_root)
    recordings = scan_recordings(fsdd_root)
    groups = split_speakers(list(recordings), dev_speakers, test_speakers)
    sizes = {"train": train_utts, "dev": dev_utts, "test": test_utts}
    out: Dict[str, Path] = {}
    for split_no, split in enumerate(SPLITS):
        if sizes[split] < 0:
            raise ValueError(f"--{split}_utts must be >= 0, got {sizes[split]}")
        if sizes[split] == 0:
            continue
        rng = np.random.default_rng([seed, split_no])
        planned = plan_split(
            recordings, groups[split], sizes[split], rng, min_digits, max_digits
        )
        used = {r.path.name for _, _, rs, _ in planned for r in rs}
        total = sum(len(recordings[s]) for s in groups[split])
        if len(used) < total:
            logging.warning(
                "%s: only %d of the %d recordings of %s are used; ask for more utterances",
                split, len(used), total, ",".join(groups[split]),
            )
        wav_dir = Path(out_wav).resolve() / split
        items = [
            PlannedWav(utt, wav_dir / f"{utt}.wav", json.dumps(spec, sort_keys=True))
            for utt, _, _, spec in planned
        ]
        specs = {utt: spec for utt, _, _, spec in planned}

        def make(item: PlannedWav) -> None:
            write_audio_atomic(item.path, render(specs[item.utt_id], rec_dir), SAMPLE_RATE)

        res = realize_plan(items, wav_dir, make, desc=f"fsdd {split}")
        logging.info(
            "%s (%s): %d wavs generated, %d reused",
            split, ",".join(groups[split]), res.generated, res.reused,
        )
        utts = [
            Utterance(utt, str(item.path), digits_text(rs), spk)
            for (utt, spk, rs, _), item in zip(planned, items)
        ]
        out[split] = write_data_dir(utts, Path(out_data) / split)
        validate_data_dir(out[split])
    return out


def make_fake_fsdd(
    root: PathLike,
    speakers: Sequence[str] = ("alice", "bob", "carol"),
    takes: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny FSDD-layout folder (``root/recordings/*.wav``, 8 kHz) of
    tones, one pitch per digit, for tests without the real dataset."""
    rng = np.random.default_rng(seed)
    for spk in speakers:
        for digit in range(10):
            for take in range(takes):
                n = int(rng.integers(1200, 3200))
                t = np.arange(n) / SOURCE_SAMPLE_RATE
                x = 0.3 * np.sin(2 * np.pi * (200 + 60 * digit) * t) * np.hanning(n)
                write_audio_atomic(
                    Path(root) / "recordings" / f"{digit}_{spk}_{take}.wav",
                    float_to_int16(x),
                    SOURCE_SAMPLE_RATE,
                )
    return Path(root)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local/fsdd.py",
        description="Build connected-digit train/dev/test sets from FSDD recordings.",
    )
    parser.add_argument(
        "--fsdd_root",
        default=os.environ.get("FSDD"),
        help="folder containing recordings/ (default: $FSDD, set in db.sh)",
    )
    parser.add_argument("--out_wav", required=True, help="folder for the generated wavs")
    parser.add_argument("--out_data", required=True, help="folder for data/{train,dev,test}")
    parser.add_argument("--train_utts", type=int, default=1500)
    parser.add_argument("--dev_utts", type=int, default=200)
    parser.add_argument("--test_utts", type=int, default=200)
    parser.add_argument("--dev_speakers", nargs="+", default=list(DEFAULT_DEV_SPEAKERS))
    parser.add_argument("--test_speakers", nargs="+", default=list(DEFAULT_TEST_SPEAKERS))
    parser.add_argument("--min_digits", type=int, default=1)
    parser.add_argument("--max_digits", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (fsdd) %(message)s")
    if not args.fsdd_root:
        print(
            "ERROR: no FSDD folder given. Set FSDD in db.sh (or pass --fsdd_root) to the "
            "folder containing recordings/ of the Free Spoken Digit Dataset; from a "
            "project checkout it is ../shared/data/fsdd.",
            file=sys.stderr,
        )
        return 1
    return run_tool("fsdd", lambda: print_dirs(prepare_fsdd(
        args.fsdd_root,
        args.out_wav,
        args.out_data,
        train_utts=args.train_utts,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        dev_speakers=args.dev_speakers,
        test_speakers=args.test_speakers,
        min_digits=args.min_digits,
        max_digits=args.max_digits,
        seed=args.seed,
    )))


if __name__ == "__main__":
    sys.exit(main())
