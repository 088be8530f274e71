#!/usr/bin/env python3
"""Decoding at a chosen encoder depth: ESPnet's ``Speech2Text`` and
``asr_inference`` CLI plus ``--depth``.

``python -m espnet_dld.bin.asr_inference`` takes every option of
``espnet2.bin.asr_inference`` and ``--depth K [K ...]`` (or
``--depth_layers``), ``--depth_policy`` and ``--depth_profile``.  All depths are decoded by one process with one loaded
model, each into ``<output_dir>/depth<K>/`` (``--depth_layers`` into
``<output_dir>/layers<i-j-...>/``); without either option the full model
decodes into ``<output_dir>`` itself, as with ESPnet.  Next to the usual
``1best_recog/`` files, ``decode_stats.json`` records the blocks that ran,
the depth policy that chose them and the decoding and encoder time, for
real-time factors.  Every recording of a ``sound`` input is checked before
anything is decoded (:mod:`espnet_dld.asr.wav_scp_check`): a bad one stops
the run naming its key and path, or is skipped with ``--skip_bad_utts true``;
either way it is listed in ``<output_dir>/bad_utts.txt``.

A depth profile (``depth_profile.yaml``, measured by
``espnet_dld.bin.depth_profile``) beside the model file, or given with
``--depth_profile``, is used by default: the blocks of depth k are then
``profile[k]`` (policy ``profile``); ``--depth_policy`` overrides.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

import espnet_dld.tasks.asr  # noqa: F401  (registers our classes with ESPnet)
from espnet_dld.utils.quiet_imports import quiet_espnet_imports

with quiet_espnet_imports():
    import espnet2.bin.asr_inference as espnet_inference
    from espnet_dld.compat import get_commandline_args
    from espnet2.utils.types import str2bool

from espnet_dld.asr.ctc_greedy_search import CTCGreedySearch  # noqa: E402
from espnet_dld.asr.encoder.depth_profile_file import apply_depth_profile  # noqa: E402
from espnet_dld.asr.encoder.layer_gating import DEPTH_POLICIES  # noqa: E402
from espnet_dld.asr.trained_model import rebuilding_trained_model, trained_model_files  # noqa: E402
from espnet_dld.data.atomic import write_text_atomic  # noqa: E402
from espnet_dld.utils.checkpoint import load_state_dict_strict  # noqa: E402
from espnet_dld.utils.model_zoo import unpack_model  # noqa: E402
from espnet_dld.asr.audio_input import ModelAudioInput, Speech  # noqa: E402
from espnet_dld.asr.wav_scp_check import screen_decoding_data  # noqa: E402
from espnet_dld.utils.cli import run_tool  # noqa: E402
from espnet_dld.utils.espnet_warnings import filter_unactionable_espnet_warnings  # noqa: E402
from espnet_dld.utils.model_files import check_train_config  # noqa: E402

filter_unactionable_espnet_warnings()

logger = logging.getLogger(__name__)


class Speech2Text(espnet_inference.Speech2Text):
    """ESPnet's ``Speech2Text`` with a selectable encoder depth.

    >>> s2t = Speech2Text("exp/x/config.yaml", "exp/x/valid.loss_ctc.ave.pth", depth=6)
    >>> text, *_ = s2t("utt.wav")[0]    # or s2t(samples, fs=8000): resampled to the model's rate
    >>> s2t.set_depth(3)   # no reload; None = all blocks

    Speech is a path to an audio file, or float samples (numpy array, torch
    tensor, list) at the model's rate unless ``fs`` says otherwise; int16 and
    int32 PCM are scaled by their full scale (``x / 32768`` for int16).  Empty
    or too short audio (``min_samples``), NaN/Inf, several channels and
    unreadable files raise a ``ValueError`` saying what to do
    (:mod:`espnet_dld.asr.audio_input`).

    Weights load strictly (ESPnet loads with ``strict=False``): missing or
    unexpected keys raise an error listing them.  A DLD student is built
    without its teacher.  ``ctc_greedy=True`` decodes by CTC best path
    instead of ESPnet's beam search.  Any other keyword argument is ESPnet's.

    Which blocks run at depth k: ``depth_profile.yaml`` beside
    ``asr_model_file`` (a packed model that carries one unpacks it there),
    or the file ``depth_profile`` names, makes the policy ``profile``
    (blocks ``profile[k]``); ``depth_policy`` (``uniform``, ``first``,
    ``profile``) overrides, and without either the encoder config's policy
    applies.  A profile measured on another model file is refused.

    One instance may serve several threads: the depth is encoder state, so
    ``s2t(speech, depth=k)`` sets it, decodes and restores the previous
    depth under a lock that ``set_depth`` takes too; a call never sees the
    depth of another call.  Calls are serialised (the beam search and the
    timing counters are per-instance state as well).
    """

    def __init__(
        self,
        asr_train_config: Union[Path, str, None] = None,
        asr_model_file: Union[Path, str, None] = None,
        depth: Optional[int] = None,
        layers: Optional[Sequence[int]] = None,
        ctc_greedy: bool = False,
        depth_profile: Union[Path, str, None] = None,
        depth_policy: Optional[str] = None,
        **kwargs: Any,
    ):
        if kwargs.get("quantize_asr_model"):
            raise ValueError("quantize_asr_model is not supported with dynamic depth yet; decode unquantized")
        if kwargs.get("enh_s2t_task"):
            raise ValueError("enh_s2t_task is not supported by espnet_dld.Speech2Text")
        if asr_model_file is not None:  # a .pth (config beside it by default) or a packed zip
            asr_train_config, asr_model_file = trained_model_files(asr_model_file, asr_train_config,
                                                                   "asr_model_file", "asr_train_config")
        elif asr_train_config is None:
            raise ValueError("give asr_train_config, asr_model_file, or both")
        check_train_config(asr_train_config)
        with rebuilding_trained_model():
            super().__init__(asr_train_config=asr_train_config, asr_model_file=None, **kwargs)
        if asr_model_file is not None:
            load_state_dict_strict(self.asr_model, asr_model_file)
        if ctc_greedy:
            if self.asr_model.ctc is None:
                raise ValueError("ctc_greedy needs a model with a CTC branch")
            self.beam_search = CTCGreedySearch(self.asr_model.ctc, self.asr_model.sos, self.asr_model.eos,
                                               getattr(self.asr_model, "blank_id", 0))
        self.audio_input = ModelAudioInput.for_model(self.asr_model, self.asr_train_args, self.device, self.dtype)
        self.timing = DecodeTiming(self.asr_model.encoder)
        self._lock = threading.RLock()
        _, self.depth_profile_path = apply_depth_profile(
            self.asr_model.encoder, asr_model_file, depth_profile=depth_profile, depth_policy=depth_policy
        )
        self.set_depth(depth, layers)

    @property
    def sample_rate(self) -> int:
        """The rate the model was trained at; other rates are resampled to it."""
        return self.audio_input.sample_rate

    @property
    def min_samples(self) -> Optional[int]:
        """The fewest samples (at ``sample_rate``) this model can decode."""
        return self.audio_input.min_samples

    # -- depth -----------------------------------------------------------
    @property
    def num_layers(self) -> Optional[int]:
        """Number of encoder blocks of a dynamic encoder (None if static)."""
        return getattr(self.asr_model.encoder, "num_layers", None)

    @property
    def active_layers(self) -> Optional[List[int]]:
        return getattr(self.asr_model.encoder, "active_layers", None)

    @property
    def depth_policy(self) -> Optional[str]:
        """How a depth's blocks are chosen (None for a static encoder)."""
        return getattr(self.asr_model.encoder, "depth_policy", None)

    def set_depth_policy(self, depth_policy: str) -> Optional[List[int]]:
        """Choose the blocks of a depth by ``depth_policy`` from now on (a
        depth already set is re-chosen); returns the active blocks."""
        encoder = self.asr_model.encoder
        if not hasattr(encoder, "set_depth_policy"):
            raise ValueError(f"depth_policy={depth_policy!r}: the encoder {type(encoder).__name__} of this model "
                             "is static; depth policies need a dld_* encoder")
        with self._lock:
            return encoder.set_depth_policy(depth_policy)

    def set_depth(self, depth: Optional[int] = None, layers: Optional[Sequence[int]] = None) -> Optional[List[int]]:
        """Decode with ``depth`` blocks (or exactly ``layers``) from now on."""
        encoder = self.asr_model.encoder
        if hasattr(encoder, "set_depth"):
            with self._lock:
                return encoder.set_depth(depth=depth, layers=layers)
        if depth is None and layers is None:
            return None
        raise ValueError(
            f"depth={depth!r} layers={layers!r}: the encoder {type(encoder).__name__} of this model is static; "
            "depth selection needs a dld_* encoder"
        )

    @torch.no_grad()
    def __call__(
        self,
        speech: Speech,
        depth: Optional[int] = None,
        layers: Optional[Sequence[int]] = None,
        fs: Optional[int] = None,
    ):
        """Decode ``speech`` (a path, or samples at ``fs`` Hz, default the
        model's rate); ``depth``/``layers`` apply to this call only
        (the instance's depth is restored afterwards), so threads decoding at
        different depths do not race on the encoder's depth.  Neither given:
        the instance's depth (``set_depth``); all blocks: ``depth=num_layers``."""
        speech = self.audio_input.prepare(speech, fs)
        with self._lock:
            if depth is None and layers is None:
                return self._decode(speech)
            previous = self.active_layers
            if previous == list(range(self.num_layers or 0)):
                previous = None  # all blocks
            self.set_depth(depth, layers)
            try:
                return self._decode(speech)
            finally:
                self.set_depth(layers=previous)

    def _decode(self, speech: np.ndarray):
        start = time.perf_counter()
        try:
            return super().__call__(speech)
        finally:
            self.timing.add_call(time.perf_counter() - start, int(speech.shape[0]))

    @classmethod
    def from_pretrained(
        cls,
        model_tag: Optional[str] = None,
        depth: Optional[int] = None,
        layers: Optional[Sequence[int]] = None,
        **kwargs: Any,
    ) -> "Speech2Text":
        """Build from a packed model zip (or a model-zoo tag)."""
        if model_tag is not None:
            kwargs.update(unpack_model(model_tag))
        return cls(depth=depth, layers=layers, **kwargs)


class DecodeTiming:
    """Wall-clock of whole decoding calls and of the encoder inside them."""

    def __init__(self, encoder: torch.nn.Module):
        self.reset()
        self._start = None
        if encoder is not None:
            encoder.register_forward_pre_hook(self._enc_start)
            encoder.register_forward_hook(self._enc_end)

    def reset(self) -> None:
        self.calls, self.samples, self.decode_seconds, self.encoder_seconds = 0, 0, 0.0, 0.0

    def _enc_start(self, module, args):
        self._start = time.perf_counter()

    def _enc_end(self, module, args, output):
        if self._start is not None:
            self.encoder_seconds += time.perf_counter() - self._start
            self._start = None

    def add_call(self, seconds: float, samples: int) -> None:
        self.calls += 1
        self.samples += samples
        self.decode_seconds += seconds

    def as_dict(self) -> Dict[str, float]:
        return {
            "utterances": self.calls,
            "input_samples": self.samples,
            "decode_seconds": round(self.decode_seconds, 6),
            "encoder_seconds": round(self.encoder_seconds, 6),
        }


@contextlib.contextmanager
def _espnet_loop_uses(speech2text: Speech2Text):
    """Let ESPnet's own ``inference()`` loop (data loading, n-best writing,
    short-utterance handling) decode with an already built model: its module
    global ``Speech2Text`` is swapped for this instance while it runs."""

    class _Prebuilt:
        @staticmethod
        def from_pretrained(**_ignored):
            return speech2text

    original = espnet_inference.Speech2Text
    espnet_inference.Speech2Text = _Prebuilt
    try:
        yield
    finally:
        espnet_inference.Speech2Text = original


_S2T_OPTIONS = (
    "transducer_conf", "lm_train_config", "lm_file", "ngram_file", "token_type", "bpemodel", "maxlenratio",
    "minlenratio", "dtype", "beam_size", "ctc_weight", "lm_weight", "ngram_weight", "penalty", "nbest",
    "normalize_length", "streaming", "multi_asr", "hugging_face_decoder", "hugging_face_decoder_conf",
    "time_sync", "prompt_token_file", "lang_prompt_token", "nlp_prompt_token", "partial_ar",
    "threshold_probability", "max_seq_len", "max_mask_parallel",
)


def inference(
    depth: Optional[List[int]],
    depth_layers: Optional[List[int]],
    ctc_greedy: bool = False,
    depth_profile: Optional[str] = None,
    depth_policy: Optional[str] = None,
    skip_bad_utts: bool = False,
    **kwargs: Any,
) -> None:
    """Decode the data once per requested depth with one loaded model;
    every recording is checked first (``--skip_bad_utts``)."""
    if depth and depth_layers:
        raise ValueError("give --depth or --depth_layers, not both")
    logging.basicConfig(
        level=kwargs["log_level"], format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
    )
    if kwargs.get("ngpu", 0) > 1:
        raise NotImplementedError("only single GPU decoding is supported")
    s2t_kwargs = {k: kwargs[k] for k in _S2T_OPTIONS if k in kwargs}
    s2t_kwargs.update(
        model_tag=kwargs["model_tag"],
        asr_train_config=kwargs["asr_train_config"],
        asr_model_file=kwargs["asr_model_file"],
        device="cuda" if kwargs.get("ngpu", 0) >= 1 else "cpu",
        quantize_asr_model=kwargs.get("quantize_asr_model", False),
        ctc_greedy=ctc_greedy,
        depth_profile=depth_profile,
        depth_policy=depth_policy,
    )
    speech2text = Speech2Text.from_pretrained(**s2t_kwargs)
    if depth_layers:
        settings = [("layers", depth_layers, "layers" + "-".join(map(str, depth_layers)))]
    elif depth:
        if len(set(depth)) != len(depth):
            raise ValueError(f"--depth {depth} repeats a depth")
        settings = [("depth", d, f"depth{d}") for d in depth]
    else:
        settings = [("depth", None, "")]
    for name, value, _ in settings:  # validate every depth before decoding any
        speech2text.set_depth(**{name: value})
    out_root = Path(kwargs["output_dir"])
    kwargs["key_file"] = screen_decoding_data(speech2text.audio_input, kwargs["data_path_and_name_and_type"],
                                              str(out_root), kwargs.get("key_file"), skip_bad_utts)
    for name, value, subdir in settings:
        active = speech2text.set_depth(**{name: value})
        out_dir = out_root / subdir if subdir else out_root
        policy = speech2text.depth_policy if name == "depth" and value is not None else None
        logger.info("decoding with encoder blocks %s%s into %s", active,
                    f" (depth policy {policy})" if policy else "", out_dir)
        speech2text.timing.reset()
        with _espnet_loop_uses(speech2text):
            espnet_inference.inference(**{**kwargs, "output_dir": str(out_dir)})
        stats = {"depth": len(active) if active else speech2text.num_layers, "active_layers": active,
                 "depth_policy": policy,
                 "depth_profile": str(speech2text.depth_profile_path) if policy == "profile" else None,
                 **speech2text.timing.as_dict()}
        write_text_atomic(out_dir / "decode_stats.json", json.dumps(stats, indent=1) + "\n")


def get_parser():
    parser = espnet_inference.get_parser()
    parser.description = "ASR decoding at a chosen encoder depth (espnet-dld)"
    group = parser.add_argument_group("Dynamic depth")
    group.add_argument(
        "--depth", type=int, nargs="+", default=None,
        help="numbers of encoder blocks to run (chosen by the encoder's depth_policy); each depth is "
        "decoded into <output_dir>/depth<K>. Default: all blocks, into <output_dir>",
    )
    group.add_argument(
        "--depth_layers", type=int, nargs="+", default=None,
        help="explicit 0-based indices of the encoder blocks to run",
    )
    group.add_argument(
        "--depth_policy", choices=DEPTH_POLICIES, default=None,
        help="how --depth chooses its blocks: uniform (evenly spaced, ending with the last), first, or profile "
        "(measured per depth by espnet_dld.bin.depth_profile). Default: profile when a depth profile is found "
        "(--depth_profile, or depth_profile.yaml beside the model file), else the encoder config's depth_policy",
    )
    group.add_argument(
        "--depth_profile", type=str, default=None,
        help="depth profile YAML (default: depth_profile.yaml beside --asr_model_file, if there is one)",
    )
    group.add_argument(
        "--ctc_greedy", type=str2bool, default=False,
        help="decode by CTC best path (argmax, merge repeats, drop blanks) instead of beam search",
    )
    group.add_argument(
        "--skip_bad_utts", type=str2bool, default=False,
        help="every recording is checked before decoding (readable, mono, at the model's rate, long enough, "
        "no NaN/Inf); bad ones stop the run with their key and path, or with this option are skipped; "
        "either way they are listed in <output_dir>/bad_utts.txt",
    )
    return parser


def main(cmd=None) -> int:
    print(get_commandline_args(), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    kwargs = vars(args)
    kwargs.pop("config", None)
    return run_tool("asr_inference", lambda: inference(**kwargs))


if __name__ == "__main__":
    sys.exit(main())
