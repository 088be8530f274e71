"""The depth budget controller with an injected clock: calibration fit, choice at the
budget's edges, unmeetable budgets, hysteresis, bounds, the accuracy-budget choice
and the depth-table file.  No real timing anywhere."""
import logging

import numpy as np
import pytest
import yaml

from espnet_dld.asr.depth_budget import (BudgetUnmeetableError, CostModel, DepthBudget, calibrate,
                                         cheapest_within_wer)
from espnet_dld.asr.depth_table import dump_depth_table, find_depth_table, read_depth_table, table_wers

N = 6
TRUE = dict(overhead=0.01, block_call=0.001, base=0.002, per_block=0.003)  # seconds (per call, per block and call),
# seconds per audio second (per block)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def true_seconds(depth, duration, load=1.0):
    return load * (TRUE["overhead"] + TRUE["block_call"] * depth
                   + duration * (TRUE["base"] + TRUE["per_block"] * depth))


def model(load=1.0, **kwargs):
    return CostModel(N, **TRUE, load=load, **kwargs)


def test_calibration_recovers_the_cost_model_from_the_median_pass():
    clock, calls = FakeClock(), []

    def decode(depth, duration):
        calls.append((depth, duration))
        # of three passes per point one is disturbed (another process) and one is luckily fast:
        # the median pass counts, neither extreme
        factor = {1: 5.0, 2: 1.0, 3: 0.5}[calls[1:].count((depth, duration))] if len(calls) > 1 else 1.0
        clock.now += true_seconds(depth, duration, factor)

    cost, points = calibrate(decode, N, durations=[2.0, 1.0], passes=3, clock=clock)
    assert calls[0] == (N, 2.0)  # the untimed warm-up
    assert len(calls) == 1 + 2 * N * 3 and len(points) == 2 * N
    assert cost.overhead == pytest.approx(TRUE["overhead"], rel=1e-6)
    assert cost.base == pytest.approx(TRUE["base"], rel=1e-6)
    assert cost.per_block == pytest.approx(TRUE["per_block"], rel=1e-6)
    assert cost.block_call == pytest.approx(TRUE["block_call"], rel=1e-6)
    three = CostModel.fit(N, points, block_call_term=False)  # the earlier model books it per second
    assert three.block_call == 0.0 and three.rtf(N, 0.5) < cost.rtf(N, 0.5)
    assert cost.rtf(3, 2.0) == pytest.approx(true_seconds(3, 2.0) / 2.0)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        calibrate(decode, N, [2.0], passes=0, clock=clock)


def test_depth_choice_at_the_budget_edges():
    rtf3 = model().rtf(3, 2.0)
    at_edge = DepthBudget(model(), rtf_budget=rtf3, headroom=1.0, hysteresis=0.0)
    assert at_edge.depth == 3  # exactly at depth 3's cost: depth 3 fits
    assert DepthBudget(model(), rtf_budget=rtf3 * 0.999, headroom=1.0, hysteresis=0.0).depth == 2
    enter = 0.95 * 0.9  # the defaults: 5 % headroom, entered 10 % below that
    assert DepthBudget(model(), rtf_budget=rtf3 / enter).depth == 3
    assert DepthBudget(model(), rtf_budget=rtf3 / enter * 0.999).depth == 2
    assert DepthBudget(model(), rtf_budget=100.0).depth == N
    # a short utterance costs more per second (the per-call overhead): fewer blocks fit
    assert at_edge.choose(duration=0.5) < 3 <= at_edge.choose(duration=4.0)


def test_unmeetable_budget_warns_once_at_min_depth_or_raises_when_strict(caplog):
    tiny = model().rtf(1, 2.0) * 0.5
    with caplog.at_level(logging.WARNING, logger="espnet_dld.asr.depth_budget"):
        budget = DepthBudget(model(), rtf_budget=tiny, adaptive=True, min_depth=2)
        assert budget.depth == 2
        assert [budget.depth_for(2.0) for _ in range(3)] == [2, 2, 2]
        budget.observe(2, 2.0, true_seconds(2, 2.0))
    warnings = [r for r in caplog.records if "cannot be met" in r.getMessage()]
    assert len(warnings) == 1 and "rtf_budget" in warnings[0].getMessage()
    with pytest.raises(BudgetUnmeetableError, match=r"rtf_budget .* cannot be met .*strict=False"):
        DepthBudget(model(), rtf_budget=tiny, strict=True)
    # depth 1 misses the headroom but fits the budget itself: chosen without complaint
    edge = model().rtf(1, 2.0) * 1.01
    assert DepthBudget(model(), rtf_budget=edge, strict=True).depth == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rtf_budget must be a positive number"):
        DepthBudget(model(), rtf_budget=0)
    with pytest.raises(ValueError, match=r"min_depth must be an integer in 1..6"):
        DepthBudget(model(), rtf_budget=1.0, min_depth=7)
    with pytest.raises(ValueError, match="min_depth 5 is above max_depth 3"):
        DepthBudget(model(), rtf_budget=1.0, min_depth=5, max_depth=3)


def run(budget, loads, noise=(1.0,)):
    """Decode one 2 s utterance per load value at the budget's depth; the
    measured time is the true cost times the load (times a repeating noise)."""
    depths = []
    for i, load in enumerate(loads):
        depth = budget.depth_for(2.0)
        depths.append(depth)
        budget.observe(depth, 2.0, true_seconds(depth, 2.0, load * noise[i % len(noise)]), depth)
    return depths


def changes(depths):
    return sum(a != b for a, b in zip(depths, depths[1:]))


def test_adaptive_goes_down_at_once_under_load_and_back_up_after_patience():
    budget = DepthBudget(model(), rtf_budget=model().rtf(4, 2.0) * 1.02 / (0.95 * 0.9), adaptive=True, patience=3)
    assert budget.depth == 4
    depths = run(budget, [1.0] * 5 + [2.0] * 20 + [1.0] * 30)
    assert depths[:6] == [4] * 6  # the first slow utterance was decoded at 4
    assert max(depths[7:25]) < 4  # within two utterances it is lower, and stays lower under load
    loaded = depths[24]
    assert true_seconds(loaded, 2.0, 2.0) / 2.0 <= budget.rtf_budget < true_seconds(loaded + 1, 2.0, 2.0) / 2.0
    assert depths[-1] == 4  # back at full fit once the load is gone...
    assert changes(depths[25:]) == 4 - loaded  # ...one block at a time, never back down
    assert all(b >= a for a, b in zip(depths[25:], depths[26:]))


def test_the_load_quantile_is_numpys_linear_quantile():
    rng = np.random.default_rng(0)
    for q in (0.0, 0.25, 0.5, 0.9, 0.95, 1.0):
        for n in (1, 2, 7, 20):
            cost = model(load_window=n, load_quantile=q)
            ratios = rng.uniform(0.5, 3.0, size=n + 3)  # the window keeps the last n
            for r in ratios:
                cost.observe(4, 2.0, true_seconds(4, 2.0, r))
            assert cost.load == pytest.approx(float(np.quantile(ratios[-n:], q)), rel=1e-12)


def test_hysteresis_prevents_oscillation_at_the_edge():
    # depth 4's cost is 2 % under the budget's stay threshold; measured times jitter by up to 6 %;
    # the load follows the last utterance alone (load_window 1), so only the hysteresis can calm it
    edge = model().rtf(4, 2.0) * 1.02 / 0.95
    noise = (1.06, 1.06, 0.94, 0.94, 0.94, 0.94)
    calm = DepthBudget(model(load_window=1), rtf_budget=edge, adaptive=True)
    calm_depths = run(calm, [1.0] * 60, noise)
    assert changes(calm_depths) <= 1
    jumpy = DepthBudget(model(load_window=1), rtf_budget=edge, adaptive=True, hysteresis=0.0, patience=1)
    jumpy_depths = run(jumpy, [1.0] * 60, noise)
    assert changes(jumpy_depths) >= 10 and set(jumpy_depths) == {3, 4}  # what hysteresis prevents


def test_load_estimate_is_a_high_quantile_of_the_recent_window():
    cost = model(load_window=10, load_quantile=0.9)
    for _ in range(9):
        cost.observe(4, 2.0, true_seconds(4, 2.0))
    cost.observe(4, 2.0, true_seconds(4, 2.0, 3.0))  # one stray spike in ten moves it by a tenth
    assert cost.load == pytest.approx(1.0 + 0.1 * (3.0 - 1.0))
    cost.observe(4, 2.0, true_seconds(4, 2.0, 3.0))  # a second one: the 90th percentile is a slow one
    assert cost.load == pytest.approx(3.0)
    for _ in range(9):
        cost.observe(2, 1.0, true_seconds(2, 1.0))  # any depth and length teaches it the same load
    assert cost.load == pytest.approx(1.0 + 0.1 * (3.0 - 1.0))
    cost.observe(2, 1.0, true_seconds(2, 1.0))  # ten utterances on, the load is forgotten
    assert cost.load == pytest.approx(1.0)
    assert cost.as_dict()["load_window"] == 10 and cost.as_dict()["load_quantile"] == 0.9
    with pytest.raises(ValueError, match="load_window must be an integer >= 1"):
        model(load_window=0)
    with pytest.raises(ValueError, match=r"load_quantile must be in \[0, 1\]"):
        model(load_quantile=1.5)


def test_a_stray_spike_holds_the_depth_down_for_one_window_at_most():
    # depth 4 has 12 % room under the stay threshold; one utterance is twice as slow.  The default
    # estimate, the largest ratio of the last 20, drops the depth while the spike is in the window
    # and is back once it has left; the earlier 0.9 quantile of 10 moves by a tenth of it only.
    rtf_budget = model().rtf(4, 2.0) * 1.12 / 0.95
    loads = [1.0] * 10 + [2.0] + [1.0] * 40
    budget = DepthBudget(model(), rtf_budget=rtf_budget, adaptive=True)
    depths = run(budget, loads)
    assert depths[:11] == [4] * 11 and max(depths[11:31]) < 4  # held down for the 20 utterances
    assert depths[-1] == 4 and budget.cost.load == pytest.approx(1.0)  # forgotten, then back up
    lenient = DepthBudget(model(load_window=10, load_quantile=0.9), rtf_budget=rtf_budget, adaptive=True)
    assert run(lenient, loads) == [4] * len(loads)


def test_the_default_load_bounds_a_95_percent_share_where_a_0_9_quantile_does_not():
    # ratios drawn i.i.d.: the largest of the last 20 is exceeded by the next one 1/21 of the time
    # (exact for continuous exchangeable draws); the 0.9 quantile of 10, interpolated between the two
    # largest, about 1/6 of the time
    import numpy as np

    ratios = np.random.default_rng(0).lognormal(0.0, 0.3, 8000)
    for kwargs, low, high in (({}, 0.03, 0.065), ({"load_window": 10, "load_quantile": 0.9}, 0.13, 0.2)):
        cost, over = model(**kwargs), []
        for r in ratios:
            if len(cost._windows.get(0, ())) == cost.load_window:
                over.append(r > cost.load)
            cost.observe(3, 2.0, true_seconds(3, 2.0, r))
        assert low < np.mean(over) < high, (kwargs, np.mean(over))


def test_adaptive_depth_stays_within_min_and_max():
    budget = DepthBudget(model(), rtf_budget=model().rtf(6, 2.0), adaptive=True, min_depth=2, max_depth=5)
    depths = run(budget, [0.1] * 20 + [50.0] * 20 + [0.1] * 40)
    assert min(depths) == 2 and max(depths) == 5
    assert depths[-1] == 5


def test_caller_depths_teach_the_cost_model_and_are_recorded():
    budget = DepthBudget(model(), rtf_budget=1.0)
    budget.observe(6, 2.0, true_seconds(6, 2.0, 3.0))  # a caller's depth=6, three times slower
    assert budget.cost.load > 2.0
    assert budget.history[-1].budget_depth is None and budget.history[-1].rtf == pytest.approx(
        true_seconds(6, 2.0, 3.0) / 2.0)


def test_cheapest_depth_within_a_wer_increase():
    wers = {1: 40.0, 2: 21.0, 3: 11.0, 4: 10.4, 5: 10.1, 6: 10.0}
    assert cheapest_within_wer(wers, 6, 0.10) == 3  # 11.0 is exactly 10 % more than 10.0
    assert cheapest_within_wer(wers, 6, 0.0999) == 4
    assert cheapest_within_wer(wers, 6, 0.0) == 6
    assert cheapest_within_wer(wers, 6, 5.0) == 1
    assert cheapest_within_wer(wers, 6, 5.0, min_depth=2) == 2
    assert cheapest_within_wer({3: 10.5, 6: 10.0}, 6, 0.10) == 3  # undecoded depths are no candidates
    with pytest.raises(ValueError, match="no WER at full depth 6"):
        cheapest_within_wer({1: 3.0}, 6, 0.1, source="depth table x.yaml")
    with pytest.raises(ValueError, match="max_wer_increase must be a relative increase >= 0"):
        cheapest_within_wer(wers, 6, -0.1)


def table_record(**over):
    record = {"num_blocks": 4, "dev_set": "dev", "num_utterances": 10,
              "depths": {d: {"wer": 10.0 + 4 - d, "rtf": 0.01 * d, "active_layers": [3]} for d in (1, 2, 4)}}
    return {**record, **over}


def test_depth_table_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "exp" / "depth_table.yaml"
    path.parent.mkdir()
    model_file = path.parent / "valid.pth"
    model_file.write_bytes(b"weights")
    dump_depth_table(path, table_record())
    assert find_depth_table(model_file) == path
    record = read_depth_table(path, 4, model_file)
    assert table_wers(record) == {1: 13.0, 2: 12.0, 4: 10.0}
    with pytest.raises(ValueError, match="is for an encoder of 4 blocks, but the model has 6"):
        read_depth_table(path, 6)
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    dump_depth_table(path, table_record(model_sha256="0" * 64))
    with pytest.raises(ValueError, match="belongs to another checkpoint"):
        read_depth_table(path, 4, other)
    with pytest.raises(FileNotFoundError, match="stage 15"):
        find_depth_table(model_file, tmp_path / "missing.yaml")
    assert find_depth_table(other) is None
    for bad, message in ((table_record(dev_set=None), "dev_set"),
                         (table_record(depths={1: {"wer": 3.0}}), "no row for full depth 4"),
                         (table_record(depths={4: {"wer": "x"}}), "depth 4 needs a WER"),
                         (table_record(depths={4: {"wer": 1.0}, 9: {"wer": 1.0}}), "depth 9 is not")):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match=message):
            read_depth_table(path)


# -- contention sensing ---------------------------------------------------------
class FakeSensor:
    """Busy cores of other processes, as the next readings; the load factor a
    decoder thread sees follows: 2x where it shares its core."""

    def __init__(self, busy=0.0):
        self.busy = busy

    def __call__(self):
        return self.busy


def run_sensed(budget, sensor, busy_per_utt, load_of=lambda busy, threads: 2.0 if (busy or 0.0) >= 0.5 else 1.0):
    """One 2 s utterance per sensor reading; the competitor has started
    before the utterance's depth is chosen (as the benchmark's does)."""
    depths, rtfs = [], []
    for busy in busy_per_utt:
        sensor.busy = busy
        depth = budget.depth_for(2.0)
        seconds = true_seconds(depth, 2.0, load_of(busy, budget.threads))
        budget.observe(depth, 2.0, seconds, depth)
        depths.append(depth)
        rtfs.append(seconds / 2.0)
    return depths, rtfs


def sensed_budget(sensor=None, **kwargs):
    # full depth fits the quiet host with a margin; under 2x load depths <= 2 fit, under 2.4x depth 1
    return DepthBudget(model(), rtf_budget=model().rtf(N, 2.0) * 1.02 / (0.95 * 0.9), adaptive=True,
                       contention=sensor, **kwargs)


def test_the_sensor_is_read_before_each_utterance_and_after_long_ones_only():
    from espnet_dld.asr.depth_budget import SENSE_AFTER_S

    readings = []
    budget = sensed_budget(lambda: readings.append(1) or 0.0)
    budget.depth_for(2.0)
    assert len(readings) == 1
    budget.observe(1, 2.0, SENSE_AFTER_S / 2, 1)  # a short call: the next call's reading is soon enough
    assert len(readings) == 1
    budget.depth_for(2.0)
    budget.observe(1, 2.0, SENSE_AFTER_S, 1)  # a long one: a reading starts a fresh window after it
    assert len(readings) == 3


def test_sensed_onset_lowers_the_depth_before_the_first_slow_utterance():
    loads = [0.0] * 10 + [1.0] * 20
    blind = sensed_budget()
    _, blind_rtfs = run_sensed(blind, FakeSensor(), loads)
    sensor = FakeSensor()
    sensed = sensed_budget(sensor)
    depths, rtfs = run_sensed(sensed, sensor, loads)
    assert blind_rtfs[10] > blind.rtf_budget  # from past utterances alone the onset costs one
    assert depths[:10] == [N] * 10 and depths[10] == 1  # the sensor moves it before utterance 10 ...
    assert all(r <= sensed.rtf_budget for r in rtfs)  # ... so none exceeds the budget
    assert [r.level for r in sensed.history] == [0] * 10 + [1] * 20
    # the guess for the unseen level: the quiet load x margin 1.2 x the fair-share slowdown 2
    assert sensed.cost.as_dict()["load_by_level"][1] == pytest.approx(2.0)


def test_an_unseen_levels_guess_is_a_floor_until_three_utterances_were_measured():
    cost = model(load_window=10)
    cost.enter_level(1, unseen_load=2.4)
    assert cost.load == pytest.approx(2.4)
    cost.observe(3, 2.0, true_seconds(3, 2.0, 1.5))  # a lucky first utterance at the new load ...
    assert cost.load == pytest.approx(2.4)  # ... does not lower the estimate
    cost.enter_level(0, unseen_load=9.0)  # level 0 was measured (as the default level): its window counts
    cost.enter_level(1, unseen_load=9.0)  # back at level 1: its own guess stays, a new one does not replace it
    assert cost.load == pytest.approx(2.4)
    cost.observe(3, 2.0, true_seconds(3, 2.0, 1.5))
    cost.observe(3, 2.0, true_seconds(3, 2.0, 1.5))  # the third measurement: the window alone from now on
    assert cost.load == pytest.approx(1.5)


def test_levels_keep_their_own_load_so_a_load_that_goes_is_forgotten_at_once():
    sensor = FakeSensor()
    budget = sensed_budget(sensor)
    depths, rtfs = run_sensed(budget, sensor, [0.0] * 5 + [1.0] * 10 + [0.0] * 5 + [1.0] * 5)
    assert depths[15] == N  # the quiet level's own window: back to full fit at once, no patience
    assert depths[20] == depths[14] and budget.cost.load == pytest.approx(2.0)  # the load came back: known
    assert all(r <= budget.rtf_budget for r in rtfs)


def test_level_hysteresis_ignores_a_reading_near_the_rounding_edge():
    sensor = FakeSensor()
    budget = sensed_budget(sensor, level_hysteresis=0.2)
    run_sensed(budget, sensor, [0.0, 0.65])  # |0.65 - 0| < 0.7: stays at level 0
    assert budget.cost.level == 0
    run_sensed(budget, sensor, [0.75])
    assert budget.cost.level == 1
    run_sensed(budget, sensor, [0.35, None])  # |0.35 - 1| < 0.7, and no reading: stays
    assert budget.cost.level == 1
    run_sensed(budget, sensor, [0.25])
    assert budget.cost.level == 0
    sensor.busy = 7.0  # more than our cores: the level is capped at them
    budget.depth_for(2.0)
    assert budget.cost.level == budget.cores == 1


def test_adapt_threads_leaves_the_taken_cores_to_the_competitor():
    sensor = FakeSensor()
    budget = sensed_budget(sensor, cores=2, threads=2, adapt_threads=True)
    run_sensed(budget, sensor, [0.0])
    sensor.busy = 1.0
    budget.depth_for(2.0)
    assert budget.threads == 1
    # one thread on the free core: half the parallelism, no shared core, so 2x, and the margin
    assert budget.cost.load == pytest.approx(2.0 * 1.2)
    budget.observe(1, 2.0, true_seconds(1, 2.0, 2.0), 1)
    assert budget.history[-1].threads == 1 and budget.cost.load == pytest.approx(2.4)  # (the guess is a floor)
    sensor.busy = 2.0
    budget.depth_for(2.0)  # both cores taken: still one thread, now on a shared core: 2x slower again
    assert budget.threads == 1 and budget.cost.load == pytest.approx(2.4 * 1.2 * 2.0)
    run_sensed(budget, sensor, [0.0])
    assert budget.threads == 2 and budget.history[-1].threads == 2
    keep = sensed_budget(FakeSensor(1.0), cores=2, threads=2)
    keep.depth_for(2.0)
    assert keep.threads == 2 and keep.cost.level == 1


def test_contention_settings_are_checked():
    with pytest.raises(ValueError, match="adapt_threads needs a contention sensor"):
        sensed_budget(None, adapt_threads=True)
    with pytest.raises(ValueError, match="cores must be an integer >= 1"):
        sensed_budget(FakeSensor(), cores=0)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        sensed_budget(FakeSensor(), threads=1.5)
    fixed = DepthBudget(model(), rtf_budget=1.0, contention=FakeSensor(1.0))
    fixed.depth_for(2.0)
    assert fixed.cost.level == 0  # a fixed budget does not read the sensor
