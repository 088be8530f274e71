"""LibriSpeech -> Kaldi-style data directories.

Reads the standard layout::

    <root>/<set>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    <root>/<set>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac

and writes one data directory per set, named after the set with ``-``
replaced by ``_`` (``dev-clean`` -> ``data/dev_clean``).  The utterance id is
the LibriSpeech id, which already starts with the speaker id; ``wav.scp``
points at the FLAC files directly (ESPnet reads them with soundfile).

Command line::

    python local/librispeech.py --root /corpora/LibriSpeech \
        --sets train-clean-100 dev-clean test-clean --out data/

:func:`make_fake_librispeech` writes a tiny tree of synthetic FLAC files in the
same layout, for tests and dry runs.
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from espnet_dld.data.atomic import write_audio_atomic, write_text_atomic
from espnet_dld.data.audio import float_to_int16
from espnet_dld.data.kaldi_dir import Utterance, validate_data_dir, write_data_dir
from espnet_dld.utils.cli import print_dirs, run_tool

PathLike = Union[str, os.PathLike]
SAMPLE_RATE = 16000


def data_dir_name(set_name: str) -> str:
    """``train-clean-100`` -> ``train_clean_100``."""
    return set_name.replace("-", "_")


def _sorted_dirs(path: Path) -> List[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: p.name)


def read_librispeech_set(set_dir: PathLike) -> List[Utterance]:
    """Collect the utterances of one LibriSpeech set folder.

    Raises ValueError naming what is missing: the set folder, a chapter's
    ``trans.txt``, or the FLAC file of a transcript line.
    """
    set_dir = Path(set_dir)
    if not set_dir.is_dir():
        raise ValueError(f"LibriSpeech set folder not found: {set_dir}")
    utts: List[Utterance] = []
    for spk_dir in _sorted_dirs(set_dir):
        spk = spk_dir.name
        for chapter_dir in _sorted_dirs(spk_dir):
            trans = chapter_dir / f"{spk}-{chapter_dir.name}.trans.txt"
            if not trans.is_file():
                raise ValueError(
                    f"{trans}: transcript file missing for chapter folder {chapter_dir}"
                )
            seen = set()
            with trans.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    parts = line.split(maxsplit=1)
                    utt_id = parts[0]
                    where = f"{trans}:{lineno}"
                    if len(parts) < 2 or not parts[1].strip():
                        raise ValueError(f"{where}: empty transcript: {line.rstrip()!r}")
                    if not utt_id.startswith(f"{spk}-{chapter_dir.name}-"):
                        raise ValueError(
                            f"{where}: utterance id {utt_id!r} does not belong to "
                            f"speaker {spk} chapter {chapter_dir.name}"
                        )
                    flac = chapter_dir / f"{utt_id}.flac"
                    if not flac.is_file():
                        raise ValueError(f"{where}: audio file missing: {flac}")
                    seen.add(flac.name)
                    utts.append(
                        Utterance(utt_id, str(flac.resolve()), parts[1].strip(), spk)
                    )
            unused = sorted(
                p.name for p in chapter_dir.glob("*.flac") if p.name not in seen
            )
            if unused:
                logging.warning(
                    "%s: %d flac files without a transcript line (e.g. %s); skipped",
                    chapter_dir,
                    len(unused),
                    unused[0],
                )
    if not utts:
        raise ValueError(f"{set_dir}: no utterances found (expected <spk>/<chapter>/*.flac)")
    return utts


def prepare_librispeech(
    root: PathLike, sets: Sequence[str], out_dir: PathLike
) -> Dict[str, Path]:
    """Write ``out_dir/<set with _>`` for every set; returns set -> data dir.

    All sets are read and checked before anything is written, so a missing
    set does not leave some data directories half-prepared.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"LibriSpeech root folder not found: {root}")
    if not sets:
        raise ValueError("no LibriSpeech sets given")
    collected = {s: read_librispeech_set(root / s) for s in sets}
    out: Dict[str, Path] = {}
    for s, utts in collected.items():
        d = write_data_dir(utts, Path(out_dir) / data_dir_name(s))
        validate_data_dir(d)
        logging.info("%s: %d utterances -> %s", s, len(utts), d)
        out[s] = d
    return out


_FAKE_WORDS = (
    "A ALL AND BUT FOR HE HIS IT OF ON SHE THAT THE THEY TO WAS WITH "
    "AFTER BEFORE COULD EVERY LITTLE NIGHT OLD SAID TIME WATER"
).split()


def make_fake_librispeech(
    root: PathLike,
    sets: Sequence[str] = ("dev-clean",),
    num_speakers: int = 2,
    num_chapters: int = 2,
    num_utts: int = 3,
    seconds: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write a tiny LibriSpeech-layout tree of synthetic FLAC files.

    Speaker ids are numeric like the real ones (speakers 0..n-1 of set k get
    ids ``100 * (k + 1) + i``); the audio is a few tones plus noise at 16 kHz.
    Deterministic given ``seed``.  Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    for k, set_name in enumerate(sets):
        for i in range(num_speakers):
            spk = str(100 * (k + 1) + i)
            for c in range(num_chapters):
                chapter = str(1000 + 10 * i + c)
                chapter_dir = root / set_name / spk / chapter
                lines = []
                for u in range(num_utts):
                    utt_id = f"{spk}-{chapter}-{u:04d}"
                    freqs = rng.uniform(100, 1000, size=3)
                    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 6
                    x = x + 0.01 * rng.standard_normal(n)
                    write_audio_atomic(
                        chapter_dir / f"{utt_id}.flac", float_to_int16(x), SAMPLE_RATE, "FLAC"
                    )
                    words = rng.choice(_FAKE_WORDS, size=int(rng.integers(2, 8)))
                    lines.append(f"{utt_id} {' '.join(words)}\n")
                write_text_atomic(chapter_dir / f"{spk}-{chapter}.trans.txt", "".join(lines))
    return root


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local/librispeech.py",
        description="Prepare Kaldi-style data directories from a LibriSpeech folder.",
    )
    parser.add_argument("--root", required=True, help="folder containing the set folders")
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["train-clean-100", "dev-clean", "test-clean"],
        help="set folders to prepare (default: %(default)s)",
    )
    parser.add_argument("--out", default="data", help="output folder (default: %(default)s)")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (librispeech) %(message)s")
    return run_tool("librispeech", lambda: print_dirs(prepare_librispeech(args.root, args.sets, args.out)))


if __name__ == "__main__":
    sys.exit(main())
