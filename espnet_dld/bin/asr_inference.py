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

Instead of a depth the user may give a budget (docs/depth_budget.md):
``--rtf_budget R`` decodes at the deepest depth whose real-time factor on
this host fits R (``--adaptive true``: re-chosen per utterance as the load
changes and, with ``--cpu_contention true``, as other processes take the
cores; never below ``--min_depth``); ``--max_wer_increase X`` at the
cheapest depth whose dev WER (the table the recipe packs with the model) is
within X relative of full depth's.  The depth of every utterance is then
written to ``<output_dir>/depth`` (``key depth`` lines).
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

import espnet_dld.tasks.asr  # noqa: F401  (registers our classes with ESPnet)
from espnet_dld.utils.quiet_imports import quiet_espnet_imports

with quiet_espnet_imports():
    import espnet2.bin.asr_inference as espnet_inference
    from espnet_dld.compat import get_commandline_args
    from espnet2.utils.types import str2bool

from espnet_dld.asr.cpu_contention import CpuContention, decoder_cores  # noqa: E402
from espnet_dld.asr.ctc_greedy_search import CTCGreedySearch  # noqa: E402
from espnet_dld.asr.depth_budget import (  # noqa: E402
    CALIBRATION_PASSES, Clock, DepthBudget, calibrate, cheapest_within_wer,
)
from espnet_dld.asr.depth_table import TABLE_HOWTO, find_depth_table, read_depth_table, table_wers  # noqa: E402
from espnet_dld.asr.encoder.depth_profile_file import apply_depth_profile  # noqa: E402
from espnet_dld.asr.encoder.layer_gating import DEPTH_POLICIES  # noqa: E402
from espnet_dld.asr.trained_model import rebuilding_trained_model, trained_model_files  # noqa: E402
from espnet_dld.data.atomic import write_text_atomic  # noqa: E402
from espnet_dld.utils.checkpoint import load_state_dict_strict  # noqa: E402
from espnet_dld.utils.model_zoo import unpack_model  # noqa: E402
from espnet_dld.asr.audio_input import ModelAudioInput, Speech  # noqa: E402
from espnet_dld.asr.wav_scp_check import screen_decoding_data  # noqa: E402
from espnet_dld.utils.cli import run_tool, str2bool_or_none  # noqa: E402
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

    Budgets instead of a depth (docs/depth_budget.md): ``rtf_budget=R``
    calibrates a cost model at load (``calibration_passes`` decodes of
    generated input of ``calibration_seconds`` and half that, per depth) and
    decodes each call without ``depth=`` at the deepest depth predicted to fit
    the real-time factor R; ``adaptive=True`` re-chooses it per utterance
    from the measured load, with hysteresis, never below ``min_depth``.  A
    budget no depth meets decodes at ``min_depth`` with one warning, or with
    ``strict=True`` raises :class:`~espnet_dld.asr.depth_budget.BudgetUnmeetableError`.
    ``max_wer_increase=X`` picks the cheapest depth whose dev WER in the
    packed ``depth_table.yaml`` (or ``depth_table``) is within X (relative)
    of full depth's; with ``rtf_budget`` too, that depth is the floor.
    An adaptive budget also reads the host's CPU contention before each
    utterance (:class:`~espnet_dld.asr.cpu_contention.CpuContention`), so a
    competing process that starts between two utterances moves the depth
    before it slows one, and decodes with as many torch threads as cores are
    left free (``adapt_threads``; torch's process-wide count is set for the
    call and the caller's restored after it): a parallel region waits for its
    slowest thread, and a thread that shares its core with another process is
    the slowest.  ``cpu_contention=None`` (default) is "on with
    ``adaptive=True`` where ``/proc`` has the accounting, else off";
    ``False`` learns the load from decoded utterances only, ``True`` insists
    (a warning where the host lacks it), a callable returning busy cores is
    injectable.  ``adapt_threads=None`` (default) follows the sensor;
    ``False`` leaves the threads alone.  Both are on by default because the
    utterance-only controller cannot see a load before it has slowed an
    utterance: in the AN4 benchmark's two-thread runs it kept 3.1-89.2 % of
    the utterances within the budget after a competitor started, the sensor
    with the threads 90.8-100 % (docs/depth_budget.md).
    ``last_depth`` is the depth of this thread's latest call; ``depth=`` in
    a call still overrides any budget.  ``clock`` (seconds, monotonic) is
    injectable for tests.
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
        rtf_budget: Optional[float] = None,
        adaptive: bool = False,
        cpu_contention: Union[bool, None, Callable[[], Optional[float]]] = None,
        adapt_threads: Optional[bool] = None,
        min_depth: int = 1,
        max_wer_increase: Optional[float] = None,
        strict: bool = False,
        depth_table: Union[Path, str, None] = None,
        calibration_seconds: float = 2.0,
        calibration_passes: int = CALIBRATION_PASSES,
        clock: Clock = time.perf_counter,
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
                                               getattr(self.asr_model, "blank_id", 0),
                                               token_list=list(self.asr_model.token_list))
        # best path without ESPnet's __call__ around it, where that call adds nothing but its wrapper
        self._short_path = ctc_greedy and not self.multi_asr and not getattr(
            self.asr_model.encoder, "interctc_layer_idx", None)
        self.audio_input = ModelAudioInput.for_model(self.asr_model, self.asr_train_args, self.device, self.dtype)
        self._clock = clock
        self.timing = DecodeTiming(self.asr_model.encoder, clock)
        self._lock = threading.RLock()
        self._last = threading.local()
        _, self.depth_profile_path = apply_depth_profile(
            self.asr_model.encoder, asr_model_file, depth_profile=depth_profile, depth_policy=depth_policy
        )
        self.set_depth(depth, layers)
        self.depth_table_path = find_depth_table(asr_model_file, depth_table) if self.num_layers else None
        self.depth_table = (read_depth_table(self.depth_table_path, self.num_layers, asr_model_file)
                            if self.depth_table_path is not None else None)
        self.depth_budget: Optional[DepthBudget] = None
        self._setup_budgets(depth, layers, rtf_budget, adaptive, min_depth, max_wer_increase, strict,
                            calibration_seconds, calibration_passes, cpu_contention, adapt_threads)

    # -- budgets -----------------------------------------------------------
    def _setup_budgets(self, depth, layers, rtf_budget, adaptive, min_depth, max_wer_increase, strict,
                       calibration_seconds, calibration_passes, cpu_contention, adapt_threads) -> None:
        if not adaptive and (cpu_contention not in (None, False) or adapt_threads):
            raise ValueError("cpu_contention (a sensor) and adapt_threads steer the adaptive budget: give "
                             "adaptive=True with rtf_budget")
        if rtf_budget is None and max_wer_increase is None:
            if adaptive or min_depth != 1 or strict:
                raise ValueError(f"adaptive={adaptive} min_depth={min_depth} strict={strict} only apply with "
                                 "rtf_budget (or min_depth/strict with max_wer_increase)")
            return
        if adaptive and rtf_budget is None:
            raise ValueError("adaptive=True needs rtf_budget (the latency budget it holds)")
        if self.num_layers is None:
            raise ValueError(f"rtf_budget={rtf_budget!r} max_wer_increase={max_wer_increase!r}: the encoder "
                             f"{type(self.asr_model.encoder).__name__} of this model is static; depth budgets need "
                             "a dld_* encoder")
        if depth is not None or layers is not None:
            raise ValueError(f"depth={depth!r} layers={layers!r} and a budget (rtf_budget/max_wer_increase) both "
                             "choose the depth: give one (a call's depth= still overrides the budget)")
        floor = min_depth
        if max_wer_increase is not None:
            floor = self.depth_for_wer_increase(max_wer_increase, min_depth)
        if rtf_budget is None:
            self.set_depth(floor)
            return
        cost = self.calibrate_cost(calibration_seconds, calibration_passes)
        sensor = self._contention_sensor(cpu_contention, adapt_threads) if adaptive else None
        self.depth_budget = DepthBudget(cost, rtf_budget, adaptive=adaptive, min_depth=floor, strict=strict,
                                        typical_duration=calibration_seconds, contention=sensor,
                                        cores=len(decoder_cores()), threads=torch.get_num_threads(),
                                        adapt_threads=sensor is not None and adapt_threads is not False)
        self.set_depth(self.depth_budget.depth)
        logger.info("rtf_budget %g: depth %d of %d (adaptive %s)", rtf_budget, self.depth_budget.depth,
                    self.num_layers, adaptive)

    @staticmethod
    def _contention_sensor(cpu_contention, adapt_threads: Optional[bool]) -> Optional[Callable[[], Optional[float]]]:
        """The sensor an adaptive budget reads: ours where the host has one
        (``cpu_contention`` None or True), an injected one, or none (False)."""
        if callable(cpu_contention):
            return cpu_contention
        if cpu_contention not in (None, True, False):
            raise ValueError(f"cpu_contention must be None (on where the host has /proc accounting), True, False "
                             f"or a callable, got {cpu_contention!r}")
        if cpu_contention is not False and CpuContention.available():
            return CpuContention()
        if adapt_threads:
            raise ValueError("adapt_threads=True needs the CPU contention sensor (cpu_contention None or True on a "
                             "host with /proc), which " + ("is off" if cpu_contention is False else "this host lacks"))
        if cpu_contention is not False:  # a warning only for a sensor asked for by name
            logger.log(logging.WARNING if cpu_contention else logging.INFO, "this host has no /proc CPU "
                       "accounting: the adaptive budget learns the load from decoded utterances only")
        return None

    def depth_for_wer_increase(self, max_wer_increase: float, min_depth: int = 1) -> int:
        """The cheapest depth (>= ``min_depth``) whose dev WER in the packed
        depth table is within ``max_wer_increase`` (relative) of full depth's."""
        if self.depth_table is None:
            raise ValueError(f"max_wer_increase={max_wer_increase!r} needs the model's per-depth dev table, and "
                             f"this model has none; {TABLE_HOWTO}")
        where = f"depth table {self.depth_table_path}"
        for d, row in self.depth_table["depths"].items():  # measured with other blocks? then it says nothing
            measured, now = row.get("active_layers"), self.asr_model.encoder.layers_for(d)
            if measured is not None and list(measured) != now:
                raise ValueError(f"{where} measured depth {d} with blocks {list(measured)}, but this decoder runs "
                                 f"blocks {now} at depth {d} (depth policy {self.depth_policy}): decode with the "
                                 "policy/profile the table was measured with, or remeasure it (stages 13-15)")
        return cheapest_within_wer(table_wers(self.depth_table), self.num_layers, max_wer_increase, min_depth, where)

    def _generated_input(self, seconds: float) -> np.ndarray:
        """Low-level noise (or random features) of ``seconds``, for calibration."""
        rng = np.random.default_rng(0)
        if self.audio_input.feature_input:
            return rng.standard_normal((max(1, int(seconds * FEATURE_FRAME_RATE)),
                                        self.asr_train_args.input_size)).astype(np.float32)
        return (0.05 * rng.standard_normal(int(seconds * self.sample_rate))).astype(np.float32)

    def calibrate_cost(self, seconds: float = 2.0, passes: int = 2):
        """Fit the cost model of this host: ``passes`` decodes per depth of
        generated input of ``seconds`` and ``seconds / 2`` (see
        :func:`espnet_dld.asr.depth_budget.calibrate`).  The instance's depth is kept."""
        inputs = {d: self._generated_input(d) for d in (float(seconds), seconds / 2.0)}
        short = len(inputs[seconds / 2.0])
        if not self.audio_input.feature_input and self.min_samples and short < self.min_samples:
            raise ValueError(f"calibration_seconds={seconds}: half of it ({short} samples) is shorter than this "
                             f"model can decode ({self.min_samples} samples); give a longer calibration_seconds")
        with self._lock:
            previous = self._previous_layers()

            def decode(depth: int, duration: float) -> None:
                self.set_depth(depth)
                with torch.inference_mode():
                    self._recognize(inputs[duration])

            start = self._clock()
            try:
                cost, points = calibrate(decode, self.num_layers, list(inputs), passes, self._clock)
            finally:
                self.set_depth(layers=previous)
            self.calibration_seconds_taken = self._clock() - start
            self.calibration_points = points
            self.timing.reset()
        logger.info("depth cost calibration: %d decodes in %.2f s; %s", len(points) * passes + 1,
                    self.calibration_seconds_taken, cost.as_dict())
        return cost

    def _duration(self, speech: np.ndarray) -> float:
        rate = FEATURE_FRAME_RATE if self.audio_input.feature_input else self.sample_rate
        return speech.shape[0] / rate

    @property
    def last_depth(self) -> Optional[int]:
        """The encoder depth of this thread's latest call (None before any)."""
        return getattr(self._last, "depth", None)

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
        """Decode with ``depth`` blocks (or exactly ``layers``) from now on
        (a latency budget, if any, still chooses the depth of calls without ``depth=``)."""
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

    @torch.inference_mode()
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
        the instance's depth (``set_depth``), or with ``rtf_budget`` the
        budget's; all blocks: ``depth=num_layers``.  ``last_depth`` then holds
        the depth this call ran."""
        speech = self.audio_input.prepare(speech, fs)
        with self._lock:
            self._last.depth = None
            budget_depth = None
            duration = self._duration(speech)
            threads = None
            if depth is None and layers is None and self.depth_budget is not None:
                depth = budget_depth = self.depth_budget.depth_for(duration)
                if self.depth_budget.adapt_threads:
                    threads = self.depth_budget.threads
            with _torch_threads(threads):
                if depth is None and layers is None:
                    results, seconds = self._decode(speech)
                else:
                    previous = self._previous_layers()
                    self.set_depth(depth, layers)
                    try:
                        results, seconds = self._decode(speech)
                    finally:
                        self.set_depth(layers=previous)
            if self.depth_budget is not None:
                self.depth_budget.observe(self._last.depth, duration, seconds, budget_depth)
            return results

    def _previous_layers(self) -> Optional[List[int]]:
        """The instance's blocks, to restore after a call at another depth (None: all)."""
        previous = self.active_layers
        return None if previous == list(range(self.num_layers or 0)) else previous

    def _decode(self, speech: np.ndarray):
        """Decode ``speech`` timed; returns (results, seconds)."""
        active = self.active_layers
        start = self._clock()
        try:
            results = self._recognize(speech)
        finally:
            seconds = self._clock() - start
            self.timing.add_call(seconds, int(speech.shape[0]))
        self._last.depth = len(active) if active is not None else None
        return results, seconds

    def _recognize(self, speech: Union[np.ndarray, torch.Tensor]):
        """ESPnet's decoding of one utterance: its ``Speech2Text.__call__``,
        or for best-path decoding the same steps (encode, search, token
        conversion) without that call's wrapper, whose type checks of the
        n-best list and other set-up cost about 0.3 ms of a 3 ms depth-1
        call (docs/depth_budget.md, "A shorter call")."""
        if not self._short_path:
            return super().__call__(speech)
        x = torch.as_tensor(speech).unsqueeze(0).to(device=self.device, dtype=getattr(torch, self.dtype))
        enc, _ = self.asr_model.encode(x, x.new_full([1], x.size(1), dtype=torch.long))
        return self.beam_search.results(enc[0], self.converter, self.tokenizer)

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


@contextlib.contextmanager
def _torch_threads(threads: Optional[int]):
    """Run the block with torch's (process-wide) thread count at ``threads``
    and give the caller's back after it (None: leave it): a budget's thread
    count is for its own calls, not for the rest of the process.  Switching
    per call cost nothing measurable (2.81-2.92 ms a depth-1 call on AN4
    either way; docs/depth_budget.md)."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: frames per second of a feature-input model's input (the recipes' fbank: 10 ms shift)
FEATURE_FRAME_RATE = 100


class DecodeTiming:
    """Wall-clock of whole decoding calls and of the encoder inside them."""

    def __init__(self, encoder: torch.nn.Module, clock: Clock = time.perf_counter):
        self.reset()
        self._clock = clock
        self._start = None
        if encoder is not None:
            encoder.register_forward_pre_hook(self._enc_start)
            encoder.register_forward_hook(self._enc_end)

    def reset(self) -> None:
        self.calls, self.samples, self.decode_seconds, self.encoder_seconds = 0, 0, 0.0, 0.0

    def _enc_start(self, module, args):
        self._start = self._clock()

    def _enc_end(self, module, args, output):
        if self._start is not None:
            self.encoder_seconds += self._clock() - self._start
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
def _espnet_loop_uses(speech2text: Speech2Text, depths: Optional[Dict[str, int]] = None):
    """Let ESPnet's own ``inference()`` loop (data loading, n-best writing,
    short-utterance handling) decode with an already built model: its module
    global ``Speech2Text`` is swapped for this instance while it runs.  With
    ``depths``, the depth each utterance was decoded at is put there by key
    (its data iterator is wrapped: ESPnet does not pass keys to the model)."""

    class _Prebuilt:
        @staticmethod
        def from_pretrained(**_ignored):
            return speech2text

    original_task = espnet_inference.ASRTask

    class _KeyedTask(original_task):
        @classmethod
        def build_streaming_iterator(cls, *args, **kwargs):
            for keys, batch in original_task.build_streaming_iterator(*args, **kwargs):
                speech2text._last.depth = None
                yield keys, batch  # ESPnet decodes it (batch size 1) before asking for the next
                if speech2text.last_depth is not None:
                    depths[keys[0]] = speech2text.last_depth

    original = espnet_inference.Speech2Text
    espnet_inference.Speech2Text = _Prebuilt
    if depths is not None:
        espnet_inference.ASRTask = _KeyedTask
    try:
        yield
    finally:
        espnet_inference.Speech2Text = original
        espnet_inference.ASRTask = original_task


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
    rtf_budget: Optional[float] = None,
    adaptive: bool = False,
    cpu_contention: Optional[bool] = None,
    adapt_threads: Optional[bool] = None,
    min_depth: int = 1,
    max_wer_increase: Optional[float] = None,
    strict_budget: bool = False,
    depth_table: Optional[str] = None,
    calibration_seconds: float = 2.0,
    calibration_passes: int = CALIBRATION_PASSES,
    **kwargs: Any,
) -> None:
    """Decode the data once per requested depth with one loaded model, or
    once at the depth(s) a budget chooses; every recording is checked first
    (``--skip_bad_utts``)."""
    if depth and depth_layers:
        raise ValueError("give --depth or --depth_layers, not both")
    budget = rtf_budget is not None or max_wer_increase is not None
    if budget and (depth or depth_layers):
        raise ValueError("--rtf_budget/--max_wer_increase choose the depth themselves: leave out --depth and "
                         "--depth_layers")
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
        rtf_budget=rtf_budget,
        adaptive=adaptive,
        cpu_contention=cpu_contention,
        adapt_threads=adapt_threads,
        min_depth=min_depth,
        max_wer_increase=max_wer_increase,
        strict=strict_budget,
        depth_table=depth_table,
        calibration_seconds=calibration_seconds,
        calibration_passes=calibration_passes,
    )
    speech2text = Speech2Text.from_pretrained(**s2t_kwargs)
    if depth_layers:
        settings = [("layers", depth_layers, "layers" + "-".join(map(str, depth_layers)))]
    elif depth:
        if len(set(depth)) != len(depth):
            raise ValueError(f"--depth {depth} repeats a depth")
        settings = [("depth", d, f"depth{d}") for d in depth]
    elif budget:
        settings = []  # the depth the budget set (max_wer_increase) or chooses per call: decode_with_budget
    else:
        settings = [("depth", None, "")]
    for name, value, _ in settings:  # validate every depth before decoding any
        speech2text.set_depth(**{name: value})
    out_root = Path(kwargs["output_dir"])
    kwargs["key_file"] = screen_decoding_data(speech2text.audio_input, kwargs["data_path_and_name_and_type"],
                                              str(out_root), kwargs.get("key_file"), skip_bad_utts)
    if budget:
        decode_with_budget(speech2text, out_root, kwargs)
        return
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


def decode_with_budget(speech2text: Speech2Text, out_dir: Path, kwargs: Dict[str, Any]) -> None:
    """One decoding pass, each utterance at the depth the budget chooses;
    ``<out_dir>/depth`` gets ``key depth`` lines and ``decode_stats.json``
    the budget and how often each depth ran."""
    depths: Dict[str, int] = {}
    speech2text.timing.reset()
    with _espnet_loop_uses(speech2text, depths):
        espnet_inference.inference(**{**kwargs, "output_dir": str(out_dir)})
    write_text_atomic(out_dir / "depth", "".join(f"{k} {d}\n" for k, d in sorted(depths.items())))
    budget = speech2text.depth_budget
    counts = {d: list(depths.values()).count(d) for d in sorted(set(depths.values()))}
    fixed = budget is None  # max_wer_increase alone: one depth for all
    stats = {"depth": len(speech2text.active_layers) if fixed else None,
             "active_layers": speech2text.active_layers if fixed else None,
             "depth_policy": speech2text.depth_policy,
             "depth_budget": budget.as_dict() if budget is not None else None,
             "depth_table": str(speech2text.depth_table_path) if speech2text.depth_table_path else None,
             "depth_counts": counts,
             "mean_depth": round(sum(depths.values()) / len(depths), 4) if depths else None,
             **speech2text.timing.as_dict()}
    write_text_atomic(out_dir / "decode_stats.json", json.dumps(stats, indent=1) + "\n")
    logger.info("depth per utterance: %s (counts %s)", out_dir / "depth", counts)


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
    group = parser.add_argument_group("Depth budgets (docs/depth_budget.md)")
    group.add_argument(
        "--rtf_budget", type=float, default=None,
        help="decode at the deepest depth whose real-time factor (decoding seconds per audio second) on this host "
        "fits this budget, from a cost model calibrated at load; the depth of each utterance goes to "
        "<output_dir>/depth",
    )
    group.add_argument(
        "--adaptive", type=str2bool, default=False,
        help="with --rtf_budget: re-choose the depth per utterance from the measured load (down at once when "
        "utterances exceed the budget, up with hysteresis when there is room)",
    )
    group.add_argument(
        "--cpu_contention", type=str2bool_or_none, default=None,
        help="with --adaptive: read the host's CPU contention (/proc) before each utterance, so a process that "
        "starts competing for the cores lowers the depth before it slows an utterance. Default: on where the "
        "host has /proc accounting; false: learn the load from decoded utterances only",
    )
    group.add_argument(
        "--adapt_threads", type=str2bool_or_none, default=None,
        help="with --adaptive and the contention sensor: decode with as many torch threads as cores are left "
        "free by other processes. Default: on whenever the sensor is",
    )
    group.add_argument(
        "--min_depth", type=int, default=1,
        help="the budgets never choose fewer blocks than this",
    )
    group.add_argument(
        "--max_wer_increase", type=float, default=None,
        help="decode at the cheapest depth whose dev WER (the per-depth table packed with the model by the "
        "recipe's stage 15) is within this relative increase of full depth's, e.g. 0.10; with --rtf_budget it "
        "is the lowest depth the latency budget may choose",
    )
    group.add_argument(
        "--strict_budget", type=str2bool, default=False,
        help="a latency budget no depth >= --min_depth meets stops with an error (default: decode at "
        "--min_depth and warn once)",
    )
    group.add_argument(
        "--depth_table", type=str, default=None,
        help="per-depth dev table YAML (default: depth_table.yaml beside --asr_model_file, as packed)",
    )
    group.add_argument(
        "--calibration_seconds", type=float, default=2.0,
        help="length of the generated input the cost model is calibrated on (and half of it): a typical "
        "utterance length",
    )
    group.add_argument(
        "--calibration_passes", type=int, default=CALIBRATION_PASSES,
        help="timed decodes per depth and length in the calibration (the median counts)",
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
