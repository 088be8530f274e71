#!/usr/bin/env python3
"""Stage 1 of an4_dld: Kaldi-style data dirs from an AN4 folder.

Two layouts of the same corpus are read, told apart per recording:

* the GitHub copy (``cmusphinx/an4``, the project's ``../shared/data/an4``):
  ``wav/an4_clstk/<spk>/<id>.wav`` and ``wav/an4test_clstk/<spk>/<id>.wav``;
* CMU's ``an4_sphere.tar.gz`` (what ESPnet's ``egs2/an4`` downloads): the same
  folders with NIST SPHERE ``<id>.sph`` files.  ``wav.scp`` names them as
  they are: stage 3 reads them with soundfile (libsndfile reads SPHERE) and
  dumps WAV, so no ``sph2pipe`` is needed.

Both keep the transcripts in ``etc/an4_{train,test}.transcription``, one
utterance a line: ``<s> WORDS </s> (an251-fash-b)`` (the test file has no
``<s>``/``</s>``).  The text is normalised as ESPnet's an4 recipe does: the
words before the parenthesis, without the sentence markers, upper case kept.
The utterance id puts the speaker first (``fash-an251-b``) so Kaldi's
speaker-prefix rule holds, and ESPnet's split follows from C-sorted ids:
``train_dev`` = the first ``--ndev_utt`` (100) training utterances,
``train_nodev`` = the rest (848), ``test`` = the 130 test utterances.

    python local/data_prep.py --an4_root ../../../../shared/data/an4 --out data
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet_dld.data.kaldi_dir import Utterance, write_data_dir

#: split -> (transcription file under etc/, recordings folder under wav/)
SPLITS: Dict[str, tuple] = {
    "train": ("an4_train.transcription", "an4_clstk"),
    "test": ("an4_test.transcription", "an4test_clstk"),
}
AUDIO_SUFFIXES = (".wav", ".sph")  # GitHub copy, CMU's SPHERE archive
LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<source>[^()\s]+)\)\s*$")


def normalize_words(words: str) -> str:
    """ESPnet's an4 text: no ``<s>``/``</s>`` markers, single spaces, case kept."""
    tokens = words.split()
    if tokens[:1] == ["<s>"]:
        tokens = tokens[1:]
    if tokens[-1:] == ["</s>"]:
        tokens = tokens[:-1]
    return " ".join(tokens)


def find_audio(wav_dir: Path, spk: str, source: str) -> Optional[Path]:
    for suffix in AUDIO_SUFFIXES:
        path = wav_dir / spk / f"{source}{suffix}"
        if path.is_file():
            return path
    return None


def read_split(an4_root: Path, split: str) -> List[Utterance]:
    """The utterances of one transcription file, with their recordings.

    Raises ValueError naming the file and line of a malformed entry, or the
    recordings that are missing (the first few of them).
    """
    trans_name, wav_name = SPLITS[split]
    trans = an4_root / "etc" / trans_name
    wav_dir = an4_root / "wav" / wav_name
    if not trans.is_file():
        raise ValueError(f"{trans} does not exist")
    utts: List[Utterance] = []
    missing: List[str] = []
    for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = LINE.match(line.strip())
        parts = m.group("source").split("-") if m else []
        if not m or len(parts) != 3:
            raise ValueError(f"{trans}:{lineno}: expected 'WORDS (anNNN-<speaker>-b)', got {line.strip()!r}")
        text = normalize_words(m.group("words"))
        if not text:
            raise ValueError(f"{trans}:{lineno}: empty transcript in {line.strip()!r}")
        pre, spk, last = parts
        audio = find_audio(wav_dir, spk, m.group("source"))
        if audio is None:
            missing.append(str(wav_dir / spk / m.group("source")) + "{" + ",".join(AUDIO_SUFFIXES) + "}")
            continue
        utts.append(Utterance(utt_id=f"{spk}-{pre}-{last}", wav=str(audio.resolve()), text=text, spk=spk))
    if missing:
        shown = "\n  ".join(missing[:5])
        raise ValueError(
            f"{trans}: {len(missing)} of its recordings are missing, e.g.\n  {shown}\n"
            f"expected WAV (GitHub cmusphinx/an4) or NIST SPHERE (CMU an4_sphere.tar.gz) files under {wav_dir}"
        )
    return utts


def split_dev(train: List[Utterance], ndev_utt: int) -> tuple:
    """ESPnet's split: the first ``ndev_utt`` utterances in C-sorted id order
    are ``train_dev``, the others ``train_nodev``."""
    ordered = sorted(train, key=lambda u: u.utt_id.encode("utf-8"))
    if not 0 < ndev_utt < len(ordered):
        raise ValueError(f"--ndev_utt {ndev_utt}: must be between 1 and {len(ordered) - 1} "
                         f"(the training set has {len(ordered)} utterances)")
    return ordered[:ndev_utt], ordered[ndev_utt:]


def prepare(an4_root: Path, out: Path, ndev_utt: int = 100) -> Dict[str, int]:
    """Write data/{train_nodev,train_dev,test}; returns utterances per set."""
    train = read_split(an4_root, "train")
    test = read_split(an4_root, "test")
    dev, nodev = split_dev(train, ndev_utt)
    sets = {"train_nodev": nodev, "train_dev": dev, "test": test}
    for name, utts in sets.items():
        write_data_dir(utts, out / name)
    return {name: len(utts) for name, utts in sets.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--an4_root", type=Path, required=True, help="folder holding etc/ and wav/")
    parser.add_argument("--out", type=Path, default=Path("data"), help="where the data dirs go")
    parser.add_argument("--ndev_utt", type=int, default=100, help="training utterances held out as train_dev")
    args = parser.parse_args(argv)
    try:
        counts = prepare(args.an4_root, args.out, args.ndev_utt)
    except ValueError as e:
        print(f"local/data_prep.py: ERROR: {e}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
