"""Choosing the encoder depth for the user: by a latency budget or by an accuracy budget.

A dynamic-depth model can run any depth 1..N; this module decides which one,
so the user states what they can afford instead of a depth:

* **latency budget** (``rtf_budget``, a real-time factor: decoding seconds
  per second of audio).  :class:`CostModel` predicts the decoding time of an
  utterance at each depth on *this* host, fitted from a short calibration
  (:func:`calibrate`) and kept current from the real utterances decoded
  since (a load factor: a high quantile of recent slowdowns).
  :class:`DepthBudget` picks the deepest depth that fits; with
  ``adaptive=True`` it moves down at once when recent utterances exceed
  the budget and back up, one block at a time, only after ``patience``
  utterances with clear room (hysteresis: entering a depth needs
  more room than staying at it), never below ``min_depth`` or above
  ``max_depth``.
* **accuracy budget** (``max_wer_increase``): :func:`cheapest_within_wer`
  picks the cheapest depth whose dev WER (the per-depth table the recipe
  packs with the model, :mod:`espnet_dld.asr.depth_table`) is within a
  relative increase of full depth's.

Time is read from an injectable ``clock`` so that the tests are
deterministic.  Which blocks run at a depth stays the business of
:mod:`espnet_dld.asr.encoder.layer_gating`; this module only picks numbers.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

#: timed decodes per calibration point (their median counts); one value for the API, the CLI and the benchmark
CALIBRATION_PASSES = 3


class BudgetUnmeetableError(ValueError):
    """No depth meets the latency budget on this host (raised with ``strict=True``)."""


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_depth_bound(value, name: str, num_layers: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= num_layers:
        raise ValueError(f"{name} must be an integer in 1..{num_layers} (the encoder's blocks), got {value!r}")
    return value


# -- cost model ---------------------------------------------------------------
@dataclass
class CostModel:
    """Decoding seconds of one utterance of ``duration`` seconds at ``depth``::

        seconds = load * (overhead + block_call * depth + duration * (base + per_block * depth))

    ``overhead`` is the per-call cost, ``block_call`` what each encoder block
    costs a call whatever its length (launching its operators: on short
    audio a block's cost is mostly this), ``base`` the depth-independent cost
    per audio second (front end, CTC/beam search), ``per_block`` what each
    block adds per audio second.  Without ``block_call`` a fit over two
    lengths books the blocks' per-call cost as per-second cost: on AN4,
    utterances under 1.2 s then ran at 1.10 of the predicted time and those
    over 3 s at 0.72, a spread by length the load estimate had to absorb
    (0.95 and 0.78 with it; bench/cost_model_fit.py).
    ``load`` (1 at calibration) is the ``load_quantile`` quantile of the
    ratios of measured to predicted time over the last ``load_window``
    utterances.  A budget promises a share of utterances within it, so the
    load is read at the slow end of the recent spread, not at its mean.  The
    default, the largest of the last 20, is a distribution-free bound: the
    next of a run of exchangeable ratios exceeds the largest of the n before
    it with probability 1/(n + 1), under 5 % for n = 20, the share a 95 %
    promise may miss.  The earlier default, the 0.9 quantile of 10, is
    exceeded about 1/6 of the time (``test_the_default_load_bounds_a_95_
    percent_share_where_a_0_9_quantile_does_not``).  The price: one
    stray slow call holds the estimate up for 20 utterances (not for good:
    the window forgets it), and a load that has gone is forgotten after 20.

    The window is kept per contention ``level`` (how many of the decoder's
    cores other processes take, :mod:`espnet_dld.asr.cpu_contention`): when
    the level changes, :meth:`enter_level` switches to that level's own
    recent ratios, so a load that comes back is known at once and one that
    goes is forgotten at once.  A level entered for the first time starts
    from a guess (``unseen_load``), which stays a floor under the estimate
    until ``prior_count`` utterances were measured there: one lucky first
    utterance at a new load is not the load.
    """

    num_layers: int
    overhead: float
    base: float
    per_block: float
    block_call: float = 0.0
    load: float = 1.0
    load_window: int = 20
    load_quantile: float = 1.0
    level: int = 0
    prior_count: int = 3
    _windows: Dict[int, Deque[float]] = field(init=False, repr=False)
    _priors: Dict[int, float] = field(init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.load_window, bool) or not isinstance(self.load_window, int) or self.load_window < 1:
            raise ValueError(f"load_window must be an integer >= 1 (utterances), got {self.load_window!r}")
        if not 0.0 <= self.load_quantile <= 1.0:
            raise ValueError(f"load_quantile must be in [0, 1], got {self.load_quantile!r}")
        self._windows, self._priors = {}, {}

    @classmethod
    def fit(cls, num_layers: int, measurements: Sequence[Tuple[int, float, float]], block_call_term: bool = True,
            **kwargs) -> "CostModel":
        """Non-negative least squares over ``(depth, duration, seconds)``
        measurements (at least two depths and two durations, or the terms
        they cannot separate are taken as zero).  ``block_call_term=False``
        fits the three-term model without ``block_call`` (for comparison:
        bench/cost_model_fit.py)."""
        from scipy.optimize import nnls

        if not measurements:
            raise ValueError("no calibration measurements to fit a cost model to")
        a = np.array([[1.0, d, dur, dur * d] for d, dur, _ in measurements])
        if not block_call_term:
            a[:, 1] = 0.0
        b = np.array([s for _, _, s in measurements], dtype=float)
        overhead, block_call, base, per_block = (float(c) for c in nnls(a, b)[0])
        return cls(num_layers, overhead, base, per_block, block_call=block_call, **kwargs)

    def unloaded_seconds(self, depth: int, duration: float) -> float:
        return self.overhead + self.block_call * depth + duration * (self.base + self.per_block * depth)

    def seconds(self, depth: int, duration: float) -> float:
        """Predicted decoding time at the current load."""
        return self.load * self.unloaded_seconds(depth, duration)

    def rtf(self, depth: int, duration: float) -> float:
        """Predicted real-time factor at the current load."""
        return self.seconds(depth, duration) / duration

    def observe(self, depth: int, duration: float, seconds: float) -> None:
        """Update ``load`` from one decoded utterance."""
        predicted = self.unloaded_seconds(depth, duration)
        if predicted <= 0 or seconds <= 0:
            return
        window = self._windows.setdefault(self.level, deque(maxlen=self.load_window))
        window.append(seconds / predicted)
        if len(window) >= self.prior_count:
            self._priors.pop(self.level, None)
        self.load = self._level_load()

    def _level_load(self) -> float:
        """The current level's load: its window's quantile, never below its guess while that holds."""
        window = self._windows.get(self.level)
        measured = self._quantile(window) if window else 0.0
        return max(measured, self._priors.get(self.level, measured))

    def _quantile(self, window: Deque[float]) -> float:
        """numpy's default (linear) quantile, in plain Python: it runs inside
        every timed call, and numpy's set-up cost about 20 us for 20 values."""
        values = sorted(window)
        position = self.load_quantile * (len(values) - 1)
        low = int(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    def enter_level(self, level: int, unseen_load: float) -> None:
        """Switch to contention ``level``: its load is the quantile of the
        ratios last measured at that level, or ``unseen_load`` if none were
        (the floor of its first ``prior_count`` measurements)."""
        self.level = level
        if not self._windows.get(level):
            self._priors.setdefault(level, float(unseen_load))
        self.load = self._level_load()

    def as_dict(self) -> Dict[str, float]:
        return {"overhead_s": self.overhead, "block_call_s": self.block_call, "base_s_per_audio_s": self.base,
                "per_block_s_per_audio_s": self.per_block, "load": self.load, "load_window": self.load_window,
                "load_quantile": self.load_quantile, "contention_level": self.level,
                "load_by_level": {lv: self._quantile(w) for lv, w in sorted(self._windows.items()) if w}}


def calibrate(
    decode: Callable[[int, float], object],
    num_layers: int,
    durations: Sequence[float],
    passes: int = CALIBRATION_PASSES,
    clock: Clock = time.perf_counter,
    depths: Optional[Sequence[int]] = None,
) -> Tuple[CostModel, List[Tuple[int, float, float]]]:
    """Time ``passes`` calls of ``decode(depth, duration)`` per depth and
    duration (after one untimed warm-up call) and fit a :class:`CostModel`.
    Returns the model and the ``(depth, duration, seconds)`` measurements;
    each point is the median of its passes: a disturbed pass does not count,
    and, unlike the fastest pass, the median is what a typical call costs
    (the fastest made the first benchmark's costs 1.5x optimistic)."""
    if passes < 1:
        raise ValueError(f"calibration passes must be >= 1, got {passes}")
    depths = list(depths) if depths is not None else list(range(1, num_layers + 1))
    decode(num_layers, max(durations))  # warm-up: first calls allocate
    points = []
    for duration in durations:
        for depth in depths:
            times = []
            for _ in range(passes):
                start = clock()
                decode(depth, duration)
                times.append(clock() - start)
            points.append((depth, float(duration), float(np.median(times))))
    return CostModel.fit(num_layers, points), points


# -- latency budget -------------------------------------------------------------
@dataclass
class UtteranceRecord:
    """One decoded utterance as the budget saw it."""

    depth: int
    duration: float
    seconds: float
    budget_depth: Optional[int]  # the depth the budget chose (None: the caller gave a depth)
    level: int = 0  # the contention level it was decoded at
    threads: Optional[int] = None  # the decoder's threads, where the budget sets them

    @property
    def rtf(self) -> float:
        return self.seconds / self.duration


#: a call at least this long (seconds) is followed by a sensor reading as well as preceded by one; after a
#: shorter one the next call's reading comes soon enough (a reading right after a decode costs about 0.13 ms under
#: load, inside the timed call; docs/depth_budget.md, "Sensing for less")
SENSE_AFTER_S = 0.1


@dataclass
class DepthBudget:
    """Picks the depth of each utterance under a real-time-factor budget.

    Two thresholds on the predicted RTF make the hysteresis: a depth is
    *kept* while it is at most ``stay = headroom * rtf_budget`` (the margin
    is for the spread between utterances) and *entered* only when it is at
    most ``enter = stay * (1 - hysteresis)``.  A fresh choice (at load, or
    :meth:`choose`) is the deepest depth within ``enter``.  With ``adaptive``
    the controller's depth moves down to the deepest depth within ``stay`` as
    soon as the load estimate says the current one exceeds it, and up by one
    block after ``patience`` consecutive utterances in which the next depth is
    within ``enter``; so a depth near the edge does not flip back and forth.
    Each utterance is decoded at the controller's depth, or lower if that
    utterance (a short one) would exceed ``stay``.  Without ``adaptive`` the
    depth chosen from the calibration stays (the cost model still learns).

    With a ``contention`` sensor (a callable returning how many of the
    decoder's ``cores`` other processes keep busy, or None;
    :class:`~espnet_dld.asr.cpu_contention.CpuContention`) an adaptive budget
    also reads the host before each utterance (and after one that took at
    least ``SENSE_AFTER_S``, so that the next reading's window does not
    reach back over the long call): when the busy cores, rounded,
    change (by at least ``0.5 + level_hysteresis``), the load estimate
    switches to that level's own window (:meth:`CostModel.enter_level`) and
    the depth is chosen afresh, before the new load has slowed an utterance.
    A level not seen yet starts from a guess: the current load times
    ``unseen_margin`` times the ratio of the two levels' fair-share
    slowdowns (2 where a decoder thread shares its core with another
    process).  With ``adapt_threads`` the budget also sets ``threads``, the
    decoder's thread count, to the cores left free (at least 1, at most the
    count at calibration): a parallel region waits for its slowest thread,
    so one thread on a free core beats two where one shares its core.
    Applying ``threads`` (``torch.set_num_threads``) is the decoder's job.

    A budget that no depth >= ``min_depth`` meets: by default ``min_depth``
    is used and one warning is logged, because a decoder that must keep
    producing text is better served by its cheapest depth than by an
    exception; with ``strict=True`` :class:`BudgetUnmeetableError` is raised
    instead (batch jobs, benchmarks).
    """

    cost: CostModel
    rtf_budget: float
    adaptive: bool = False
    min_depth: int = 1
    max_depth: Optional[int] = None
    strict: bool = False
    typical_duration: float = 2.0
    headroom: float = 0.95
    hysteresis: float = 0.1
    patience: int = 3
    contention: Optional[Callable[[], Optional[float]]] = None
    cores: int = 1
    threads: int = 1
    adapt_threads: bool = False
    level_hysteresis: float = 0.2
    unseen_margin: float = 1.2
    history: List[UtteranceRecord] = field(default_factory=list)

    def __post_init__(self):
        n = self.cost.num_layers
        self.rtf_budget = _positive(self.rtf_budget, "rtf_budget")
        self.typical_duration = _positive(self.typical_duration, "typical_duration")
        self.max_depth = _check_depth_bound(n if self.max_depth is None else self.max_depth, "max_depth", n)
        self.min_depth = _check_depth_bound(self.min_depth, "min_depth", n)
        if self.min_depth > self.max_depth:
            raise ValueError(f"min_depth {self.min_depth} is above max_depth {self.max_depth}")
        if not 0 < self.headroom <= 1 or not 0 <= self.hysteresis < 1:
            raise ValueError(f"headroom must be in (0, 1] and hysteresis in [0, 1), got {self.headroom}, "
                             f"{self.hysteresis}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        for name in ("cores", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.adapt_threads and self.contention is None:
            raise ValueError("adapt_threads needs a contention sensor (it sets the threads from the busy cores)")
        self._calibration_threads = self.threads
        self._lock = threading.RLock()
        self._warned = False
        self._room = 0  # consecutive utterances with room for one more block
        self.depth = self.choose()  # the controller's depth (fixed unless adaptive)

    # -- choosing ------------------------------------------------------------
    @property
    def stay_rtf(self) -> float:
        """The predicted RTF up to which the current depth is kept."""
        return self.headroom * self.rtf_budget

    @property
    def enter_rtf(self) -> float:
        """The predicted RTF up to which a deeper depth is entered."""
        return self.stay_rtf * (1.0 - self.hysteresis)

    def deepest_within(self, limit_rtf: float, duration: float) -> Optional[int]:
        """The deepest depth in min..max whose predicted RTF is <= ``limit_rtf``."""
        for depth in range(self.max_depth, self.min_depth - 1, -1):
            if self.cost.rtf(depth, duration) <= limit_rtf:
                return depth
        return None

    def _fit(self, duration: float, limit_rtf: float) -> Tuple[int, bool]:
        """(depth, met): the deepest depth within ``limit_rtf``; else
        ``min_depth``, met only if it fits the budget itself."""
        depth = self.deepest_within(limit_rtf, duration)
        if depth is not None:
            return depth, True
        return self.min_depth, self.cost.rtf(self.min_depth, duration) <= self.rtf_budget

    def _unmet(self, duration: float) -> None:
        message = (f"rtf_budget {self.rtf_budget:g} cannot be met on this host: depth {self.min_depth} "
                   f"(min_depth) is predicted at RTF {self.cost.rtf(self.min_depth, duration):.4g} for "
                   f"{duration:.2f} s of audio (load factor {self.cost.load:.2f})")
        if self.strict:
            raise BudgetUnmeetableError(message + "; raise the budget, lower min_depth, or pass strict=False to "
                                        "decode at min_depth anyway")
        if not self._warned:
            self._warned = True
            logger.warning("%s; decoding at depth %d (warned once; strict=True raises instead)", message,
                           self.min_depth)

    def choose(self, duration: Optional[float] = None) -> int:
        """The deepest depth that fits the budget now, for ``duration``
        seconds of audio (default: the typical duration)."""
        duration = self.typical_duration if duration is None else duration
        with self._lock:
            depth, met = self._fit(duration, self.enter_rtf)
            if not met:
                self._unmet(duration)
            return depth

    def depth_for(self, duration: float) -> int:
        """The depth to decode the next utterance (``duration`` seconds) at:
        the controller's depth, lowered for an utterance (a short one) that
        would not fit at it."""
        with self._lock:
            if not self.adaptive:
                return self.depth
            self._sense()
            fit, met = self._fit(duration, self.stay_rtf)
            if not met:
                self._unmet(duration)
            return min(self.depth, fit)

    # -- contention --------------------------------------------------------------
    def _slowdown(self, level: int, threads: int) -> float:
        """Fair-share slowdown against the calibration (no contention, its
        threads): fewer threads lose parallelism, and a thread sharing its
        core with another process runs at half speed, holding up the rest."""
        shared = threads + level > self.cores and level > 0
        return self._calibration_threads / threads * (2.0 if shared else 1.0)

    def _sense(self) -> None:
        """Read the contention sensor; on a new level switch the load
        estimate (and the threads) and choose the depth afresh."""
        if self.contention is None:
            return
        busy = self.contention()
        if busy is None or abs(busy - self.cost.level) < 0.5 + self.level_hysteresis:
            return
        level = min(self.cores, max(0, int(round(busy))))
        if level == self.cost.level:
            return
        threads = max(1, min(self._calibration_threads, self.cores - level)) if self.adapt_threads else self.threads
        unseen = (self.cost.load * self.unseen_margin * self._slowdown(level, threads)
                  / self._slowdown(self.cost.level, self.threads))
        self.cost.enter_level(level, unseen)
        self.threads = threads
        depth = self._fit(self.typical_duration, self.enter_rtf)[0]
        logger.info("depth budget: %.2f busy cores (level %d), load %.2f, %d threads, depth %d -> %d", busy,
                    level, self.cost.load, threads, self.depth, depth)
        self.depth, self._room = depth, 0

    # -- learning --------------------------------------------------------------
    def observe(self, depth: int, duration: float, seconds: float, budget_depth: Optional[int] = None) -> None:
        """Learn from one decoded utterance (any depth, chosen by the budget
        or given by the caller) and, if adaptive, move the controller's depth."""
        with self._lock:
            self.history.append(UtteranceRecord(depth, duration, seconds, budget_depth, self.cost.level,
                                                self.threads if self.adapt_threads else None))
            self.cost.observe(depth, duration, seconds)
            if self.adaptive:
                if self.contention is not None and seconds >= SENSE_AFTER_S:
                    self.contention()  # a reading now starts the window the next utterance's is taken over
                self._adapt()

    def _adapt(self) -> None:
        target, _ = self._fit(self.typical_duration, self.stay_rtf)
        if target < self.depth:  # over budget: down at once
            logger.info("depth budget: load %.2f, depth %d -> %d", self.cost.load, self.depth, target)
            self.depth, self._room = target, 0
            return
        up = self.depth + 1
        room = up <= self.max_depth and self.cost.rtf(up, self.typical_duration) <= self.enter_rtf
        self._room = self._room + 1 if room else 0
        if self._room >= self.patience:
            logger.info("depth budget: load %.2f, depth %d -> %d", self.cost.load, self.depth, up)
            self.depth, self._room = up, 0

    def as_dict(self) -> Dict:
        return {"rtf_budget": self.rtf_budget, "adaptive": self.adaptive, "min_depth": self.min_depth,
                "max_depth": self.max_depth, "strict": self.strict, "depth": self.depth,
                "typical_duration": self.typical_duration, "contention_sensor": self.contention is not None,
                "cores": self.cores, "threads": self.threads, "adapt_threads": self.adapt_threads,
                "cost_model": self.cost.as_dict()}


# -- accuracy budget ----------------------------------------------------------
def cheapest_within_wer(wers: Mapping[int, float], num_layers: int, max_wer_increase: float,
                        min_depth: int = 1, source: str = "the depth table") -> int:
    """The smallest depth >= ``min_depth`` whose WER is at most
    ``(1 + max_wer_increase)`` times full depth's (``max_wer_increase`` is
    relative: 0.10 allows 10 % more errors).  Depths missing from ``wers``
    are not candidates; full depth must be there."""
    if isinstance(max_wer_increase, bool) or not isinstance(max_wer_increase, (int, float)) \
            or not math.isfinite(max_wer_increase) or max_wer_increase < 0:
        raise ValueError(f"max_wer_increase must be a relative increase >= 0 (0.10 = 10 %), got {max_wer_increase!r}")
    _check_depth_bound(min_depth, "min_depth", num_layers)
    if num_layers not in wers:
        raise ValueError(f"{source} has no WER at full depth {num_layers}, which max_wer_increase is relative to "
                         f"(it has depths {sorted(wers)})")
    limit = wers[num_layers] * (1 + max_wer_increase) + 1e-9
    return min(d for d, wer in wers.items() if d >= min_depth and wer <= limit)
