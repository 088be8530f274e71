"""egs2/an4_dld's data stages: ESPnet's AN4 split and text on the shared copy
(WAV), the same stages on a generated tree in the layout of CMU's
an4_sphere.tar.gz (NIST SPHERE), and the messages when no corpus is there."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from recipe_copy import REPO, copy_recipe, run_recipe

from espnet_dld.data.kaldi_dir import read_data_dir

SHARED_AN4 = REPO.parent / "shared" / "data" / "an4"
NO_DOWNLOAD = ["--local_data_opts", "--download false"]


@pytest.fixture(scope="module")
def shared_an4(tmp_path_factory):
    if not (SHARED_AN4 / "etc" / "an4_train.transcription").is_file():
        pytest.skip(f"the shared AN4 copy is not at {SHARED_AN4}")
    recipe = copy_recipe("an4_dld", tmp_path_factory.mktemp("an4") / "asr1")
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1"] + NO_DOWNLOAD,
                   env={"AN4": str(SHARED_AN4)}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {d: read_data_dir(recipe / "data" / d) for d in ("train_nodev", "train_dev", "test")}


def test_shared_copy_gives_espnets_split(shared_an4):
    assert {d: len(u) for d, u in shared_an4.items()} == {"train_nodev": 848, "train_dev": 100, "test": 130}
    train = shared_an4["train_dev"] + shared_an4["train_nodev"]
    ids = [u.utt_id for u in train]
    # train_dev is the first 100 training utterances in C-sorted id order
    assert sorted(ids, key=str.encode) == ids
    assert len({u.spk for u in train}) == 74 and len({u.spk for u in shared_an4["test"]}) == 10
    assert not {u.spk for u in train} & {u.spk for u in shared_an4["test"]}
    assert all(u.utt_id.startswith(u.spk + "-") and Path(u.wav).is_file() for u in train)


def test_shared_copy_text_is_normalised_as_espnet_does(shared_an4):
    by_id = {u.utt_id: u.text for d in shared_an4.values() for u in d}
    assert by_id["fash-an251-b"] == "YES"  # "<s> YES </s> (an251-fash-b)"
    assert by_id["fcaw-an406-b"] == "RUBOUT G M E F THREE NINE"  # test file: no markers
    # the reference word counts of ESPnet's published AN4 scoring tables (egs2/an4/asr1/README.md)
    assert [sum(len(u.text.split()) for u in shared_an4[d]) for d in ("test", "train_dev")] == [773, 591]
    words = {w for text in by_id.values() for w in text.split()}
    assert not words & {"<s>", "</s>"} and all(w.isalpha() and w.isupper() for w in words)


def write_sphere_tree(root: Path) -> dict:
    """A tiny AN4 in the layout of CMU's an4_sphere.tar.gz; returns the samples
    written per utterance id (speaker first, as the recipe names them)."""
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    samples = {}
    words = ["A B C D", "E F G H", "I J K L", "M N O P", "Q R S T", "U V W X", "Y Z ONE", "TWO THREE"]
    plan = [("train", "an4_clstk", spk, n) for spk, n in (("fash", 251), ("fbbh", 1), ("mcen", 300))
            for n in (n, n + 1)] + [("test", "an4test_clstk", "fcaw", n) for n in (406, 407)]
    for i, (split, folder, spk, n) in enumerate(plan):
        source = f"an{n}-{spk}-b"
        audio = (rng.uniform(-0.3, 0.3, 16000 * 3 // 4) * 32767).astype(np.int16)
        path = root / "wav" / folder / spk / f"{source}.sph"
        path.parent.mkdir(parents=True, exist_ok=True)
        # both byte orders a SPHERE header can declare (sample_byte_format 10 and 01)
        soundfile.write(str(path), audio, 16000, format="NIST", subtype="PCM_16", endian=("BIG", "LITTLE")[i % 2])
        text = words[i % len(words)]
        lines[split].append(f"<s> {text} </s> ({source})" if split == "train" else f"{text} ({source})")
        samples[f"{spk}-an{n}-b"] = (audio, text)
    (root / "etc").mkdir(parents=True)
    for split, rows in lines.items():
        (root / "etc" / f"an4_{split}.transcription").write_text("\n".join(rows) + "\n")
    return samples


def test_sphere_layout_stages_1_to_5(tmp_path):
    root = tmp_path / "an4"
    samples = write_sphere_tree(root)
    assert soundfile.info(str(next(root.rglob("*.sph")))).format == "NIST"
    recipe = copy_recipe("an4_dld", tmp_path / "asr1")
    # BPE as the recipe does, with fewer pieces: 4 training transcripts cannot fill ESPnet's 30
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "5", "--nj", "1", "--nbpe", "20",
                            "--local_data_opts", "--ndev_utt 2 --download false"],
                   env={"AN4": str(root)}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sets = {d: read_data_dir(recipe / "data" / d) for d in ("train_nodev", "train_dev", "test")}
    assert [u.utt_id for u in sets["train_dev"]] == ["fash-an251-b", "fash-an252-b"]
    assert [u.utt_id for u in sets["test"]] == ["fcaw-an406-b", "fcaw-an407-b"]
    assert len(sets["train_nodev"]) == 4 and all(u.wav.endswith(".sph") for u in sets["train_nodev"])
    # stage 3 read the SPHERE files with soundfile and dumped them as WAV, sample for sample
    for u in read_data_dir(recipe / "dump/raw/train_nodev") + read_data_dir(recipe / "dump/raw/test"):
        audio, fs = soundfile.read(u.wav, dtype="int16")
        assert fs == 16000 and u.wav.endswith(".wav")
        np.testing.assert_array_equal(audio, samples[u.utt_id][0])
        assert u.text == samples[u.utt_id][1]
    tokens = (recipe / "data/token_list/bpe_unigram20/tokens.txt").read_text().split()
    letters = {c for u in sets["train_nodev"] for c in u.text.replace(" ", "")}
    assert tokens[0] == "<blank>" and tokens[-1] == "<sos/eos>" and len(tokens) == 20
    assert letters <= set(tokens)


def test_no_corpus_says_what_to_place_where(tmp_path):
    recipe = copy_recipe("an4_dld", tmp_path / "asr1")
    empty = tmp_path / "nowhere"
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1"] + NO_DOWNLOAD, env={"AN4": str(empty)}, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"no AN4 corpus at {empty}" in out and "an4_sphere.tar.gz" in out and "wav/an4_clstk/<speaker>" in out
    assert not (recipe / "data").exists()


def test_missing_recording_is_named(tmp_path):
    root = tmp_path / "an4"
    write_sphere_tree(root)
    gone = root / "wav/an4_clstk/mcen/an300-mcen-b.sph"
    gone.unlink()
    r = subprocess.run([sys.executable, str(REPO / "egs2/an4_dld/asr1/local/data_prep.py"), "--an4_root", str(root),
                        "--out", str(tmp_path / "data"), "--ndev_utt", "2"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "1 of its recordings are missing" in r.stderr and str(gone.with_suffix("")) in r.stderr
    assert not (tmp_path / "data").exists()


def test_malformed_transcript_line_is_named(tmp_path):
    root = tmp_path / "an4"
    write_sphere_tree(root)
    trans = root / "etc/an4_test.transcription"
    trans.write_text(trans.read_text() + "HELLO an999-fcaw-b\n")
    r = subprocess.run([sys.executable, str(REPO / "egs2/an4_dld/asr1/local/data_prep.py"), "--an4_root", str(root),
                        "--out", str(tmp_path / "data"), "--ndev_utt", "2"], capture_output=True, text=True)
    assert r.returncode == 1 and f"{trans}:3: expected" in r.stderr


GATE_KEYS = {"layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped"}


@pytest.mark.parametrize("teacher,student", [("train_teacher.yaml", "train_student.yaml"),
                                             ("tuning/train_teacher_d256.yaml", "tuning/train_student_d256.yaml"),
                                             ("tuning/train_teacher_conv1d.yaml", "tuning/train_student_conv1d.yaml")])
def test_students_are_the_teachers_12_blocks_with_gates(teacher, student):
    """--student_init teacher copies the teacher's weights: the encoders must
    match but for the gates, at the paper's depth, CTC only."""
    conf = REPO / "egs2/an4_dld/asr1/conf"
    t, s = (yaml.safe_load((conf / name).read_text()) for name in (teacher, student))
    # conv1d4x is not an ESPnet front end: its static teacher is our static_conformer
    static = "static_conformer" if t["encoder_conf"]["input_layer"] == "conv1d4x" else "conformer"
    assert t["encoder"] == static and s["encoder"] == "dld_conformer" and s["model"] == "dld"
    assert t["encoder_conf"]["num_blocks"] == 12
    assert {k: v for k, v in s["encoder_conf"].items() if k not in GATE_KEYS} == t["encoder_conf"]
    assert t["model_conf"]["ctc_weight"] == s["model_conf"]["ctc_weight"] == 1.0
    assert t["frontend_conf"] == s["frontend_conf"] and t["specaug_conf"] == s["specaug_conf"]


def test_failed_download_leaves_nothing_behind(tmp_path):
    recipe = copy_recipe("an4_dld", tmp_path / "asr1")
    target = tmp_path / "an4"
    r = run_recipe(recipe, ["--stage", "1", "--stop_stage", "1", "--local_data_opts",
                            "--download true --data_url http://127.0.0.1:9/an4_sphere.tar.gz"],
                   env={"AN4": str(target)}, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    if "downloading http://127.0.0.1:9/an4_sphere.tar.gz" in out:  # wget is installed
        assert "download of http://127.0.0.1:9/an4_sphere.tar.gz failed" in out
    assert f"no AN4 corpus at {target}" in out and "(--download true)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asr1"]  # no partial corpus, no temporary folder
