"""The CPU contention sensor on fake kernel counters: which jiffies count as
competition, the averaging window, our own threads' waits, and a host that
cannot be read.  No real timing: clock, /proc/stat text, own CPU time and
run delay are all injected."""
import pytest

from espnet_dld.asr.cpu_contention import CpuContention

HZ = 100  # jiffies per second


class FakeHost:
    """Per-cpu jiffy counters (user nice system idle iowait irq softirq steal),
    a clock, this process's CPU seconds and its threads' run delay."""

    def __init__(self, cpus=2):
        self.jiffies = [[0] * 8 for _ in range(cpus)]
        self.now = self.own = self.delay = 0.0

    def stat(self) -> str:
        total = [sum(col) for col in zip(*self.jiffies)]
        lines = ["cpu  " + " ".join(map(str, total))]
        lines += [f"cpu{i} " + " ".join(map(str, row)) for i, row in enumerate(self.jiffies)]
        return "\n".join(lines + ["intr 1 2 3", "procs_running 3"]) + "\n"

    def run(self, seconds, cpu=None, user=0.0, nice=0.0, system=0.0, irq=0.0, steal=0.0, own=0.0, delay=0.0):
        """``seconds`` pass; on ``cpu`` the given shares of a core were busy."""
        self.now += seconds
        if cpu is not None:
            row = self.jiffies[cpu]
            for col, share in ((0, user), (1, nice), (2, system), (5, irq), (7, steal)):
                row[col] += round(share * seconds * HZ)
        self.own += own * seconds
        self.delay += delay * seconds

    def sensor(self, cores=(1,), **kwargs):
        return CpuContention(cores=cores, read_stat=self.stat, clock=lambda: self.now, own_cpu=lambda: self.own,
                             run_delay=lambda: self.delay, ticks_per_second=HZ, count_nice=kwargs.pop("count_nice", False),
                             **kwargs)


def test_busy_cores_of_other_processes_on_our_cores_only():
    host = FakeHost()
    sensor = host.sensor(cores=(1,))
    host.run(1.0, cpu=1, user=0.6, system=0.1, irq=0.05, steal=0.05)  # 0.8 of core 1 busy ...
    host.run(0.0, cpu=0, user=1.0)  # (core 0 is not ours)
    host.own += 0.2  # ... of which 0.2 s were ours
    assert sensor() == pytest.approx(0.6)
    assert sensor.last == pytest.approx(0.6)


def test_a_shared_core_reads_as_the_competitors_full_demand():
    # a competitor and our decoder share core 1 half and half: its usage is 0.5, and our threads
    # waited the other half; the sum is one core wanted by someone else
    host = FakeHost()
    sensor = host.sensor(cores=(1,))
    host.run(1.0, cpu=1, user=1.0, own=0.5, delay=0.5)
    assert sensor() == pytest.approx(1.0)
    # the same competitor while we were idle: it had the core to itself
    host.run(1.0, cpu=1, user=1.0)
    assert sensor() == pytest.approx(1.0)


def test_niced_work_counts_only_when_we_are_niced_ourselves():
    host = FakeHost()
    polite, niced = host.sensor(), host.sensor(count_nice=True)
    host.run(1.0, cpu=1, nice=1.0)  # a nice-19 training yields its core to a decoder at normal priority
    assert polite() == pytest.approx(0.0)
    assert niced() == pytest.approx(1.0)


def test_the_reading_covers_the_last_min_interval_and_no_more():
    host = FakeHost()
    sensor = host.sensor(min_interval=0.25)
    host.run(0.1, cpu=1, user=1.0)  # a burst that ends ...
    assert sensor() == pytest.approx(1.0)  # (the only window there is)
    for _ in range(4):
        host.run(0.2)  # ... and 0.8 s of quiet
        sensor()
    # the window now starts at the newest sample at least 0.25 s old: the burst is out of it
    host.run(0.1)
    assert sensor() == pytest.approx(0.0)
    host.run(0.3, cpu=1, user=1.0)  # a new load: the next reading sees it (window 0.3 s)
    assert sensor() == pytest.approx(1.0)


def test_a_reading_within_min_gap_of_the_last_sample_repeats_it_without_reading_proc():
    host = FakeHost()
    reads = []

    def stat():
        reads.append(host.now)
        return host.stat()

    sensor = CpuContention(cores=(1,), read_stat=stat, clock=lambda: host.now, own_cpu=lambda: host.own,
                           run_delay=lambda: host.delay, ticks_per_second=HZ, count_nice=False, min_gap=0.02)
    host.run(0.5, cpu=1, user=1.0)
    assert sensor() == pytest.approx(1.0) and len(reads) == 2  # (the first read at construction)
    host.run(0.01)  # a 10 ms call later: under a tick, the kernel's counters have not moved
    assert sensor() == pytest.approx(1.0) and len(reads) == 2
    host.run(0.01, cpu=1, user=1.0)  # 20 ms since the last sample: read again (the window reaches back to 0 s)
    assert sensor() == pytest.approx(0.51 / 0.52) and len(reads) == 3
    host.run(0.5)  # the load went: the next reading sees it
    assert sensor() == pytest.approx(0.0) and len(reads) == 4


def test_a_window_older_than_max_window_reads_none_and_restarts():
    host = FakeHost()
    sensor = host.sensor(max_window=2.0)
    host.run(1.0, cpu=1, user=1.0)  # a competitor that ran ...
    host.run(4.0)  # ... and an idle spell since: averaging 5 s would say 0.2 of a core
    assert sensor() is None
    host.run(0.5, cpu=1, user=1.0)  # the reading above started the next window
    assert sensor() == pytest.approx(1.0)


def test_readings_stay_within_the_cores_and_never_below_zero():
    host = FakeHost()
    sensor = host.sensor(cores=(0, 1))
    host.run(1.0, cpu=0, user=1.0, delay=3.0)  # waits of more threads than cores: capped at our 2 cores
    assert sensor() == pytest.approx(2.0)
    host.run(1.0, own=1.0)  # tick sampling can undercount: our CPU time above the jiffies is not negative load
    host.delay -= 5.0  # a thread that ended took its waits with it
    assert sensor() == pytest.approx(0.0)


def test_an_unreadable_host_reads_none():
    host = FakeHost()
    sensor = host.sensor()
    assert sensor() is None  # no time has passed: no window yet

    def broken():
        raise OSError("no /proc here")

    sensor._read_stat = broken
    host.run(1.0, cpu=1, user=1.0)
    assert sensor() is None
    with pytest.raises(ValueError, match="at least one core"):
        CpuContention(cores=[], read_stat=host.stat)


@pytest.mark.skipif(not CpuContention.available(), reason="needs Linux /proc accounting")
def test_this_hosts_reading_is_a_share_of_our_cores():
    sensor = CpuContention(min_interval=0.0, min_gap=0.0)
    sum(i * i for i in range(200_000))  # some time passes
    busy = sensor()
    assert busy is not None and 0.0 <= busy <= len(sensor.cores)


@pytest.mark.skipif(not CpuContention.available(), reason="needs Linux /proc accounting")
def test_the_kept_open_proc_files_read_what_opening_them_afresh_reads():
    """The sensor keeps /proc/stat and each thread's schedstat open and re-reads
    them from offset 0: the text is the kernel's current one, and threads that
    start or end between readings are picked up or dropped (their file closed)."""
    import os
    import threading

    from espnet_dld.asr.cpu_contention import _ProcReader

    def fresh(path):
        with open(path) as f:
            return f.read()

    def fresh_delay():
        total = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                total += int(fresh(f"/proc/self/task/{tid}/schedstat").split()[1])
            except (OSError, IndexError):
                continue
        return total / 1e9

    reader = _ProcReader()
    first = reader.stat()
    names = [line.split()[0] for line in first.splitlines() if line.startswith("cpu")]
    assert names[0] == "cpu" and names == [line.split()[0] for line in fresh("/proc/stat").splitlines()
                                           if line.startswith("cpu")]
    sum(i * i for i in range(300_000))  # this process runs: its core's jiffies move on
    before, again, after = fresh_delay(), reader.run_delay(), fresh_delay()
    assert before <= again <= after
    cpu = [int(x) for x in reader.stat().splitlines()[0].split()[1:]]
    assert sum(cpu) >= sum(int(x) for x in first.splitlines()[0].split()[1:])  # counters re-read, not cached

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    reader.run_delay()
    assert str(worker.native_id) in reader._tasks
    stop.set()
    worker.join()
    for _ in range(200):  # the kernel lists a thread for a moment after Python's join returns
        if str(worker.native_id) not in os.listdir("/proc/self/task"):
            break
        stop.wait(0.01)
    reader.run_delay()
    assert str(worker.native_id) not in reader._tasks and set(reader._tasks) == set(os.listdir("/proc/self/task"))
    reader.close()
    with pytest.raises(OSError):
        reader.stat()
