"""egs2/tedlium3_dld on a generated TED-LIUM-3-layout tree (SPHERE talks
written here, STM files with scored, ignored, ``<unk>`` and bad segments):
stages 1-5 (segments, text, utt2spk, the dropped list and count), a tiny
stages 10-14 run end to end, and the messages when no corpus is there."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from recipe_copy import REPO, copy_recipe, run_recipe

from espnet_dld.data.kaldi_dir import read_data_dir, read_kv

FS = 16000
RECIPE = REPO / "egs2/tedlium3_dld/asr1"
NO_DOWNLOAD = ["--local_data_opts", "--download false"]
IGNORED = "ignore_time_segment_in_scoring"
WORDS = ["so", "the", "idea", "is", "simple", "we", "build", "a", "small", "model", "and", "it", "works", "well"]

# (talk, seconds of audio, STM lines as (start, end, words)); the talk name is also the STM speaker
TALKS = {
    "train": [
        ("AlGore_2009", 6.0, [(0.50, 2.00, "so the idea (2) is simple"), (2.30, 3.90, "it 's a <unk> model"),
                               (4.00, 5.50, IGNORED), (4.60, 5.90, "we build it <sil> well")]),
        ("BarryBarry_2010", 5.0, [(0.20, 1.60, "the model works well"), (1.80, 3.20, "and we 're simple"),
                                  (3.40, 4.95, "a small idea (BarryBarry_2010-340)")]),
        # one bad segment: it ends after the end of the 4 s recording
        ("CarolCole_2011", 4.0, [(0.30, 1.90, "we build a small model"), (2.10, 3.70, "it works"),
                                 (3.50, 4.60, "so the idea")]),
    ],
    "dev": [("DaveDodd_2012", 4.0, [(0.40, 1.80, "the idea works"), (2.00, 3.60, "a small <unk> model"),
                                    (3.60, 3.60, "zero length")])],
    "test": [("EveEllis_2013", 4.0, [(0.30, 1.70, "we build it"), (1.90, 3.50, "the model 's small")])],
}


def sphere(path: Path, seconds: float, seed: int) -> np.ndarray:
    """A recording in NIST SPHERE, 16-bit PCM: a tone per second, so cuts can be told apart."""
    t = np.arange(int(seconds * FS)) / FS
    x = 0.3 * np.sin(2 * np.pi * (200 + 100 * np.floor(t) + 10 * seed) * t)
    pcm = (x * 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), pcm, FS, format="NIST", subtype="PCM_16")
    return pcm


def write_tedlium_tree(parent: Path) -> dict:
    """TEDLIUM_release-3/legacy/<set>/{sph,stm} under ``parent``; returns the samples per talk."""
    samples = {}
    for name, talks in TALKS.items():
        root = parent / "TEDLIUM_release-3" / "legacy" / name
        for i, (talk, seconds, lines) in enumerate(talks):
            samples[talk] = sphere(root / "sph" / f"{talk}.sph", seconds, i)
            stm = [f"{talk} 1 {talk} {s:.2f} {e:.2f} <o,f0,male> {w}" for s, e, w in lines]
            (root / "stm").mkdir(parents=True, exist_ok=True)
            (root / "stm" / f"{talk}.stm").write_text("\n".join(stm) + "\n")
    return samples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    parent = tmp_path_factory.mktemp("tedlium")
    return parent, write_tedlium_tree(parent)


@pytest.fixture(scope="module")
def stages_1_to_5(corpus, tmp_path_factory):
    parent, samples = corpus
    recipe = copy_recipe("tedlium3_dld", tmp_path_factory.mktemp("ted") / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "5", "--nj", "1", "--nbpe", "30"] + NO_DOWNLOAD,
                   env={"TEDLIUM3": str(parent)}, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return recipe, samples, r


def kv(path: Path) -> dict:
    return {k: v for _, k, v in read_kv(path)}


def test_stage_1_writes_segments_text_and_utt2spk_as_espnet_does(stages_1_to_5):
    recipe, _, r = stages_1_to_5
    train = recipe / "data/train"
    assert (train / "segments").is_file()
    # wav.scp names one SPHERE recording per talk
    assert {k: Path(v).name for k, v in kv(train / "wav.scp").items()} == {
        t: f"{t}.sph" for t in ("AlGore_2009", "BarryBarry_2010", "CarolCole_2011")}
    text = kv(train / "text")
    assert text == {
        "AlGore_2009-0000050-0000200": "so the idea is simple",
        "AlGore_2009-0000230-0000390": "it's a [unk] model",
        "AlGore_2009-0000460-0000590": "we build it well",
        "BarryBarry_2010-0000020-0000160": "the model works well",
        "BarryBarry_2010-0000180-0000320": "and we're simple",
        "BarryBarry_2010-0000340-0000495": "a small idea",
        "CarolCole_2011-0000030-0000190": "we build a small model",
        "CarolCole_2011-0000210-0000370": "it works",
        "CarolCole_2011-0000350-0000460": "so the idea",
    }
    assert kv(train / "utt2spk") == {u: u.split("-")[0] for u in text}
    assert kv(recipe / "data/test/text") == {"EveEllis_2013-0000030-0000170": "we build it",
                                             "EveEllis_2013-0000190-0000350": "the model's small"}
    assert "data/train: 9 utterances from 3 talks; left out: 1 ignore_time_segment_in_scoring" in r.stdout


def test_training_segments_are_padded_without_meeting_their_neighbours(stages_1_to_5):
    recipe, _, _ = stages_1_to_5
    segs = {u: (rec, float(s), float(e)) for u, (rec, s, e) in
            ((k, v.split()) for k, v in kv(recipe / "data/train/segments").items())}
    assert segs["AlGore_2009-0000050-0000200"] == ("AlGore_2009", 0.35, 2.1)   # 0.15 s before, 0.1 s after
    assert segs["AlGore_2009-0000230-0000390"] == ("AlGore_2009", 2.15, 4.0)   # the gaps are wide enough
    assert segs["AlGore_2009-0000460-0000590"] == ("AlGore_2009", 4.45, 6.0)   # not past the recording's end
    assert segs["BarryBarry_2010-0000020-0000160"][1] == 0.05
    # the third CarolCole segment overlaps the second: neither grows into the other
    assert segs["CarolCole_2011-0000210-0000370"][2] == 3.7
    assert segs["CarolCole_2011-0000350-0000460"][1:] == (3.5, 4.6)  # bad: ends after 4 s, left for stage 3
    dev = {k: v.split() for k, v in kv(recipe / "data/dev/segments").items()}
    assert dev["DaveDodd_2012-0000040-0000180"] == ["DaveDodd_2012", "0.4", "1.8"]  # dev and test: as in the STM


def test_stage_3_cuts_the_segments_and_lists_the_bad_ones(stages_1_to_5):
    recipe, samples, r = stages_1_to_5
    for u in read_data_dir(recipe / "dump/raw/test"):
        talk, start, end = u.utt_id.rsplit("-", 2)
        audio, fs = soundfile.read(u.wav, dtype="int16")
        assert fs == FS and u.wav.endswith(".wav")
        np.testing.assert_array_equal(audio, samples[talk][int(start) * FS // 100:int(end) * FS // 100])
    bad = (recipe / "exp/bad_utts/dev.txt").read_text().splitlines()
    assert len(bad) == 1
    utt, where, reason = bad[0].split("\t")
    assert utt == "DaveDodd_2012-0000360-0000360" and reason.endswith("end <= start")
    assert where == "data/dev/segments:3"  # the file as dld.sh names it, relative to the recipe
    assert "dropped 1 bad utterance(s) of dev" in r.stdout
    assert "dropping 1 bad segment(s) of 3" in r.stdout + r.stderr
    # the train set: the bad segment in each speed-perturbed copy, named by its line
    bad = sorted(line.split("\t")[0] for line in (recipe / "exp/bad_utts/train_sp.txt").read_text().splitlines())
    assert bad == [f"{p}CarolCole_2011-0000350-0000460" for p in ("", "sp0.9-", "sp1.1-")]
    assert "ends after the end of CarolCole_2011 (4.000 s)" in (recipe / "exp/bad_utts/train_sp.txt").read_text()
    dumped = kv(recipe / "dump/raw/org/train_sp/utt2num_samples")
    assert len(dumped) == 3 * 8 and "CarolCole_2011-0000350-0000460" not in dumped
    # speed perturbation: one copy per talk, the segment lasts 1/f as long
    n = {f: int(dumped[f"{p}AlGore_2009-0000050-0000200"]) for f, p in ((1.0, ""), (0.9, "sp0.9-"), (1.1, "sp1.1-"))}
    assert n[1.0] == int(round(1.75 * FS)) and abs(n[0.9] - n[1.0] / 0.9) <= 20 and abs(n[1.1] - n[1.0] / 1.1) <= 20
    assert sorted(p.name for p in (recipe / "dump/speed_perturb/train").iterdir()) == sorted(
        f"sp{f}-{t}.wav" for f in ("0.9", "1.1") for t in ("AlGore_2009", "BarryBarry_2010", "CarolCole_2011"))


def test_stage_5_keeps_unk_as_one_bpe_piece(stages_1_to_5):
    recipe, _, _ = stages_1_to_5
    tokens = (recipe / "data/token_list/bpe_unigram30/tokens.txt").read_text().split()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>" and "[unk]" in tokens


def test_rerun_of_stages_1_to_5_changes_nothing(stages_1_to_5, corpus):
    recipe, _, _ = stages_1_to_5
    digest = {p: p.read_bytes() for p in sorted((recipe / "data").rglob("*")) if p.is_file()}
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "5", "--nj", "1", "--nbpe", "30"] + NO_DOWNLOAD,
                   env={"TEDLIUM3": str(corpus[0] / "TEDLIUM_release-3")}, timeout=600)  # the other layout
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {p: p.read_bytes() for p in sorted((recipe / "data").rglob("*")) if p.is_file()} == digest


def tiny_configs(recipe: Path) -> list:
    """The recipe's own configs at test size: same model families and structure."""
    out = []
    for name in ("train_teacher", "train_student"):
        conf = yaml.safe_load((recipe / f"conf/{name}.yaml").read_text())
        conf["encoder_conf"].update(output_size=32, attention_heads=2, linear_units=64, num_blocks=3,
                                    cnn_module_kernel=7)
        conf.update(batch_type="folded", batch_size=4, max_epoch=1, use_amp=False, keep_nbest_models=1)
        conf["scheduler_conf"]["warmup_steps"] = 10
        conf.pop("batch_bins")
        path = recipe / f"conf/{name}_tiny.yaml"
        path.write_text(yaml.safe_dump(conf))
        out += [f"--{name.split('_')[1]}_config", str(path.relative_to(recipe))]
    return out


@pytest.mark.timeout(2700)  # three trainings and a dozen Python start-ups: slow on a loaded 2-core machine
def test_stages_10_to_14_give_a_wer_per_depth(stages_1_to_5):
    recipe, _, _ = stages_1_to_5
    r = run_recipe(recipe, ["--stage", "10", "--stop_stage", "14", "--nj", "1", "--inference_nj", "1",
                            "--nbpe", "30", "--ngpu", "0", "--num_workers", "0", "--test_sets", "test",
                            "--depths", "1 3"] + tiny_configs(recipe), timeout=2600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    refs = kv(recipe / "dump/raw/test/text")
    for student in ("ld", "dld"):
        for depth in (1, 3):
            out = recipe / f"exp/asr_{student}/decode_ctc_greedy/test/depth{depth}"
            stats = json.loads((out / "decode_stats.json").read_text())
            assert len(stats["active_layers"]) == depth  # depth 1 of 3 blocks really ran one
            hyps = (out / "1best_recog/text").read_text().splitlines()
            assert sorted(line.split()[0] for line in hyps) == sorted(refs)
            score = json.loads((out / "score/score.json").read_text())
            assert score["utterances"] == len(refs) == 2 and score["wer"] >= 0
    results = (recipe / "exp/report/RESULTS.md").read_text()
    rows = [line for line in results.splitlines() if re.match(r"\| *[13] *\|", line)]
    assert "| depth |" in results and len(rows) >= 2, results


def test_no_corpus_and_no_network_says_what_to_place_where(tmp_path):
    recipe = copy_recipe("tedlium3_dld", tmp_path / "asr1")
    target = tmp_path / "nowhere"
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1", "--local_data_opts",
                            "--download true --data_url http://127.0.0.1:9/TEDLIUM_release-3.tgz"],
                   env={"TEDLIUM3": str(target)}, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    if "downloading http://127.0.0.1:9/TEDLIUM_release-3.tgz" in out:  # wget is installed
        assert "download of http://127.0.0.1:9/TEDLIUM_release-3.tgz failed" in out
    assert f"no TED-LIUM 3 at '{target}'" in out and "(--download true)" in out
    assert "TEDLIUM_release-3/legacy/{train,dev,test}/sph/<talk>.sph" in out and "set TEDLIUM3" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asr1"]  # no partial corpus, no temporary folder
    assert not (recipe / "data").exists()


def test_unset_tedlium3_and_no_download_names_db_sh(tmp_path):
    recipe = copy_recipe("tedlium3_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1"] + NO_DOWNLOAD, env={"TEDLIUM3": ""}, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "no TED-LIUM 3 at 'downloads'" in out and "in db.sh" in out
    assert not (recipe / "downloads").exists()


def test_malformed_stm_line_is_named(tmp_path):
    write_tedlium_tree(tmp_path)
    stm = tmp_path / "TEDLIUM_release-3/legacy/test/stm/EveEllis_2013.stm"
    stm.write_text(stm.read_text() + "EveEllis_2013 1 EveEllis_2013 4.0x 5.0 <o,f0,male> oops\n")
    r = subprocess.run([sys.executable, str(RECIPE / "local/data_prep.py"), "--tedlium_root", str(tmp_path),
                        "--out", str(tmp_path / "data")], capture_output=True, text=True)
    assert r.returncode == 1 and f"{stm}:3: expected '<talk> <channel>" in r.stderr


def test_missing_talk_recording_is_named(tmp_path):
    write_tedlium_tree(tmp_path)
    gone = tmp_path / "TEDLIUM_release-3/legacy/train/sph/BarryBarry_2010.sph"
    gone.unlink()
    r = subprocess.run([sys.executable, str(RECIPE / "local/data_prep.py"), "--tedlium_root", str(tmp_path),
                        "--out", str(tmp_path / "data")], capture_output=True, text=True)
    assert r.returncode == 1 and "the recordings of 1 talks are missing" in r.stderr and str(gone) in r.stderr


GATE_KEYS = {"layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped"}


@pytest.mark.parametrize("teacher,student", [("train_teacher.yaml", "train_student.yaml"),
                                             ("tuning/train_teacher_conv2d.yaml", "tuning/train_student_conv2d.yaml")])
def test_configs_are_the_papers_12_block_conformer_with_gates(teacher, student):
    t, s = (yaml.safe_load((RECIPE / "conf" / name).read_text()) for name in (teacher, student))
    assert s["encoder"] == "dld_conformer" and s["model"] == "dld" and t["encoder_conf"]["num_blocks"] == 12
    assert t["encoder_conf"]["output_size"] == 256 and t["encoder_conf"]["linear_units"] == 1024
    assert {k: v for k, v in s["encoder_conf"].items() if k not in GATE_KEYS} == t["encoder_conf"]
    assert s["encoder_conf"]["layer_drop_prob"] == 0.5 and s["unused_parameters"] is True
    assert t["model_conf"]["ctc_weight"] == s["model_conf"]["ctc_weight"] == 1.0
    for key in ("batch_bins", "accum_grad", "max_epoch", "use_amp", "optim_conf", "scheduler_conf", "frontend_conf"):
        assert t[key] == s[key], key
    run_sh = (RECIPE / "run.sh").read_text()
    assert '--nbpe 256' in run_sh and '--speed_perturb_factors "0.9 1.0 1.1"' in run_sh
