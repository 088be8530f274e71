"""The recipe against bad inputs (issue 5): bad audio stops stage 3 with a
list or is dropped and listed in the experiment folder, transcripts too long
for CTC leave training in stage 10, depths beyond the encoder are refused
before any work, and a stage killed half-way leaves nothing a later stage
trusts."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from recipe_copy import PYSCRIPTS, REPO, copy_recipe, run_recipe
from tiny_experiment import make_corpus


def test_depths_beyond_the_student_are_refused_before_any_work(tmp_path):
    recipe = copy_recipe("mini_dld", tmp_path / "asr1")
    r = run_recipe(recipe, ["--depths", "1 7"], timeout=120)
    assert r.returncode != 0
    assert ("--depths 7 is out of range: --student_config conf/train_student.yaml has num_blocks 6, "
            "valid depths are 1..6") in r.stdout + r.stderr
    assert not (recipe / "data").exists() and not (recipe / "exp").exists()


def _data(recipe: Path, tmp_path: Path) -> dict:
    """data/{train,dev,test} of tone utterances; train gets a missing file, a
    stereo file and a transcript far too long for its audio."""
    for name, n, seed in (("train", 10, 0), ("dev", 4, 1), ("test", 4, 2)):
        src = make_corpus(tmp_path / f"corpus_{name}", n_utts=n, seed=seed)
        dst = recipe / "data" / name
        dst.mkdir(parents=True)
        for f in ("wav.scp", "text", "utt2spk"):
            (dst / f).write_text((src / f).read_text())
    train = recipe / "data" / "train"
    wav = dict(line.split(maxsplit=1) for line in (train / "wav.scp").read_text().splitlines())
    text = dict(line.split(maxsplit=1) for line in (train / "text").read_text().splitlines())
    utts = sorted(wav)
    missing, stereo, long_text = utts[1], utts[2], utts[3]
    wav[missing] = str(tmp_path / "gone.wav")
    sf.write(tmp_path / "stereo.wav", np.zeros((8000, 2), dtype=np.float32), 16000)
    wav[stereo] = str(tmp_path / "stereo.wav")
    text[long_text] = " ".join(["three"] * 40)
    (train / "wav.scp").write_text("".join(f"{u} {wav[u]}\n" for u in utts))
    (train / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))
    return {"missing": missing, "stereo": stereo, "long_text": long_text, "files": wav}


def test_bad_audio_stops_or_is_dropped_and_too_long_transcripts_leave_training(tmp_path):
    recipe = copy_recipe("mini_dld", tmp_path / "asr1")
    bad = _data(recipe, tmp_path)
    r = run_recipe(recipe, ["--stage", "3", "--stop_stage", "4"], timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"{bad['missing']}  {tmp_path / 'gone.wav'}: file not found" in out
    assert f"{bad['stereo']}  {tmp_path / 'stereo.wav'}: 2 channels" in out
    assert "rerun with --drop_bad_utts true" in out
    org = recipe / "dump/raw/org/train"
    assert sorted(p.name for p in org.iterdir()) == ["bad_utts.txt"]  # no .done: stage 4 would refuse

    r = run_recipe(recipe, ["--stage", "3", "--stop_stage", "10", "--drop_bad_utts", "true", "--nj", "1"],
                   timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    listed = (recipe / "exp/bad_utts/train.txt").read_text().splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        [bad["missing"], str(tmp_path / "gone.wav")], [bad["stereo"], str(tmp_path / "stereo.wav")]]
    assert "dropped 2 bad utterance(s) of train: listed in exp/bad_utts/train.txt" in out
    assert not (recipe / "exp/bad_utts/dev.txt").exists()
    kept = {line.split()[0] for line in (recipe / "dump/raw/train/wav.scp").read_text().splitlines()}
    assert bad["missing"] not in kept and bad["stereo"] not in kept and len(kept) == 8

    stats = recipe / "exp/asr_stats_raw_char/train"
    too_long = (stats / "ctc_too_long_utts.txt").read_text().splitlines()
    assert bad["long_text"] in [line.split("\t")[0] for line in too_long]
    assert f"kept {8 - len(too_long)} of 8 (transcript too long for CTC: {len(too_long)}" in out
    for shape in ("speech_shape", "text_shape.char"):
        keys = {line.split()[0] for line in (stats / shape).read_text().splitlines()}
        assert bad["long_text"] not in keys and len(keys) == 8 - len(too_long)


def test_format_audio_killed_half_way_leaves_no_file_a_later_stage_trusts(tmp_path):
    """SIGKILL while stage 3 writes converted audio: no wav.scp, no visible
    partial file; the rerun gives what an uninterrupted run gives."""
    data = make_corpus(tmp_path / "corpus", n_utts=6, seed=3)
    wav = dict(line.split(maxsplit=1) for line in (data / "wav.scp").read_text().splitlines())
    for i, (utt, path) in enumerate(sorted(wav.items())):  # 8 kHz copies: every file gets converted
        x, fs = sf.read(path)
        sf.write(tmp_path / f"{i}.wav", x[::2], fs // 2)
        wav[utt] = str(tmp_path / f"{i}.wav")
    (data / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in sorted(wav.items())))
    killer = (
        "import os, signal, sys\n"
        "import soundfile\n"
        "import format_audio\n"
        "real, calls = soundfile.write, []\n"
        "def write(path, *a, **k):\n"
        "    calls.append(path)\n"
        "    if len(calls) == 3:\n"
        "        open(path, 'wb').write(b'RIFF half')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(path, *a, **k)\n"
        "soundfile.write = write\n"
        "format_audio.main(sys.argv[1:])\n"
    )
    recipe = copy_recipe("mini_dld", tmp_path / "asr1")
    out = recipe / "dump/raw/org/train"  # where dld.sh's stage 3 writes the training set
    args = ["--in_dir", str(data), "--out_dir", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", killer] + args, env=dict(env, PYTHONPATH=f"{PYSCRIPTS}:{REPO}"),
                       capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL
    assert sorted(p.name for p in out.iterdir()) == ["data"]  # no wav.scp, text, ...
    written = sorted((out / "data").iterdir())
    partial = [p for p in written if p.name.startswith(".")]
    finished = [p for p in written if not p.name.startswith(".")]
    assert len(partial) == 1 and partial[0].read_bytes() == b"RIFF half"  # killed inside the third write
    assert len(finished) == 2 and all(sf.read(str(p))[0].size > 0 for p in finished)  # complete files only
    # the stage after it refuses the half-made folder (no .done: stage 3 did not finish) and writes nothing
    r = run_recipe(recipe, ["--stage", "4", "--stop_stage", "4"], timeout=120)
    assert r.returncode != 0
    assert "dump/raw/org/train/.done is missing: run stage 3 first" in r.stdout + r.stderr
    assert not (recipe / "dump/raw/train").exists()

    r = subprocess.run([sys.executable, str(PYSCRIPTS / "format_audio.py")] + args, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    clean = tmp_path / "clean"
    r = subprocess.run([sys.executable, str(PYSCRIPTS / "format_audio.py"), "--in_dir", str(data),
                        "--out_dir", str(clean)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(p.name for p in (clean / "data").iterdir())
    assert not partial[0].exists()  # the rerun cleared the partial file
    for p in (clean / "data").iterdir():
        assert (out / "data" / p.name).read_bytes() == p.read_bytes()
    assert (out / "wav.scp").read_text() == (clean / "wav.scp").read_text().replace(str(clean), str(out))
