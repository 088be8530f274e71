#!/usr/bin/env python3
"""Stage 10: leave out the utterances whose transcript is longer than the
encoder output allows for CTC, before any model trains on them.

CTC aligns T encoder frames to L tokens only when ``T >= L + R`` (R: the
number of tokens equal to the one before, which need a blank between them).
ESPnet's CTC loss is built with ``zero_infinity=True``: an impossible
utterance silently contributes a zero loss and no gradient, so the model
quietly learns less than the data holds.  This is known exactly only once
the token list exists and the shapes are collected, i.e. in stage 10, so
the check filters the shape files there: ESPnet's batch sampler takes its
utterances from ``speech_shape``, and an utterance absent from it is never
trained on.

T is computed from ``speech_shape`` as the model computes it: input frames
(``T,D`` entries: features; ``N`` entries: samples through the default STFT
frontend, ``n_fft``/``hop_length``/``center`` of the config) through the
encoder's subsampling (``input_layer``), taking the utterance as the
longest of its batch, which is the least frames it can get.  Every config
given must allow the utterance (teacher and students train on the same
shape files).  A frontend or input layer of unknown frame rate skips the
check with a warning.

    python pyscripts/filter_ctc_lengths.py --speech_shape exp/stats/train/speech_shape \
        --text_shape exp/stats/train/text_shape.char --text dump/raw/train/text \
        --config conf/train_teacher.yaml --config conf/train_student.yaml \
        --token_type char --token_list data/token_list/char/tokens.txt
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import yaml

from espnet_dld.data.atomic import write_text_atomic
from espnet_dld.data.kaldi_dir import read_kv
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: ESPnet's subsampling layers as the (cut, step) slices they apply to the
#: time mask (espnet/nets/pytorch_backend/transformer/subsampling.py)
SUBSAMPLING_SLICES: Dict[Optional[str], Tuple[Tuple[int, int], ...]] = {
    None: (),
    "linear": (),
    "embed": (),
    "conv2d": ((2, 2), (2, 2)),
    "conv2d1": ((4, 1),),
    "conv2d2": ((2, 2), (2, 1)),
    "conv2d6": ((2, 2), (4, 3)),
    "conv2d8": ((2, 2), (2, 2), (2, 2)),
    # espnet_dld.asr.encoder.subsampling: two unpadded kernel-3 stride-2 convs,
    # lengths from each utterance's own length (the same as the slices)
    "conv1d4x": ((2, 2), (2, 2)),
}
#: ESPnet's DefaultFrontend defaults
STFT_DEFAULTS = {"n_fft": 512, "hop_length": 128, "center": True}


def subsampled_frames(frames: int, input_layer: Optional[str]) -> int:
    """Encoder output frames of an utterance of ``frames`` input frames that
    is the longest of its batch (ESPnet slices the mask ``[:-cut:step]``)."""
    if input_layer not in SUBSAMPLING_SLICES:
        raise ValueError(
            f"input_layer {input_layer!r}: frame rate unknown; known: "
            f"{sorted(k for k in SUBSAMPLING_SLICES if k is not None)} or none"
        )
    for cut, step in SUBSAMPLING_SLICES[input_layer]:
        frames = max(0, math.ceil((frames - cut) / step))
    return frames


@dataclass(frozen=True)
class FrameRate:
    """How one training config turns an input length into encoder frames."""

    config: str
    frontend: Optional[str]
    stft: Dict[str, object]
    input_layer: Optional[str]

    @classmethod
    def from_config(cls, config: PathLike) -> "FrameRate":
        conf = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        encoder_conf = conf.get("encoder_conf") or {}
        frontend = conf.get("frontend", "default")
        stft = dict(STFT_DEFAULTS, **{k: v for k, v in (conf.get("frontend_conf") or {}).items() if k in STFT_DEFAULTS})
        input_layer = encoder_conf.get("input_layer", "conv2d")
        subsampled_frames(1, input_layer)  # unknown input layers fail here, naming the value
        return cls(str(config), frontend, stft, input_layer)

    def encoder_frames(self, shape: Sequence[int]) -> int:
        """Encoder frames for a ``speech_shape`` entry: (samples,) or (frames, dim)."""
        if len(shape) >= 2:  # features: the frontend is not used
            frames = shape[0]
        else:
            if self.frontend not in ("default", None):
                raise ValueError(f"{self.config}: frontend {self.frontend!r}: frame rate unknown (known: default)")
            n, n_fft, hop = shape[0], int(self.stft["n_fft"]), int(self.stft["hop_length"])
            if self.stft["center"]:
                n += 2 * (n_fft // 2)
            frames = max(0, (n - n_fft) // hop + 1)
        return subsampled_frames(frames, self.input_layer)


def ctc_frames_needed(token_ids: Sequence[int]) -> int:
    """Least frames a CTC alignment of ``token_ids`` needs: one per token plus
    a blank between equal neighbours."""
    return len(token_ids) + sum(1 for a, b in zip(token_ids, token_ids[1:]) if a == b)


def _tokenizer(token_type: str, token_list: PathLike, bpemodel: Optional[PathLike]):
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.text.build_tokenizer import build_tokenizer
        from espnet2.text.token_id_converter import TokenIDConverter
    if token_type == "bpe" and (bpemodel is None or not Path(bpemodel).is_file()):
        raise ValueError(f"--token_type bpe needs an existing --bpemodel, got {bpemodel}")
    if not Path(token_list).is_file():
        raise ValueError(f"--token_list {token_list}: file not found")
    tokenizer = build_tokenizer(token_type=token_type, bpemodel=str(bpemodel) if bpemodel else None)
    converter = TokenIDConverter(token_list=str(token_list), unk_symbol="<unk>")
    return lambda line: converter.tokens2ids(tokenizer.text2tokens(line)), converter.token2id["<unk>"]


@dataclass
class CtcFilterResult:
    """Outcome of :func:`filter_ctc_lengths`."""

    total: int
    removed: Dict[str, str]  # utt -> reason
    unk_utts: List[str]  # kept utterances with tokens outside the token list

    def summary(self, where: PathLike) -> str:
        return (f"kept {self.total - len(self.removed)} of {self.total} (transcript too long for CTC: "
                f"{len(self.removed)}, listed in {where}); transcripts with tokens outside the token list "
                f"(mapped to <unk>, kept): {len(self.unk_utts)}")


def filter_ctc_lengths(
    speech_shape: PathLike,
    text_shape: PathLike,
    text: PathLike,
    configs: Sequence[PathLike],
    token_type: str,
    token_list: PathLike,
    bpemodel: Optional[PathLike] = None,
    removed_list: Optional[PathLike] = None,
) -> Optional[CtcFilterResult]:
    """Rewrite both shape files without the utterances some config cannot align.

    Returns the counts and lists (:class:`CtcFilterResult`), or None when the
    frame rate of a config is unknown (nothing is checked; a warning says
    so).  Raises ValueError naming the file when no utterance would be left
    (nothing is rewritten then).
    """
    speech_shape, text_shape = Path(speech_shape), Path(text_shape)
    removed_list = Path(removed_list) if removed_list else speech_shape.parent / "ctc_too_long_utts.txt"
    try:
        rates = [FrameRate.from_config(c) for c in configs]
    except ValueError as e:
        logger.warning("CTC length check skipped: %s", e)
        return None
    shapes = {u: [int(x) for x in v.split(",")] for _, u, v in read_kv(speech_shape, kaldi_sorted=False)}
    texts = {u: t for _, u, t in read_kv(Path(text), allow_empty_value=True)}
    to_ids, unk_id = _tokenizer(token_type, token_list, bpemodel)
    removed: Dict[str, str] = {}
    unk_utts: List[str] = []
    for utt, shape in shapes.items():
        if utt not in texts:
            raise ValueError(f"{speech_shape}: utterance {utt!r} has no transcript in {text}")
        ids = to_ids(texts[utt])
        needed = ctc_frames_needed(ids)
        try:
            frames = min(rate.encoder_frames(shape) for rate in rates)
        except ValueError as e:
            logger.warning("CTC length check skipped: %s", e)
            return None
        if frames < needed:
            removed[utt] = f"{needed} CTC frames needed (tokens + repeats), encoder gives {frames}"
        elif unk_id in ids:
            unk_utts.append(utt)
    if len(removed) == len(shapes):
        raise ValueError(
            f"every utterance of {speech_shape} has a transcript too long for CTC at this frame rate "
            f"(e.g. {next(iter(removed.items()))}); use a smaller subsampling (input_layer) or hop_length, "
            "or a larger token unit"
        )
    for path in (speech_shape, text_shape):
        rows = read_kv(path, kaldi_sorted=False)
        write_text_atomic(path, "".join(f"{u} {v}\n" for _, u, v in rows if u not in removed))
    write_text_atomic(removed_list, "".join(f"{u}\t{r}\n" for u, r in removed.items()))
    if unk_utts:
        logger.warning("%d of %d transcripts of %s contain tokens outside %s (mapped to <unk>, kept), e.g. %s",
                       len(unk_utts), len(shapes), text, token_list, " ".join(unk_utts[:5]))
    return CtcFilterResult(len(shapes), removed, unk_utts)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyscripts/filter_ctc_lengths.py",
        description="Remove utterances whose transcript is too long for CTC from ESPnet shape files (stage 10).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--speech_shape", required=True, help="speech_shape file of collect_stats (rewritten)")
    parser.add_argument("--text_shape", required=True, help="text_shape file of collect_stats (rewritten)")
    parser.add_argument("--text", required=True, help="transcripts of the same utterances")
    parser.add_argument("--config", action="append", required=True, help="training config (repeatable)")
    parser.add_argument("--token_type", required=True, choices=("char", "bpe"))
    parser.add_argument("--token_list", required=True)
    parser.add_argument("--bpemodel", default=None)
    parser.add_argument("--removed_list", default=None,
                        help="where to list the removed utterances; default: ctc_too_long_utts.txt beside --speech_shape")
    add_log_level(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    result = filter_ctc_lengths(
        args.speech_shape, args.text_shape, args.text, args.config, args.token_type, args.token_list,
        args.bpemodel, args.removed_list,
    )
    if result is None:
        print(f"filter_ctc_lengths: {args.speech_shape}: not checked (see the warning above)")
        return
    where = args.removed_list or Path(args.speech_shape).parent / "ctc_too_long_utts.txt"
    print(f"filter_ctc_lengths: {args.speech_shape}: {result.summary(where)}")


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error)."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("filter_ctc_lengths", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
