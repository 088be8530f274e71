"""The parts of the benchmarks that turn logs and reports into numbers."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import ablation_table  # noqa: E402
import accuracy_depth  # noqa: E402
import depth_policy  # noqa: E402
import training_cost  # noqa: E402

LINE = ("[vm] 2026-11-26 21:49:56,356 (trainer:394) INFO: {e}epoch results: [train] iter_time=0.009, "
        "loss_ctc=58.408, train_time={step}, time={t}, total_count=75, [valid] loss_ctc=13.468, "
        "cer_ctc={cer}, loss_att=nan, loss=13.468, time=1.5 seconds, total_count=10")


@pytest.mark.parametrize("text, seconds", [
    ("23.14 seconds", 23.14), ("1 minute and 47.33 seconds", 107.33), ("2 minutes", 120.0),
    ("1 hour, 2 minutes and 3.5 seconds", 3723.5),
])
def test_espnet_durations(text, seconds):
    assert training_cost.seconds(text) == pytest.approx(seconds)


def test_unreadable_duration_is_an_error():
    with pytest.raises(ValueError, match="cannot read duration 'soon'"):
        training_cost.seconds("soon")


def write_log(path, rows):
    path.write_text("\n".join(LINE.format(e=e, step=s, t=t, cer=c) for e, s, t, c in rows) + "\n")
    return path


def test_epochs_time_to_target_and_resumed_runs(tmp_path):
    log = write_log(tmp_path / "train.log", [
        (1, 0.3, "20 seconds", 0.20), (2, 0.3, "20 seconds", 0.15),
        (2, 0.3, "30 seconds", 0.12),  # resumed: epoch 2 logged again, the last one counts
        (3, 0.3, "1 minute and 0.0 seconds", 0.10),
    ])
    epochs = training_cost.read_epochs(log)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[1]["train_seconds"] == 30.0 and epochs[1]["valid_cer"] == 0.12
    assert training_cost.time_to(epochs, 0.12) == {"epochs": 2, "seconds": pytest.approx(20 + 1.5 + 30 + 1.5)}
    assert training_cost.time_to(epochs, 0.05) is None


def test_log_without_epochs_is_named(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("nothing here\n")
    with pytest.raises(SystemExit, match="train.log: no 'Nepoch results' lines"):
        training_cost.read_epochs(log)


def report(wers_ld, wers_dld, teacher):
    res = {"teacher": {"3": {"wer": teacher}},
           "ld": {str(d + 1): {"wer": w} for d, w in enumerate(wers_ld)},
           "dld": {str(d + 1): {"wer": w} for d, w in enumerate(wers_dld)}}
    return {"num_blocks": 4, "test_sets": {"test": {"results": res}}}


def test_aggregate_over_seeds_and_targets():
    reports = [report([90, 50, 30, 20], [80, 45, 29, 20], 19.5),
               report([92, 52, 32, 22], [78, 47, 31, 20], 19.5)]
    agg = accuracy_depth.aggregate(reports, [0, 1])
    entry = agg["test_sets"]["test"]
    assert entry["ld"][1]["mean"] == 91 and entry["ld"][1]["std"] == pytest.approx(2 ** 0.5)
    assert entry["dld"][1]["min"] == 78 and entry["dld"][1]["max"] == 80
    t = entry["targets"]
    assert t["dld_le_ld_every_depth"]["met"]
    assert t["low_depths_10pct"]["depths"] == [1] and t["low_depths_10pct"]["met"]  # 79 vs 91: 13 % lower
    # full depth: DLD 20 <= LD 21 and within 5 % of the teacher's 19.5
    assert t["full_depth"]["met"] and t["full_depth"]["rel_to_teacher"] == pytest.approx(0.0256, abs=1e-4)


def test_full_depth_target_needs_both_conditions():
    met = accuracy_depth.aggregate([report([90, 50, 30, 21], [80, 45, 29, 20], 19.5)], [0])
    assert met["test_sets"]["test"]["targets"]["full_depth"]["met"]
    worse_than_ld = accuracy_depth.aggregate([report([90, 50, 30, 19], [80, 45, 29, 20], 19.5)], [0])
    assert not worse_than_ld["test_sets"]["test"]["targets"]["full_depth"]["met"]


def test_equal_error_counts_are_a_tie_despite_the_reports_rounding():
    # AN4 test, depth 8: 135+108+127 and 124+118+128 errors of 773 words, each WER stored with 4 decimals
    ld, dld = [17.4644, 13.9715, 16.4295], [16.0414, 15.2652, 16.5589]
    assert sum(dld) / 3 > sum(ld) / 3  # by 3e-5, from the rounding alone
    mean = lambda v: {"mean": sum(v) / 3}  # noqa: E731
    entry = {"teacher": 16.0, "ld": {1: mean(ld), 2: mean(ld)}, "dld": {1: mean(dld), 2: mean(dld)}}
    t = accuracy_depth.check_targets(entry, 2)
    assert t["dld_le_ld_every_depth"] == {"met": True, "depths_missed": []} and t["full_depth"]["dld_le_ld"]
    entry["dld"][1] = {"mean": sum(ld) / 3 + 0.13}  # one more error in each seed (of 773 words) is a loss
    assert accuracy_depth.check_targets(entry, 2)["dld_le_ld_every_depth"]["depths_missed"] == [1]


def test_half_depth_target_holds_dld_within_1p5x_the_teacher():
    # 4 blocks: depths 2-4 are the upper half; DLD 45 at depth 2 is above 1.5 x 29
    missed = accuracy_depth.aggregate([report([90, 50, 30, 21], [80, 45, 29, 20], 29.0)], [0])
    target = missed["test_sets"]["test"]["targets"]["half_depth_1p5x_teacher"]
    assert target["depths"] == [2, 3, 4] and not target["met"] and target["depths_missed"] == [2]
    met = accuracy_depth.aggregate([report([90, 50, 30, 21], [80, 43, 29, 20], 29.0)], [0])
    assert met["test_sets"]["test"]["targets"]["half_depth_1p5x_teacher"]["met"]


def test_static_models_are_read_at_full_depth_by_their_block_count(tmp_path):
    exp = tmp_path / "exp" / "asr_static3"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text("encoder_conf:\n    num_blocks: 3\n")
    score = exp / "decode_ctc_greedy" / "test" / "full" / "score"
    score.mkdir(parents=True)
    (score / "score.json").write_text(json.dumps({"wer": 31.5, "cer": 12.0}))
    assert accuracy_depth.static_models(tmp_path, ["exp/asr_static3"], "decode_ctc_greedy", ["test"], "wer") \
        == {"test": {"3": 31.5}}
    assert accuracy_depth.static_models(tmp_path, ["exp/asr_static3"], "decode_ctc_greedy", ["test"],
                                        "cer")["test"]["3"] == 12.0
    with pytest.raises(SystemExit, match="asr_static3/decode_ctc_greedy/dev/full/score/score.json is missing"):
        accuracy_depth.static_models(tmp_path, ["exp/asr_static3"], "decode_ctc_greedy", ["dev"], "wer")
    with pytest.raises(SystemExit, match="--static exp/asr_static6: .*config.yaml is missing"):
        accuracy_depth.static_models(tmp_path, ["exp/asr_static6"], "decode_ctc_greedy", ["test"], "wer")
    entry = accuracy_depth.aggregate([report([90, 50, 30, 21], [80, 45, 29, 20], 19.5)], [0])["test_sets"]["test"]
    entry["static"] = {"3": 31.5}
    assert "static 3-block model trained alone: 31.50; DLD at depth 3: 29.00" in accuracy_depth.table(
        "an4", "test", entry, 4)


def test_missing_depth_or_report_is_named(tmp_path):
    broken = report([90, 50, 30, 20], [80, 45, 29, 20], 19.5)
    del broken["test_sets"]["test"]["results"]["dld"]["2"]
    with pytest.raises(SystemExit, match="dld at depth 2 is not decoded"):
        accuracy_depth.aggregate([broken], [0])
    with pytest.raises(SystemExit, match="report_seed3/results.json is missing"):
        accuracy_depth.load_reports(tmp_path, [3], "")


def test_cer_is_aggregated_when_asked_for():
    rep = report([90, 50, 30, 20], [80, 45, 29, 20], 19.5)
    for model in ("ld", "dld"):
        for depth, rec in rep["test_sets"]["test"]["results"][model].items():
            rec["cer"] = rec["wer"] / 2
    rep["test_sets"]["test"]["results"]["teacher"]["3"]["cer"] = 9.0
    agg = accuracy_depth.aggregate([rep], [0], metric="cer")
    entry = agg["test_sets"]["test"]
    assert agg["metric"] == "cer" and entry["teacher"] == 9.0
    assert entry["ld"][1]["mean"] == 45 and entry["dld"][4]["mean"] == 10
    assert "CER (%)" in accuracy_depth.table("an4", "test", entry, 4, "cer")
    with pytest.raises(SystemExit, match="ld at depth 1 is not decoded \\(or has no cer\\)"):
        accuracy_depth.aggregate([report([90, 50, 30, 20], [80, 45, 29, 20], 19.5)], [0], metric="cer")


def test_seed_is_added_to_the_student_args():
    assert accuracy_depth.merge_student_args([], "--seed 1") == ["--student_args", "--seed 1"]
    assert accuracy_depth.merge_student_args(["--student_args", "--model_conf x=1", "--stage", "3"], "--seed 2") == \
        ["--student_args", "--model_conf x=1 --seed 2", "--stage", "3"]


def test_depth_policy_reads_the_sets_from_run_sh_and_flags_the_valid_set():
    fsdd = Path(__file__).resolve().parents[2] / "egs2" / "fsdd_dld" / "asr1"
    assert depth_policy.recipe_sets(fsdd, None, None, None) == ("dev", ["test", "dev"], "raw")
    assert depth_policy.recipe_sets(fsdd, "dev", ["test"], "fbank") == ("dev", ["test"], "fbank")
    runs = {  # two seeds of a 2-block model, as the decoding worker returns them (JSON keys)
        seed: {"num_blocks": 2,
               "layers": {"uniform": {"1": [1], "2": [0, 1]}, "profile": {"1": [seed], "2": [0, 1]}},
               "test_sets": {"dev": {"wer": {"uniform": {"1": 50.0 + seed, "2": 20.0},
                                             "profile": {"1": 40.0 + 3 * seed, "2": 20.0}}}}}
        for seed in (0, 1)
    }
    agg = depth_policy.aggregate(runs, ["uniform", "profile"])
    cell = agg["test_sets"]["dev"]["profile"][1]
    assert cell["mean"] == 41.5 and cell["values"] == [40.0, 43.0] and cell["layers"] == {0: [0], 1: [1]}
    assert cell["std"] == pytest.approx(2.1213, abs=1e-4)
    text = depth_policy.table("fsdd_dld DLD", "dev", agg["test_sets"]["dev"], 2, ["uniform", "profile"], biased=True)
    assert "dev is the valid set the profile was searched on" in text
    assert "| 1 | 50.50 ± 0.71 | 41.50 ± 2.12 | -17.8 % | [0] / [1] |" in text


# -- README tables -------------------------------------------------------------
import readme_tables  # noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_readme_tables_are_the_ones_generated_from_the_results():
    """Every cell of the README's accuracy, depth-policy, front-end, AN4 and AN4-target tables comes from
    the JSON, rounded once (a table pasted from a 2-decimal printout is off by 0.1)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for table in (readme_tables.accuracy_table(RESULTS), readme_tables.policy_table(RESULTS),
                  readme_tables.frontend_table(RESULTS), readme_tables.an4_table(RESULTS),
                  readme_tables.an4_targets_table(RESULTS)):
        assert table in readme


def test_an4_table_shows_one_seed_as_a_value_and_several_as_mean_and_std():
    assert readme_tables.seed_cell({"mean": 14.876, "std": 0.0, "values": [14.876]}) == "14.9"
    assert readme_tables.seed_cell({"mean": 15.0, "std": 0.54, "values": [14.5, 15.0, 15.5]}) == "15.0 ± 0.5"
    assert readme_tables.relative(17.34, 17.34) == "+0.0 %"  # a tie is no gain, not "-0.0 %"
    # over several seeds the relative change on the means says in how many seeds DLD was lower
    ld, dld = {"mean": 20.0, "values": [19.0, 20.0, 21.0]}, {"mean": 17.0, "values": [15.0, 20.0, 16.0]}
    assert readme_tables.relative_paired(ld, dld) == "**-15.0 %** (2/3)"  # the tie at 20.0 is no win
    assert readme_tables.relative_paired({"mean": 20.0, "values": [20.0]}, {"mean": 21.0, "values": [21.0]}) == "+5.0 %"


def test_an4_targets_table_states_each_target_with_its_measure_and_verdict(tmp_path):
    n, teacher = 12, 10.0
    ld = {d: 50.0 if d <= 3 else 12.0 for d in range(1, n + 1)}
    dld = {d: 40.0 if d <= 3 else 12.0 for d in range(1, n + 1)}
    dld[2], dld[7] = 46.0, 16.0  # depth 2: only 8 % better; depth 7: above 1.5x the teacher
    entry = {"teacher": teacher, "ld": {d: {"mean": v} for d, v in ld.items()},
             "dld": {d: {"mean": v} for d, v in dld.items()}}
    entry["targets"] = accuracy_depth.check_targets(entry, n)
    stored = json.loads(json.dumps({"recipes": {"an4_dld": {"test_sets": {"test": entry}}}}))  # str keys, as on disk
    (tmp_path / "accuracy_an4_dld.json").write_text(json.dumps(stored))
    rows = readme_tables.an4_targets_table(tmp_path).splitlines()[2:]
    assert rows[0] == "| DLD <= LD at every depth | DLD worse at depths 7 (+33.3 %) | **missed** |"
    assert rows[1] == ("| DLD at least 10 % lower than LD at depths <= 3 (N/4) | DLD vs LD: depth 1 -20.0 %, "
                       "depth 2 -8.0 %, depth 3 -20.0 % | **missed** |")
    assert rows[2] == "| DLD at full depth within 5 % of the teacher | 12.0 against 10.0 (+20.0 %) | **missed** |"
    assert rows[3] == "| DLD within 1.5x the teacher down to depth 6 | worst: depth 7, 16.0 = 1.60x | **missed** |"
    assert rows[4] == "| teacher (greedy CTC) within 1.5x of ESPnet's 7.6 % | 10.0 = 1.3x | met |"


def ablation_json(path, run_args, ld_tag, by_set):
    """An accuracy_depth.py JSON of one recipe with 2 blocks: by_set = {set: (ld wers, dld wers)}."""
    sets = {ts: {m: {str(d + 1): {"mean": w, "values": [w]} for d, w in enumerate(ws)}
                 for m, ws in zip(("ld", "dld"), pair)} for ts, pair in by_set.items()}
    path.write_text(json.dumps({"tag": "_x" if ld_tag is not None else "", "ld_tag": ld_tag, "run_args": run_args,
                                "recipes": {"an4_dld": {"num_blocks": 2, "test_sets": sets}}}))
    return str(path)


def test_ablation_table_lists_a_shared_ld_once_and_chooses_on_the_dev_set(tmp_path):
    base = ablation_json(tmp_path / "a.json", "", None, {"test": ([60, 20], [50, 20]), "dev": ([70, 30], [60, 30])})
    # better on test (30 < 35) but worse on dev (48 > 45): the dev set decides
    other = ablation_json(tmp_path / "b.json", "--kd_weight 8", "", {"test": ([0, 0], [40, 20]), "dev": ([0, 0], [66, 30])})
    entries = ablation_table.settings([base, other])
    assert [(e["setting"], e["test_set"], e["model"]) for e in entries] == [
        ("recipe defaults", "test", "ld"), ("recipe defaults", "test", "dld"),
        ("recipe defaults", "dev", "ld"), ("recipe defaults", "dev", "dld"),
        ("--kd_weight 8", "test", "dld"), ("--kd_weight 8", "dev", "dld")]  # the shared LD is not repeated
    assert ablation_table.choose(entries, "dev")["setting"] == "recipe defaults"
    assert ablation_table.choose(entries, "test")["setting"] == "--kd_weight 8"
    assert ablation_table.choose(entries, "eval") is None
    assert "| an4_dld/dev | DLD | `--kd_weight 8` | 1 | 66.00 | 30.00 | 48.00 |" in ablation_table.rows(entries)
    # without the run that trained it, the shared LD is listed by the ablation that reused it, once
    third = ablation_json(tmp_path / "c.json", "--kd_weight 2", "", {"test": ([0, 0], [45, 20])})
    assert [(e["setting"], e["model"]) for e in ablation_table.settings([other, third])] == [
        ("--kd_weight 8", "ld"), ("--kd_weight 8", "dld"), ("--kd_weight 8", "ld"), ("--kd_weight 8", "dld"),
        ("--kd_weight 2", "dld")]


def test_relative_change_is_bold_from_ten_percent_lower():
    assert readme_tables.relative(50.0, 45.0) == "**-10.0 %**"
    assert readme_tables.relative(50.0, 45.5) == "-9.0 %"
    assert readme_tables.relative(40.0, 41.0) == "+2.5 %"


def test_policy_bold_needs_a_margin_over_every_other_policy():
    v = lambda m: {"mean": m, "std": 0.0}  # noqa: E731
    # both profile columns beat uniform and first: both bold; a 0.3 % lead is no lead
    assert readme_tables.policy_cells({"uniform": v(97.1), "first": v(101.0), "profile": v(92.0),
                                       "profile_wer": v(92.2)}) == ["97.1 ± 0.0", "101.0 ± 0.0", "**92.0 ± 0.0**",
                                                                    "**92.2 ± 0.0**"]
    assert "**" not in "".join(readme_tables.policy_cells({"uniform": v(62.47), "first": v(81.3),
                                                           "profile": v(62.27), "profile_wer": v(63.0)}))
    assert readme_tables.policy_cells({"uniform": v(41.15), "first": v(69.5), "profile": v(42.3),
                                       "profile_wer": v(41.46)})[0] == "**41.1 ± 0.0**"


# -- the arithmetic behind the README's cost figures ---------------------------
import decode_cost  # noqa: E402
import export_cost  # noqa: E402
import teacher_cache_cost  # noqa: E402


def test_decode_cost_medians_ratios_and_targets():
    # [decode, encoder] seconds per round; 10 s of audio
    per_round = {1: [[1.0, 0.5], [3.0, 0.9], [2.0, 0.6]], 2: [[4.0, 3.0], [4.0, 3.0], [5.0, 4.0]]}
    out = decode_cost.summarize(per_round, 10.0)
    assert out[1]["decode_seconds"] == 2.0 and out[1]["rtf"] == pytest.approx(0.2)
    assert out[1]["encoder_share"] == pytest.approx(0.6 / 2.0)  # median encoder over median decode
    assert out[1]["ratio"] == pytest.approx(0.5) and out[1]["target"] == pytest.approx(0.5 + 0.15)
    assert out[1]["met"] and out[2]["ratio"] == 1.0 and out[2]["met"]
    slow = decode_cost.summarize({1: [[3.5, 1.0]], 2: [[4.0, 3.0]]}, 10.0)
    assert slow[1]["ratio"] == pytest.approx(0.875) and not slow[1]["met"]


def test_export_cost_row():
    export = {"layers": [1, 3], "output_bytes": 300, "input_bytes": 1000, "output_model_bytes": 250,
              "max_abs_diff": 1e-7}
    row = export_cost.export_row(2, export, ["a b", "c d"], ["a b", "c x"], ["a b", "c d"])
    assert row["zip_over_full"] == pytest.approx(0.3) and row["identical_hypotheses"] == 1
    assert row["utterances"] == 2 and row["wer_dynamic"] == pytest.approx(25.0) and row["wer_static"] == 0.0


def test_teacher_cache_step_ratios_use_medians():
    r = teacher_cache_cost.step_ratios({"online": [1.0, 2.0, 9.0], "cached": [1.0, 1.4, 1.5], "ld": [1.0, 1.0, 1.6]})
    assert (r["online_step_seconds"], r["cached_step_seconds"], r["ld_step_seconds"]) == (2.0, 1.4, 1.0)
    assert r["cached_over_online"] == pytest.approx(0.7) and r["online_over_ld"] == 2.0
    assert r["cached_over_ld"] == pytest.approx(1.4)


def test_teacher_cache_wer_comparison_in_units_of_std(tmp_path):
    def acc(means, stds):
        return {"recipes": {"r": {"num_blocks": 2, "test_sets": {"test": {"dld": {
            str(d): {"mean": m, "std": s} for d, (m, s) in enumerate(zip(means, stds), start=1)}}}}}}
    (tmp_path / "on.json").write_text(json.dumps(acc([50.0, 30.0], [1.0, 0.0])))
    (tmp_path / "ca.json").write_text(json.dumps(acc([52.0, 30.0], [2.0, 0.0])))
    rows = teacher_cache_cost.wer_comparison(str(tmp_path / "on.json"), str(tmp_path / "ca.json"))
    assert [(r["depth"], r["diff"], r["diff_in_std"]) for r in rows] == [(1, 2.0, 1.0), (2, 0.0, None)]


def test_interleaved_passes_decode_each_utterance_with_every_pass_before_the_next():
    import random

    import numpy as np
    import torch

    import depth_budget

    calls = []

    class FakeDecoder:
        sample_rate, depth_budget, last_depth = 100, None, None

        def __init__(self, name):
            self.name = name

        def __call__(self, speech, depth=None):
            calls.append((self.name, int(speech[0]), torch.get_num_threads(), competitor.running))
            self.last_depth = depth
            return [[f"{self.name} {int(speech[0])}"]]

    class FakeCompetitor:
        running = False

        def start(self):
            self.running = True

        def stop(self):
            self.running = False

    competitor = FakeCompetitor()
    threads = torch.get_num_threads()
    decoders = {m: depth_budget.Decoder(FakeDecoder(m), d, u) for m, d, u in (("full", 4, None), ("depth1", 1, 1),
                                                                              ("adaptive", None, None))}
    utts = [(f"u{i}", np.full(50, i, dtype=np.float32)) for i in range(4)]
    out = depth_budget.decode_interleaved(decoders, utts, load_at=2, competitor=competitor, seed=3)
    assert [c[1] for c in calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # every pass, then the next utterance
    orders = [tuple(c[0] for c in calls[i:i + 3]) for i in range(0, 12, 3)]
    assert all(sorted(o) == sorted(decoders) for o in orders)
    rng = random.Random(3)  # the order is the seeded shuffle, afresh per utterance
    assert orders == [tuple(depth_budget.pass_order(list(decoders), rng)) for _ in range(4)]
    assert [c[3] for c in calls] == [False] * 6 + [True] * 6 and not competitor.running  # stopped at the end
    assert {c[2] for c in calls if c[0] == "depth1" and c[3]} == {1}  # depth 1's threads under the load
    assert {c[2] for c in calls if c[0] != "depth1" or not c[3]} == {threads} == {torch.get_num_threads()}
    assert [r["loaded"] for r in out["full"]] == [False, False, True, True]
    assert [r["depth"] for r in out["depth1"]] == [1] * 4 and out["adaptive"][3]["text"] == "adaptive 3"
    assert out["full"][0]["duration"] == pytest.approx(0.5)


def test_the_pass_order_puts_every_pass_after_every_other():
    """A rotation would keep each pass's predecessor; the shuffle does not."""
    import random

    import depth_budget

    modes = ["full", "depth1", "fixed", "adaptive_blind", "adaptive"]
    rng = random.Random(0)
    follows = set()
    for _ in range(200):
        order = depth_budget.pass_order(modes, rng)
        assert sorted(order) == sorted(modes)
        follows |= set(zip(order, order[1:]))
    assert follows == {(a, b) for a in modes for b in modes if a != b}


def test_misses_against_depth1_split_by_the_depth_the_pass_chose():
    import depth_budget

    def rec(key, depth, rtf, loaded=True):
        return {"key": key, "depth": depth, "rtf": rtf, "loaded": loaded}

    adaptive = [rec("a", 3, 0.9, loaded=False), rec("b", 1, 1.2), rec("c", 2, 1.1), rec("d", 1, 0.8)]
    depth1 = [rec("a", 1, 0.2, loaded=False), rec("b", 1, 1.1), rec("c", 1, 0.5), rec("d", 1, 1.6)]
    pair = depth_budget.against_depth1(adaptive, depth1, budget=1.0)
    assert pair["misses_at_depth1"] == 1 and pair["misses_deeper"] == 1  # b at depth 1, c at depth 2
    assert pair["depth1_misses"] == 2 and pair["both_missed"] == 1  # b and d; both on b
    assert pair["utterances_at_depth1"] == 2  # a is before the load
    assert pair["rtf_over_depth1_median"] == pytest.approx((1.2 / 1.1 + 0.8 / 1.6) / 2)
    with pytest.raises(ValueError, match="different utterances"):
        depth_budget.against_depth1(adaptive, depth1[::-1], budget=1.0)
