"""bench/encoder_depth.py's arithmetic: medians, ratios to full depth, the k/N + 0.1 target."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import encoder_depth  # noqa: E402


def test_ratios_are_medians_of_per_round_ratios():
    # round 2 ran on a machine twice as loaded: its ratios are the same, its times are not
    times = {0: [0.1, 0.2, 0.1], 1: [0.3, 0.6, 0.3], 2: [0.55, 1.1, 0.5], 3: [0.7, 1.4, 9.0], 4: [1.0, 2.0, 1.0]}
    active = {1: [3], 2: [1, 3], 3: [0, 2, 3], 4: [0, 1, 2, 3]}
    res = encoder_depth.summarize(times, active)
    assert res["fixed_ms"] == 100.0 and res["fixed_ratio"] == 0.1
    rows = {r["depth"]: r for r in res["rows"]}
    assert [rows[k]["ratio"] for k in range(1, 5)] == [0.3, 0.55, 0.7, 1.0]  # one outlier (9.0) ignored
    assert [rows[k]["ms"] for k in range(1, 5)] == [300.0, 550.0, 1400.0, 1000.0]
    assert [rows[k]["target"] for k in range(1, 5)] == [0.35, 0.6, 0.85, 1.1]
    assert [rows[k]["met"] for k in range(1, 5)] == [True, True, True, True] and res["all_met"]
    assert rows[1]["blocks_only_ratio"] == pytest.approx(0.2 / 0.9, abs=1e-4)
    assert rows[2]["layers"] == [1, 3]


def test_a_depth_over_its_target_is_flagged():
    times = {0: [0.4], 1: [0.45], 2: [1.0]}
    res = encoder_depth.summarize(times, {1: [1], 2: [0, 1]})
    assert res["rows"][0]["ratio"] == 0.45 and res["rows"][0]["target"] == 0.6 and res["rows"][0]["met"]
    res = encoder_depth.summarize({0: [0.6], 1: [0.65], 2: [1.0]}, {1: [1], 2: [0, 1]})
    assert res["rows"][0]["met"] is False and res["all_met"] is False
