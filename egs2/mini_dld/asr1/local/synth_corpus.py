"""The embedded default corpus: English sentences spoken by eSpeak NG.

It lets the recipes, tests and benchmarks run without downloading any corpus
(eSpeak NG itself comes from PyPI, see :mod:`espeak` (local/espeak.py)).

* Speakers: 22 synthetic speakers, each an English accent, a voice variant
  (``m1``..``m8``, ``f1``..``f5``, ``croak``, ``klatt*``, ...), a speaking rate
  and a pitch.  Every variant belongs to exactly one speaker, and the split is
  by speaker: 16 train, 2 dev and 4 test speakers, so test voices are never
  heard in training.  The speaker id encodes the voice, e.g.
  ``enus_m4_r165_p50`` (accent en-us, variant m4, 165 words/min, pitch 50).
* Text: sentences from :mod:`grammar` (local/grammar.py) (about 260 words),
  lower case; dev and test sentences never occur in train.
* Audio: 16 kHz 16-bit mono wav (resampled from eSpeak's 22050 Hz), with
  per-utterance jitter of rate and pitch, random leading/trailing silence,
  random level and a very low noise floor.
* Reproducible: every utterance is planned from ``(seed, split, index)``, the
  same options give byte-identical files, and a re-run only makes what is
  missing (see :mod:`espnet_dld.data.wav_plan`).

Command line::

    python local/synth_corpus.py --out_wav wav/synth --out_data data \
        [--train_utts 1200 --dev_utts 150 --test_utts 200 --seed 0]
"""

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Set, Union

import numpy as np

import grammar
from espnet_dld.data.atomic import write_audio_atomic
from espnet_dld.data.audio import float_to_int16, int16_to_float, peak_normalize, resample
from espeak import Espeak, EspeakError, get_espeak
from espnet_dld.data.kaldi_dir import Utterance, validate_data_dir, write_data_dir
from espnet_dld.data.wav_plan import PlannedWav, realize_plan
from espnet_dld.utils.cli import print_dirs, run_tool

PathLike = Union[str, os.PathLike]

SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")
_FORMAT_VERSION = 1  # bump when the audio recipe changes, to invalidate old files

# short, sortable codes of the eSpeak NG English accents used below
ACCENT_CODES = {
    "en-us": "enus",
    "en": "engb",
    "en-gb-scotland": "ensc",
    "en-gb-x-rp": "enrp",
    "en-029": "encb",
    "en-us-nyc": "enny",
    "en-gb-x-gbclan": "encl",
}


@dataclass(frozen=True)
class SynthSpeaker:
    """One synthetic speaker: eSpeak NG accent + variant, rate and pitch."""

    accent: str  # eSpeak NG language, e.g. "en-us"
    variant: str  # eSpeak NG voice variant, e.g. "m3"
    rate: int  # words per minute
    pitch: int  # 0..99

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def spk_id(self) -> str:
        accent = ACCENT_CODES.get(self.accent, self.accent.replace("-", "").lower())
        return f"{accent}_{self.variant.lower()}_r{self.rate}_p{self.pitch}"


def _s(accent: str, variant: str, rate: int, pitch: int) -> SynthSpeaker:
    return SynthSpeaker(accent, variant, rate, pitch)


DEFAULT_SPEAKERS: Dict[str, Sequence[SynthSpeaker]] = {
    "train": (
        _s("en-us", "m1", 165, 45), _s("en", "m2", 150, 55),
        _s("en-gb-scotland", "m3", 170, 40), _s("en-us", "m5", 155, 50),
        _s("en-029", "m7", 160, 45), _s("en-gb-x-gbclan", "m8", 150, 50),
        _s("en-gb-x-rp", "f1", 160, 55), _s("en-us", "f2", 175, 60),
        _s("en", "f5", 150, 50), _s("en-us-nyc", "croak", 155, 45),
        _s("en-us", "klatt", 165, 50), _s("en", "klatt3", 160, 55),
        _s("en-us", "adam", 150, 40), _s("en-gb-scotland", "linda", 165, 55),
        _s("en-us", "paul", 170, 45), _s("en-gb-x-rp", "iven", 160, 50),
    ),
    "dev": (_s("en-us", "m6", 160, 50), _s("en-gb-x-rp", "f4", 170, 55)),
    "test": (
        _s("en-us", "m4", 165, 50), _s("en", "f3", 160, 55),
        _s("en-us", "klatt2", 155, 45), _s("en-gb-scotland", "max", 170, 50),
    ),
}

# per-utterance variation
RATE_JITTER = 0.06  # +-6 % of the speaker's rate
PITCH_JITTER = 4  # +-4 pitch units
EDGE_SILENCE_MS = (100, 300)  # before and after the speech
PEAK_DB = (-6.0, -1.0)
NOISE_DB = (-70.0, -55.0)
_TRIM_LEVEL = 8  # int16 magnitude under which eSpeak's own edges count as silence


def check_speakers(speakers: Dict[str, Sequence[SynthSpeaker]]) -> None:
    """Raise ValueError unless splits are non-empty and share no voice variant
    (so dev/test voices are unseen in training) and speaker ids are unique."""
    owner: Dict[str, str] = {}
    ids: Set[str] = set()
    for split in SPLITS:
        group = speakers.get(split, ())
        if not group:
            raise ValueError(f"no {split} speakers")
        for spk in group:
            if spk.spk_id in ids:
                raise ValueError(f"speaker {spk.spk_id} listed twice")
            ids.add(spk.spk_id)
            key = spk.variant.lower()
            if owner.get(key, split) != split:
                raise ValueError(
                    f"variant {spk.variant!r} is used by {owner[key]} and {split} speakers; "
                    "splits must not share voices"
                )
            owner[key] = split


def plan_utterance(
    spk: SynthSpeaker, seed: int, split_no: int, index: int, avoid: Set[str], backend: str
) -> Dict:
    """Everything that determines one utterance, drawn from (seed, split, index)."""
    rng = np.random.default_rng([seed, split_no, index])
    text = grammar.sentence(rng)
    for _ in range(1000):
        if text not in avoid:
            break
        text = grammar.sentence(rng)
    else:
        raise ValueError("cannot find a sentence outside the training set; grammar too small")
    rate = int(round(spk.rate * (1 + rng.uniform(-RATE_JITTER, RATE_JITTER))))
    pitch = int(np.clip(spk.pitch + rng.integers(-PITCH_JITTER, PITCH_JITTER + 1), 0, 99))
    return {
        "v": _FORMAT_VERSION,
        "espeak": backend,
        "sr": SAMPLE_RATE,
        "text": text,
        "voice": spk.voice,
        "rate": rate,
        "pitch": pitch,
        "lead_ms": int(rng.integers(EDGE_SILENCE_MS[0], EDGE_SILENCE_MS[1] + 1)),
        "trail_ms": int(rng.integers(EDGE_SILENCE_MS[0], EDGE_SILENCE_MS[1] + 1)),
        "peak_db": round(float(rng.uniform(*PEAK_DB)), 2),
        "noise_db": round(float(rng.uniform(*NOISE_DB)), 2),
        "noise_seed": int(rng.integers(2**31)),
    }


def render(spec: Dict, espeak: Espeak) -> np.ndarray:
    """Make the int16 samples described by a plan ``spec``."""
    x = espeak.synthesize(
        spec["text"], spec["voice"], spec["rate"], spec["pitch"], seed=spec["noise_seed"]
    )
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > _TRIM_LEVEL)
    if loud.size == 0:
        raise EspeakError(f"eSpeak NG produced silence for {spec['voice']!r}: {spec['text']!r}")
    y = resample(int16_to_float(x[loud[0] : loud[-1] + 1]), espeak.sample_rate, spec["sr"])
    y = peak_normalize(y, spec["peak_db"])
    sr = spec["sr"]
    y = np.concatenate(
        [np.zeros(spec["lead_ms"] * sr // 1000), y, np.zeros(spec["trail_ms"] * sr // 1000)]
    )
    noise = np.random.default_rng(spec["noise_seed"]).standard_normal(len(y))
    return float_to_int16(y + 10.0 ** (spec["noise_db"] / 20.0) * noise)


def prepare_synth_corpus(
    out_wav: PathLike,
    out_data: PathLike,
    train_utts: int = 1200,
    dev_utts: int = 150,
    test_utts: int = 200,
    seed: int = 0,
    speakers: Optional[Dict[str, Sequence[SynthSpeaker]]] = None,
    backend: str = "auto",
) -> Dict[str, Path]:
    """Write wavs to ``out_wav/<split>/`` and data dirs to ``out_data/<split>``.

    Returns split -> data dir; a split with 0 utterances is skipped.
    Utterance ``k`` of a split is spoken by speaker ``k % n`` of that split.
    """
    speakers = DEFAULT_SPEAKERS if speakers is None else speakers
    check_speakers(speakers)
    sizes = {"train": train_utts, "dev": dev_utts, "test": test_utts}
    for split, n in sizes.items():
        if n < 0:
            raise ValueError(f"--{split}_utts must be >= 0, got {n}")
    espeak = get_espeak(backend)
    try:
        for group in speakers.values():
            for spk in group:
                espeak.check_voice(spk.voice)
        out: Dict[str, Path] = {}
        train_texts: Set[str] = set()
        for split_no, split in enumerate(SPLITS):
            group = list(speakers[split])
            avoid = set() if split == "train" else train_texts
            planned = []
            for k in range(sizes[split]):
                spk = group[k % len(group)]
                spec = plan_utterance(spk, seed, split_no, k, avoid, espeak.identity())
                planned.append((f"{spk.spk_id}-{k // len(group):04d}", spk, spec))
            if split == "train":
                train_texts = {spec["text"] for _, _, spec in planned}
            if planned:
                wav_dir = Path(out_wav).resolve() / split
                out[split] = _write_split(planned, espeak, wav_dir, Path(out_data) / split)
    finally:
        espeak.close()
    return out


def _write_split(planned, espeak: Espeak, wav_dir: Path, data_dir: Path) -> Path:
    """Make the wavs of one split (reusing finished ones) and its data dir."""
    items = [
        PlannedWav(utt, wav_dir / f"{utt}.wav", json.dumps(spec, sort_keys=True))
        for utt, _, spec in planned
    ]
    specs = {utt: spec for utt, _, spec in planned}

    def make(item: PlannedWav) -> None:
        write_audio_atomic(item.path, render(specs[item.utt_id], espeak), SAMPLE_RATE)

    res = realize_plan(items, wav_dir, make, desc=f"synth {wav_dir.name}")
    logging.info(
        "%s: %d speakers, %d wavs generated, %d reused",
        wav_dir.name, len({spk for _, spk, _ in planned}), res.generated, res.reused,
    )
    utts = [
        Utterance(utt, str(item.path), spec["text"], spk.spk_id)
        for (utt, spk, spec), item in zip(planned, items)
    ]
    write_data_dir(utts, data_dir)
    validate_data_dir(data_dir)
    return data_dir


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local/synth_corpus.py",
        description="Generate the embedded synthetic corpus with eSpeak NG.",
    )
    parser.add_argument("--out_wav", help="folder for the generated wavs")
    parser.add_argument("--out_data", help="folder for data/{train,dev,test}")
    parser.add_argument("--train_utts", type=int, default=1200)
    parser.add_argument("--dev_utts", type=int, default=150)
    parser.add_argument("--test_utts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        choices=["auto", "library", "command"],
        default="auto",
        help="eSpeak NG route: the espeakng-loader wheel (library), the espeak-ng "
        "program (command), or the first available (default: %(default)s)",
    )
    parser.add_argument(
        "--list_speakers", action="store_true", help="print the speaker table and exit"
    )
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(cmd)
    if args.list_speakers:
        for split in SPLITS:
            for spk in DEFAULT_SPEAKERS[split]:
                print(f"{split}\t{spk.spk_id}\t{spk.voice}\trate={spk.rate}\tpitch={spk.pitch}")
        return 0
    if not args.out_wav or not args.out_data:
        parser.error("--out_wav and --out_data are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (synth_corpus) %(message)s")
    return run_tool("synth_corpus", lambda: print_dirs(prepare_synth_corpus(
        args.out_wav,
        args.out_data,
        train_utts=args.train_utts,
        dev_utts=args.dev_utts,
        test_utts=args.test_utts,
        seed=args.seed,
        backend=args.backend,
    )), (EspeakError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
