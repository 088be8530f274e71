"""How many of the decoder's cores other processes want right now.

An adaptive depth budget that learns the load only from the utterances it
has already decoded cannot foresee a load that starts between two of them:
on AN4 the first two utterances after a competing process started missed
the budget by 1.7-2.3x (docs/depth_budget.md).  This sensor reads the
kernel's CPU accounting before each utterance, so the budget sees the new
load before it has cost one.

Two kernel counters make the reading: what other processes ran on our cores
(``/proc/stat`` minus our own CPU time) and how long our own threads waited
for a core while runnable (``/proc/self/task/*/schedstat``).  Either alone
misreads a shared core: a competitor that shares one core with a busy
decoder runs only half the time (usage 0.5), and our wait is the other
half; their sum is the competitor's demand, 1 core, whether we were decoding
or idle in the window.

Linux only (``/proc``); elsewhere the sensor reports nothing and the
budget falls back to learning from decoded utterances alone.
"""
from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Callable, Deque, Dict, Iterable, List, Optional, Tuple

# /proc/stat per-cpu columns after the name: user nice system idle iowait irq softirq steal guest guest_nice
_USER, _NICE, _SYSTEM, _IRQ, _SOFTIRQ, _STEAL = 0, 1, 2, 5, 6, 7


def decoder_cores() -> List[int]:
    """The cores this process may run on (its CPU affinity; all cores where
    the platform has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class _ProcReader:
    """The /proc files a sensor reading needs, kept open and re-read from
    offset 0 (the kernel regenerates them on every read).  A reading sits
    inside every timed call: opening ``/proc/stat`` and each thread's
    ``schedstat`` afresh for each of two readings per utterance added 0.42 ms
    to a 4.2 ms depth-1 call under load (``bench/budget_overhead.py``;
    docs/depth_budget.md, "Sensing for less")."""

    def __init__(self):
        self._tasks: Dict[str, int] = {}
        try:
            self._stat: Optional[int] = os.open("/proc/stat", os.O_RDONLY)
        except OSError:  # no /proc here: every reading fails, and the sensor reports nothing
            self._stat = None

    def stat(self) -> str:
        if self._stat is None:
            raise OSError("/proc/stat cannot be read on this host")
        return os.pread(self._stat, 1 << 16, 0).decode()

    def run_delay(self) -> float:
        """Seconds this process's threads have spent runnable but waiting for
        a core (the second field of each thread's ``schedstat``, nanoseconds);
        threads are looked up every reading, since torch starts and ends them."""
        now = set(os.listdir("/proc/self/task"))
        for tid in list(self._tasks):
            if tid not in now:
                os.close(self._tasks.pop(tid))
        total = 0
        for tid in now:
            try:
                fd = self._tasks.get(tid)
                if fd is None:
                    fd = self._tasks[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                total += int(os.pread(fd, 256, 0).split()[1])
            except (OSError, IndexError):
                self._forget(tid)  # a thread that ended meanwhile
        return total / 1e9

    def _forget(self, tid: str) -> None:
        fd = self._tasks.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for tid in list(self._tasks):
            self._forget(tid)
        if self._stat is not None:
            os.close(self._stat)
            self._stat = None

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass


def _busy_jiffies(stat: str, cores: Iterable[int], count_nice: bool) -> int:
    """Jiffies the given cores spent on work that competes with a process at
    our priority: user, system, interrupts and (on a VM) steal; ``nice``
    (processes below normal priority, which yield to us) only if we run
    niced ourselves."""
    wanted = {f"cpu{c}" for c in cores}
    total = 0
    for line in stat.splitlines():
        if not line.startswith("cpu"):
            break  # the cpu lines come first; the rest (interrupt counts) is long
        name, _, rest = line.partition(" ")
        if name in wanted:
            v = [int(x) for x in rest.split()]
            total += v[_USER] + v[_SYSTEM] + v[_IRQ] + v[_SOFTIRQ] + (v[_STEAL] if len(v) > _STEAL else 0)
            if count_nice:
                total += v[_NICE]
    return total


class CpuContention:
    """``sensor()`` -> how many of this process's cores (its CPU affinity)
    other processes want: the cores they kept busy plus the time our threads
    waited for a core, per second, averaged over at least the last
    ``min_interval`` seconds (kernel accounting is tick-sampled, 10 ms a
    tick: a shorter window is noise); ``None`` before there are two samples,
    where ``/proc`` cannot be read, or when the previous sample is more than
    ``max_window`` seconds old (an average over a long idle spell says little
    about now; the reading taken then starts the next window).  The depth
    budget reads it before each utterance and after a long one, so that a
    stream of utterances is always covered by recent windows.  A reading
    less than ``min_gap`` seconds after the previous sample returns that
    reading again without reading ``/proc``: the counters move in 10 ms
    ticks, so a fresh sample adds nothing, and reading them costs a
    short call 0.13-0.26 ms (docs/depth_budget.md, "Sensing for less").

    Busy time of processes niced below us is not counted (a ``nice 19``
    training yields its cores to a decoder at normal priority), unless this
    process is niced itself.  Our threads' waits count as contention only
    while the decoder runs no more threads than it has cores (more would wait
    for each other).  ``read_stat``, ``clock``, ``own_cpu`` and ``run_delay``
    are injectable for tests.
    """

    def __init__(
        self,
        cores: Optional[Iterable[int]] = None,
        min_interval: float = 0.25,
        max_window: float = 2.0,
        min_gap: float = 0.02,
        read_stat: Optional[Callable[[], str]] = None,
        clock: Callable[[], float] = time.monotonic,
        own_cpu: Callable[[], float] = time.process_time,
        run_delay: Optional[Callable[[], float]] = None,
        ticks_per_second: Optional[float] = None,
        count_nice: Optional[bool] = None,
    ):
        self.cores = decoder_cores() if cores is None else sorted(cores)
        if not self.cores:
            raise ValueError("CpuContention needs at least one core")
        self.min_interval, self.max_window, self.min_gap = float(min_interval), float(max_window), float(min_gap)
        proc = _ProcReader() if read_stat is None or run_delay is None else None
        self._read_stat = read_stat or proc.stat
        self._clock, self._own_cpu, self._run_delay = clock, own_cpu, run_delay or proc.run_delay
        self._hz = float(ticks_per_second or os.sysconf("SC_CLK_TCK"))
        self._count_nice = os.getpriority(os.PRIO_PROCESS, 0) > 0 if count_nice is None else count_nice
        self._samples: Deque[Tuple[float, int, float, float]] = deque()
        self.last: Optional[float] = None
        self()  # the first sample: the first reading then covers the time since construction

    @classmethod
    def available(cls) -> bool:
        """Whether this host exposes the accounting the sensor reads."""
        return Path("/proc/stat").is_file() and Path("/proc/self/schedstat").is_file()

    def _sample(self) -> Tuple[float, int, float, float]:
        return (self._clock(), _busy_jiffies(self._read_stat(), self.cores, self._count_nice), self._own_cpu(),
                self._run_delay())

    def __call__(self) -> Optional[float]:
        if self._samples and self._clock() - self._samples[-1][0] < self.min_gap:
            return self.last
        try:
            now = self._sample()
        except (OSError, ValueError, IndexError):
            return None
        self._samples.append(now)
        # the newest sample at least min_interval old is the window's start; older ones are dropped
        while len(self._samples) > 2 and now[0] - self._samples[1][0] >= self.min_interval:
            self._samples.popleft()
        start = self._samples[0]
        wall = now[0] - start[0]
        if wall > self.max_window:
            self._samples = deque([now])
            self.last = None
            return None
        if len(self._samples) < 2 or wall <= 0:
            return self.last
        others = (now[1] - start[1]) / self._hz - (now[2] - start[2])
        waited = max(0.0, now[3] - start[3])  # a thread that ended takes its waits with it: never below 0
        others = max(0.0, others) + waited
        self.last = min(float(len(self.cores)), max(0.0, others / wall))
        return self.last
