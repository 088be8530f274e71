"""The embedded recipe end to end at tiny scale (stages 1-16), then the
packed model in a fresh process, then reruns that must change nothing."""
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from espnet_dld import Speech2Text
from espnet_dld.utils.scoring import corpus_wer
from recipe_copy import copy_recipe, run_recipe

TINY = [
    "--local_data_opts", "--train_utts 24 --dev_utts 6 --test_utts 6",
    "--teacher_args", "--max_epoch 1 --batch_size 6",
    "--student_args", "--max_epoch 1 --batch_size 6",
    "--depths", "1 6",
    "--nj", "2", "--inference_nj", "2",
]


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    recipe = copy_recipe("mini_dld", tmp_path_factory.mktemp("mini") / "asr1")
    r = run_recipe(recipe, TINY + ["--stage", "1", "--stop_stage", "16"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return recipe, r


def test_all_stages_produce_their_outputs(mini):
    recipe, r = mini
    for d in ("train", "dev", "test"):
        assert (recipe / "data" / d / "wav.scp").is_file()
    assert (recipe / "dump/raw/train/wav.scp").is_file() and (recipe / "dump/raw/test/utt2num_samples").is_file()
    assert (recipe / "data/token_list/char/tokens.txt").read_text().splitlines()[0] == "<blank>"
    assert (recipe / "exp/asr_stats_raw_char/train/feats_stats.npz").is_file()
    for exp in ("asr_teacher", "asr_ld", "asr_dld"):
        assert (recipe / "exp" / exp / "valid.loss_ctc.ave.pth").is_file()
    dec = recipe / "exp/asr_dld/decode_ctc_greedy/test"
    for depth, layers in ((1, [5]), (6, list(range(6)))):
        stats = json.loads((dec / f"depth{depth}" / "decode_stats.json").read_text())
        assert stats["active_layers"] == layers and stats["utterances"] == 6
        score = json.loads((dec / f"depth{depth}" / "score" / "score.json").read_text())
        # the score is of this decoding's hypotheses against the test references
        refs = dict(line.split(maxsplit=1) for line in (recipe / "dump/raw/test/text").read_text().splitlines())
        hyps = dict((line.split(maxsplit=1) + [""])[:2]
                    for line in (dec / f"depth{depth}/1best_recog/text").read_text().splitlines())
        assert score["utterances"] == 6 and sorted(hyps) == sorted(refs)
        assert score["wer"] == pytest.approx(corpus_wer([refs[u] for u in refs], [hyps[u] for u in refs]), abs=1e-3)
    assert (recipe / "exp/asr_teacher/decode_ctc_greedy/test/full/score/score.json").is_file()
    results = (recipe / "exp/report/RESULTS.md").read_text()
    assert "| depth |" in results and "wer_rtf_test.png" in results
    assert (recipe / "exp/report/wer_rtf_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (recipe / "exp/asr_dld/asr_model_dld.zip").is_file()
    table = yaml.safe_load((recipe / "exp/asr_dld/depth_table.yaml").read_text())  # stage 15, packed with it
    assert table["dev_set"] == "dev" and sorted(table["depths"]) == [1, 6]  # the valid set, decoded in 13
    assert (recipe / "exp/asr_dld/decode_ctc_greedy/dev/depth6/score/score.json").is_file()
    assert not (recipe / "exp/asr_ld/decode_ctc_greedy/dev").exists()  # only the DLD student's table
    with zipfile.ZipFile(recipe / "exp/asr_dld/asr_model_dld.zip") as z:
        assert any(n.endswith("asr_dld/depth_table.yaml") for n in z.namelist())
    assert "upload skipped" in r.stdout and "Successfully finished" in r.stdout
    assert "epoch results" in r.stdout  # training progress reaches the console


def test_packed_model_decodes_in_a_fresh_process(mini, tmp_path, monkeypatch):
    recipe, _ = mini
    zip_path = recipe / "exp/asr_dld/asr_model_dld.zip"
    wav = (recipe / "dump/raw/test/wav.scp").read_text().split()[1]
    code = f"""
import json, soundfile as sf
from espnet_model_zoo.downloader import ModelDownloader
from espnet_dld import Speech2Text
files = ModelDownloader({str(tmp_path / 'zoo')!r}).download_and_unpack({str(zip_path)!r})
assert files["asr_train_config"].endswith("config.yaml") and files["asr_model_file"].endswith(".pth")
s2t = Speech2Text.from_pretrained({str(zip_path)!r}, depth=2, beam_size=1, ctc_weight=1.0)
text = s2t(sf.read({wav!r})[0])[0][0]
print(json.dumps({{"layers": s2t.active_layers, "text": text}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={"ESPNET_DLD_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["layers"] == [2, 5]
    # the packed model decodes as the experiment's files do, in this process
    monkeypatch.chdir(recipe)  # the config names the feature statistics relative to the recipe
    exp = recipe / "exp/asr_dld"
    s2t = Speech2Text(exp / "config.yaml", exp / "valid.loss_ctc.ave.pth", depth=2, depth_policy="uniform",
                      beam_size=1, ctc_weight=1.0)
    assert s2t.active_layers == out["layers"] and out["text"] == s2t(sf.read(wav)[0])[0][0]


def test_rerunning_stages_changes_nothing(mini):
    recipe, _ = mini
    before = {k: tree_digest(recipe / k) for k in ("data", "dump")}
    r = run_recipe(recipe, TINY + ["--stage", "1", "--stop_stage", "5"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert {k: tree_digest(recipe / k) for k in ("data", "dump")} == before
    r = run_recipe(recipe, TINY + ["--stage", "13", "--stop_stage", "13"])
    assert r.returncode == 0, r.stderr[-3000:]
    # teacher, LD and DLD on test, and the DLD student on the dev set of its packed depth table
    skipped = {line.split(" is decoded, skipping")[0].split()[-1]
               for line in r.stdout.splitlines() if "is decoded, skipping" in line}
    assert skipped == {f"exp/asr_{m}/decode_ctc_greedy/test" for m in ("teacher", "ld", "dld")} \
        | {"exp/asr_dld/decode_ctc_greedy/dev"}


def test_bad_options_stop_before_any_work(tmp_path):
    recipe = copy_recipe("mini_dld", tmp_path / "asr1")
    for args, message in (
        (["--feats_type", "mfcc"], "--feats_type must be raw or fbank, got 'mfcc'"),
        (["--depths", "0 3"], "--depths takes positive integers, got '0'"),
        (["--students", "ld kd"], "--students takes ld and/or dld, got 'kd'"),
        (["--depth_profile", "yes"], "--depth_profile must be true or false, got 'yes'"),
        (["--depth_profile_criterion", "cer"], "--depth_profile_criterion must be ctc_loss or wer, got 'cer'"),
        (["--dev_table_set", "test"], "--dev_table_set test is one of --test_sets"),
        (["--no_such_option", "1"], "unknown option --no_such_option"),
    ):
        r = run_recipe(recipe, args, timeout=120)
        assert r.returncode != 0 and message in r.stdout + r.stderr
    assert not (recipe / "data").exists()


def test_fbank_features_through_training_and_decoding(tmp_path):
    """feats_type fbank: kaldiio features, no frontend, teacher on the same features."""
    recipe = copy_recipe("mini_dld", tmp_path / "asr1")
    r = run_recipe(recipe, TINY + ["--feats_type", "fbank", "--students", "dld", "--stop_stage", "13"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert (recipe / "dump/fbank/train/feats_dim").read_text().strip() == "80"
    conf = (recipe / "exp/asr_dld/config.yaml").read_text()
    assert "input_size: 80" in conf and "frontend: null" in conf
    for depth in (1, 6):
        assert (recipe / f"exp/asr_dld/decode_ctc_greedy/test/depth{depth}/score/score.json").is_file()


def test_cached_teacher_posteriors_train_the_dld_student(mini):
    """--teacher_posteriors cached: the teacher's posteriors are dumped once
    and the DLD student trains from them through ESPnet's data loader."""
    recipe, _ = mini
    args = TINY + ["--stage", "12", "--stop_stage", "12", "--students", "dld", "--teacher_posteriors", "cached",
                   "--teacher_topk", "4", "--exp_suffix", "_cached"]
    r = run_recipe(recipe, args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    cache = Path("dump/teacher_posteriors/asr_teacher_top4_T1.0")
    for d in ("train", "dev"):
        stats = yaml.safe_load((recipe / cache / d / "stats.yaml").read_text())
        shapes = (recipe / "exp/asr_stats_raw_char" / ("valid" if d == "dev" else "train") / "speech_shape")
        assert stats["utterances"] == len((recipe / "dump/raw" / d / "wav.scp").read_text().splitlines())
        assert stats["utterances"] >= len(shapes.read_text().splitlines())
        assert 16 * stats["frames"] <= stats["bytes"] <= 16 * stats["frames"] + 100 * stats["utterances"]
    conf = yaml.safe_load((recipe / "exp/asr_dld_cached/config.yaml").read_text())
    assert conf["model_conf"]["teacher_cache"] == str(cache)
    assert [str(cache / "train/prob.scp"), "teacher_topk_prob", "kaldi_ark"] in conf["train_data_path_and_name_and_type"]
    assert [str(cache / "dev/idx.scp"), "teacher_topk_idx", "kaldi_ark"] in conf["valid_data_path_and_name_and_type"]
    log = (recipe / "exp/asr_dld_cached/train.log").read_text()
    assert "teacher posteriors from the cache" in log and re.search(r"1epoch results: .*loss_kd=[0-9.]+", log)
    # a rerun keeps the cache; another temperature into the same cache dir name cannot happen (it is in the name)
    ark = recipe / cache / "train" / "prob.ark"
    before = ark.stat().st_mtime_ns
    r = run_recipe(recipe, args)
    assert r.returncode == 0 and "complete, kept" in r.stdout + r.stderr
    assert ark.stat().st_mtime_ns == before
    r = run_recipe(recipe, TINY + ["--teacher_posteriors", "offline"], timeout=120)
    assert r.returncode != 0 and "--teacher_posteriors must be online or cached, got 'offline'" in r.stdout + r.stderr


def test_depth_profile_is_measured_once_in_stage_12_used_in_13_and_packed_in_15(mini, tmp_path, monkeypatch):
    """Runs last on the shared recipe: it adds exp/asr_dld/depth_profile.yaml."""
    from espnet_dld.utils.checkpoint import file_sha256
    from espnet_dld.asr.encoder.depth_search import is_nested

    recipe, _ = mini
    args = TINY + ["--students", "dld", "--depth_profile", "true", "--stage", "12", "--stop_stage", "12"]
    r = run_recipe(recipe, args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    path = recipe / "exp/asr_dld/depth_profile.yaml"
    record = yaml.safe_load(path.read_text())
    assert record["data"] == {"speech": "dump/raw/dev/wav.scp", "text": "dump/raw/dev/text"}
    assert record["num_utterances"] == len((recipe / "dump/raw/dev/wav.scp").read_text().splitlines())
    assert record["model_sha256"] == file_sha256(recipe / "exp/asr_dld/valid.loss_ctc.ave.pth")
    assert sorted(record["profile"]) == [1, 2, 3, 4, 5, 6] and is_nested(record["profile"])
    assert f"depth 1: blocks {record['profile'][1]}" in r.stdout
    assert not (recipe / "exp/asr_ld/depth_profile.yaml").exists()  # --students dld only

    before = path.read_bytes(), path.stat().st_mtime_ns
    r = run_recipe(recipe, args[:-4] + ["--stage", "12", "--stop_stage", "13"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "was measured on this valid.loss_ctc.ave.pth (ctc_loss), skipping" in r.stdout
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert "dld: depth policy profile (blocks per depth from exp/asr_dld/depth_profile.yaml)" in r.stdout

    r = run_recipe(recipe, TINY + ["--stage", "15", "--stop_stage", "15", "--packed_model", "exp/with_profile.zip"])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    s2t = Speech2Text.from_pretrained(str(recipe / "exp/with_profile.zip"), depth=2, ctc_greedy=True)
    assert s2t.depth_policy == "profile" and s2t.active_layers == record["profile"][2]
