"""pyscripts/score.py and espnet_dld.utils.scoring: corpus-level WER/CER
counts, missing and unknown hypotheses, empty references, and the files it
writes."""
import json
import logging

import pytest

from score import main

from espnet_dld.utils.scoring import corpus_wer, read_text, score, score_to_dir


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def ref(tmp_path):
    return write(tmp_path / "ref", ["u1 a b c", "u2 d e f"])


def test_one_sub_one_del_over_six_words(tmp_path, ref):
    hyp = write(tmp_path / "hyp", ["u2 d f", "u1 a x c"])  # order does not matter
    summary = score_to_dir(ref, hyp, tmp_path / "score")
    assert summary["wer"] == pytest.approx(100 * 2 / 6, abs=1e-3)
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == (1, 1, 0)
    assert (summary["ref_words"], summary["utterances"], summary["missing_hyps"]) == (6, 2, 0)
    assert summary["cer"] is None
    on_disk = json.loads((tmp_path / "score" / "score.json").read_text())
    assert on_disk == summary
    result = (tmp_path / "score" / "result.txt").read_text()
    assert "| Sum/Avg" in result and "33.3" in result and "%WER 33.33 [ 2 / 6" in result
    assert not list((tmp_path / "score").glob(".*tmp*"))


def test_corpus_wer_is_not_mean_of_utterance_wers(tmp_path):
    ref = write(tmp_path / "ref", ["u1 a", "u2 b c d e"])
    hyp = write(tmp_path / "hyp", ["u1 x", "u2 b c d e"])
    summary, _ = score(ref, hyp)
    assert summary["wer"] == pytest.approx(20.0)  # 1/5, not (100 + 0) / 2


def test_the_recipe_score_and_corpus_wer_are_one_computation(tmp_path, ref):
    """The recipe's score.json, the depth search's WER criterion and the
    export benchmark all use corpus_wer's arithmetic (empty hypotheses included)."""
    hyp = write(tmp_path / "hyp", ["u1 a x c q", "u2"])
    summary, _ = score(ref, hyp)
    assert corpus_wer(["a b c", "d e f"], ["a x c q", ""]) == pytest.approx(summary["wer"], abs=1e-4)
    assert corpus_wer(["a b c", "d e f"], ["a x c q", ""]) == pytest.approx(100 * 5 / 6)


def test_insertions_and_empty_hypothesis_line(tmp_path, ref):
    hyp = write(tmp_path / "hyp", ["u1 a b c z z", "u2"])  # "u2" alone: empty hypothesis, not missing
    summary, records = score(ref, hyp)
    assert (summary["insertions"], summary["deletions"], summary["missing_hyps"]) == (2, 3, 0)
    assert summary["wer"] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert [r["errors"] for r in records] == [2, 3]


def test_cer_counts_characters(tmp_path, ref):
    hyp = write(tmp_path / "hyp", ["u1 a b c", "u2 d e g"])
    summary, _ = score(ref, hyp, cer=True)
    # "a b c" + "d e f" = 10 characters (spaces count), one substituted.
    assert summary["ref_chars"] == 10 and summary["cer"] == pytest.approx(10.0)
    assert summary["wer"] == pytest.approx(100 / 6, abs=1e-3)


def test_case_is_compared_as_is_unless_lowercase(tmp_path, ref):
    hyp = write(tmp_path / "hyp", ["u1 A b c", "u2 d e f"])
    assert score(ref, hyp)[0]["substitutions"] == 1
    assert score(ref, hyp, lowercase=True)[0]["wer"] == 0.0


def test_missing_hypothesis_counts_as_deletions_with_warning(tmp_path, ref, caplog):
    hyp = write(tmp_path / "hyp", ["u1 a b c"])
    with caplog.at_level(logging.WARNING):
        summary = score_to_dir(ref, hyp, tmp_path / "score")
    assert summary["missing_hyps"] == 1
    assert summary["deletions"] == 3 and summary["wer"] == pytest.approx(50.0)
    assert "1 of 2 utterances" in caplog.text and "u2" in caplog.text
    assert "u2: %WER 100.00" in (tmp_path / "score" / "result.txt").read_text()


def test_unknown_hypothesis_is_an_error(tmp_path, ref):
    hyp = write(tmp_path / "hyp", ["u1 a b c", "u2 d e f", "zz9 extra"])
    with pytest.raises(ValueError, match="'zz9'"):
        score(ref, hyp)


def test_empty_reference_is_an_error(tmp_path):
    ref = write(tmp_path / "ref", ["u1 a b c", "u_empty"])
    hyp = write(tmp_path / "hyp", ["u1 a b c"])
    with pytest.raises(ValueError, match="u_empty"):
        score(ref, hyp)


def test_bad_inputs_name_the_file(tmp_path, ref):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_text(tmp_path / "nope")
    dup = write(tmp_path / "dup", ["u1 a", "u1 b"])
    with pytest.raises(ValueError, match=r"dup:2: utterance 'u1' appears twice"):
        read_text(dup)


def test_worst_utterances_listed_first(tmp_path):
    ref = write(tmp_path / "ref", [f"u{i} a b c d" for i in range(30)])
    hyp = write(tmp_path / "hyp", [f"u{i} " + " ".join(["a", "b", "c", "d"][: 4 - (i % 5)]) for i in range(30)])
    score_to_dir(ref, hyp, tmp_path / "s", num_worst=3)
    text = (tmp_path / "s" / "result.txt").read_text()
    listed = [line.split(":")[0] for line in text.splitlines() if line.startswith("u")]
    assert listed == ["u14", "u19", "u24"]  # 4 errors each, ties by id
    assert "3 of 24 shown" in text


def test_cli(tmp_path, ref, capsys):
    hyp = write(tmp_path / "hyp", ["u1 a x c", "u2 d f"])
    main(["--ref", str(ref), "--hyp", str(hyp), "--out_dir", str(tmp_path / "o"), "--cer", "true"])
    assert "WER 33.33%" in capsys.readouterr().out
    summary = json.loads((tmp_path / "o" / "score.json").read_text())
    assert summary["cer"] is not None
    bad = write(tmp_path / "bad", ["nobody x"])
    assert main(["--ref", str(ref), "--hyp", str(bad), "--out_dir", str(tmp_path / "o2")]) == 1
    assert "nobody" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
