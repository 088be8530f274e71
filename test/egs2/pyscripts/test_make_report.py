"""make_report.py: tables, relative WER, RTF, plots and results.json from a
synthetic decode tree; partial trees; the nothing-found error."""
import json
import logging

import pytest

from make_report import main, make_report, parse_exp_dirs

TAG = "decode_ctc_greedy"
N = 4
RATE = 16000
# WER per depth; decode_seconds per depth for 10 s of audio -> RTF = seconds / 10.
WER = {"ld": {1: 40.0, 2: 30.0, 3: 25.0, 4: 20.0}, "dld": {1: 30.0, 2: 24.0, 3: 20.0, 4: 19.0}}
SECONDS = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0}


def decode(exp, test_set, sub, depth, wer=None, seconds=None, layers=None):
    d = exp / TAG / test_set / sub
    d.mkdir(parents=True)
    if seconds is not None:
        stats = {"depth": depth, "active_layers": layers, "utterances": 5, "input_samples": 10 * RATE,
                 "decode_seconds": seconds, "encoder_seconds": seconds / 2}
        (d / "decode_stats.json").write_text(json.dumps(stats))
    if wer is not None:
        (d / "score").mkdir()
        (d / "score" / "score.json").write_text(json.dumps(
            {"wer": wer, "cer": None, "substitutions": 1, "deletions": 0, "insertions": 0, "ref_words": 10,
             "utterances": 5, "missing_hyps": 0}))


def full_tree(root, test_set="test"):
    exps = {m: root / f"asr_{m}" for m in ("teacher", "ld", "dld")}
    decode(exps["teacher"], test_set, f"depth{N}", None, wer=18.0, seconds=5.0)  # static: no active_layers
    for model in ("ld", "dld"):
        for k in range(1, N + 1):
            decode(exps[model], test_set, f"depth{k}", k, WER[model][k], SECONDS[k], list(range(N - k, N)))
    return exps


def run(exps, tmp_path, test_sets=("test",), **kw):
    return make_report(exps, list(test_sets), TAG, N, tmp_path / "report", RATE, **kw)


def table_rows(md):
    return [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]


def test_full_tree(tmp_path):
    exps = full_tree(tmp_path / "exp")
    tables = run(exps, tmp_path)
    out = tmp_path / "report"
    md = (out / "RESULTS.md").read_text()
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in table_rows(md)]
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0] == ["1", "3", "–", "40.00", "30.00", "-25.0", "–", "0.1000", "0.1000"]
    assert rows[1][1] == "2-3" and rows[1][5] == "-20.0"  # (24 - 30) / 30
    assert [r[2] for r in rows] == ["–", "–", "–", "18.00"]  # teacher only at full depth
    assert [r[6] for r in rows] == ["–", "–", "–", "0.5000"]
    assert rows[3][5] == "-5.0" and rows[3][8] == "0.4000"
    assert "Mean WER over depths: LD 28.75 (4/4 depths), DLD 23.25 (4/4 depths)." in md
    assert "![WER and RTF against depth, test](wer_rtf_test.png)" in md
    assert "| depth | blocks | teacher WER | LD WER | DLD WER | DLD vs LD (rel. %) | teacher RTF | LD RTF | DLD RTF |" in md
    assert table_rows(tables) == table_rows(md)
    png = (out / "wer_rtf_test.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    res = json.loads((out / "results.json").read_text())
    assert res["num_blocks"] == N and res["input_rate"] == RATE
    entry = res["test_sets"]["test"]
    assert entry["plot"] == "wer_rtf_test.png"
    assert entry["results"]["dld"]["2"]["rtf"] == pytest.approx(0.2)
    assert entry["results"]["teacher"]["4"]["wer"] == 18.0
    row2 = entry["rows"][1]
    assert row2["depth"] == 2 and row2["dld_vs_ld_rel"] == pytest.approx(-20.0)
    assert row2["teacher_wer"] is None and row2["ld_rtf"] == pytest.approx(0.2)
    assert entry["mean_wer"]["ld"] == pytest.approx(28.75) and entry["mean_wer"]["dld"] == pytest.approx(23.25)


def test_static_full_dir_and_decode_prefix(tmp_path):
    exp = tmp_path / "exp" / "asr_teacher"
    decode(exp, "test", "full", None, wer=17.5, seconds=2.0)
    (exp / TAG).rename(exp / "decode_greedy")  # --inference_tag greedy finds decode_greedy
    make_report({"teacher": exp}, ["test"], "greedy", N, tmp_path / "r", RATE)
    rows = table_rows((tmp_path / "r" / "RESULTS.md").read_text())
    assert "| 4 | all | 17.50 |" in rows[3] and "0.2000" in rows[3]
    assert rows[0].startswith("| 1 | – | – | – | – | – | – | – | – |")


def test_partial_tree_only_dld_some_depths(tmp_path, caplog):
    root = tmp_path / "exp"
    dld = root / "asr_dld"
    decode(dld, "test", "depth1", 1, wer=30.0, seconds=1.0, layers=[3])
    decode(dld, "test", "depth4", 4, wer=None, seconds=4.0, layers=[0, 1, 2, 3])  # not scored
    decode(dld, "test", "depth3", 3, wer=20.0, seconds=None)  # no stats
    exps = {"teacher": root / "asr_teacher", "ld": root / "asr_ld", "dld": dld}
    with caplog.at_level(logging.WARNING):
        run(exps, tmp_path, test_sets=("test", "dev"))
    assert "not scored" in caplog.text
    md = (tmp_path / "report" / "RESULTS.md").read_text()
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in table_rows(md)]
    assert rows[0][2:] == ["–", "–", "30.00", "–", "–", "–", "0.1000"]
    assert rows[1][1:] == ["–"] * 8
    assert rows[2][4] == "20.00" and rows[2][8] == "–"
    assert rows[3][4] == "–" and rows[3][8] == "0.4000"
    assert "LD – (0/4 depths), DLD 25.00 (2/4 depths)" in md
    assert "## dev" in md and "No results found" in md
    assert (tmp_path / "report" / "wer_rtf_test.png").is_file()
    assert not (tmp_path / "report" / "wer_rtf_dev.png").exists()
    res = json.loads((tmp_path / "report" / "results.json").read_text())
    assert res["test_sets"]["dev"]["rows"] == [] and res["test_sets"]["dev"]["plot"] is None
    assert set(res["test_sets"]["test"]["results"]) == {"dld"}


def test_nothing_found_names_directories(tmp_path):
    exps = {"ld": tmp_path / "exp" / "asr_ld", "dld": tmp_path / "exp" / "asr_dld"}
    with pytest.raises(FileNotFoundError) as err:
        run(exps, tmp_path, test_sets=("test", "dev"))
    msg = str(err.value)
    for p in ("asr_ld", "asr_dld"):
        for t in ("test", "dev"):
            assert str(tmp_path / "exp" / p / TAG / t) in msg
    assert not (tmp_path / "report").exists()


def test_inconsistent_inputs_are_errors(tmp_path):
    exp = tmp_path / "exp" / "asr_dld"
    decode(exp, "test", "depth2", 3, wer=10.0, seconds=1.0)
    with pytest.raises(ValueError, match="depth 3 but the folder says 2"):
        run({"dld": exp}, tmp_path)
    exp2 = tmp_path / "exp" / "asr_ld"
    decode(exp2, "test", "depth9", 9, wer=10.0, seconds=1.0)
    with pytest.raises(ValueError, match="outside 1..4"):
        run({"ld": exp2}, tmp_path)
    with pytest.raises(ValueError, match="unknown label 'big'"):
        parse_exp_dirs(["big=exp/x"])
    with pytest.raises(ValueError, match="LABEL=DIR"):
        parse_exp_dirs(["exp/x"])


def test_cli_prints_tables(tmp_path, capsys):
    exps = full_tree(tmp_path / "exp")
    main(["--exp_dirs", *(f"{m}={p}" for m, p in exps.items()), "--test_sets", "test", "--inference_tag", TAG,
          "--input_rate", str(RATE), "--num_blocks", str(N), "--out_dir", str(tmp_path / "out"), "--title", "T"])
    out = capsys.readouterr().out
    assert "## test" in out and "| 4 | 0-3 | 18.00 | 20.00 | 19.00 |" in out
    assert (tmp_path / "out" / "RESULTS.md").read_text().startswith("# T\n")
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["command"].startswith("python pyscripts/make_report.py --exp_dirs teacher=")
    assert main(["--exp_dirs", f"dld={tmp_path / 'none'}", "--test_sets", "test", "--inference_tag", TAG,
                 "--num_blocks", "4", "--out_dir", str(tmp_path / "out2")]) == 1
    assert "no decode results" in capsys.readouterr().err
