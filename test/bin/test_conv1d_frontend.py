"""Everything downstream of training with ``input_layer: conv1d4x``: a
``static_conformer`` teacher and a ``dld_conformer`` student decode at every
depth, pack, export (loadable where espnet_dld is imported, as the export's
config says), dump teacher posteriors of the student's frame counts, and get
depth profiles."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
import torch
import yaml

from espnet_dld import Speech2Text
from espnet_dld.asr.dld_espnet_model import check_cached_lengths
from espnet_dld.asr.encoder.static_encoders import StaticConformerEncoder
from espnet_dld.asr.encoder.subsampling import Conv1dSubsampling4
from espnet_dld.bin.depth_profile import main as depth_profile_main
from espnet_dld.bin.dump_teacher_posteriors import dump
from espnet_dld.bin.export_depth import export_depth
from espnet_dld.tasks.asr import ASRTask

REPO = Path(__file__).resolve().parents[2]
DECODE = dict(ctc_greedy=True, device="cpu")

# Stock ESPnet's Speech2Text on an export, in a fresh process: first with
# nothing else imported (must fail), then after only the import its config's
# ``requires`` names.
LOAD_EXPORT = r"""
import importlib, json, sys, zipfile
import numpy as np, torch, yaml
from espnet_model_zoo.downloader import ModelDownloader
from espnet2.bin.asr_inference import Speech2Text
args = json.loads(sys.argv[1])
files = ModelDownloader(args["zoo"]).download_and_unpack(args["zip"])
requires = yaml.safe_load(open(files["asr_train_config"]))["requires"]
out = {"requires": requires}
try:
    Speech2Text(**files, device="cpu")
    out["loads_without"] = True
except Exception as e:
    out["loads_without"], out["error_without"] = False, f"{type(e).__name__}: {e}"
importlib.import_module(requires["import"])
s2t = Speech2Text(**files, device="cpu")
data = np.load(args["batch"])
with torch.no_grad():
    enc, enc_lens = s2t.asr_model.encode(torch.from_numpy(data["speech"]), torch.from_numpy(data["lengths"]))
np.savez(args["out"], enc=enc.numpy(), enc_lens=enc_lens.numpy())
encoder = type(s2t.asr_model.encoder)
out["encoder"] = encoder.__module__ + "." + encoder.__name__
print(json.dumps(out))
"""


def files(exp):
    return exp / "config.yaml", exp / "1epoch.pth"


def wave(exp, i=0):
    return sf.read((exp.data / "wav.scp").read_text().splitlines()[i].split()[1])[0]


def test_teacher_and_student_have_the_conv1d_front_end_and_shared_names(tiny_conv1d_exp):
    from espnet2.torch_utils.load_pretrained_model import load_pretrained_model

    teacher_conf = yaml.safe_load((tiny_conv1d_exp.exps["teacher"] / "config.yaml").read_text())
    assert teacher_conf["encoder"] == "static_conformer" and teacher_conf["encoder_conf"]["input_layer"] == "conv1d4x"
    student = ASRTask.build_model(argparse.Namespace(**yaml.safe_load(files(tiny_conv1d_exp.exps["dld"])[0].read_text())))
    teacher_state = torch.load(files(tiny_conv1d_exp.exps["teacher"])[1], map_location="cpu")
    assert isinstance(student.encoder.embed, Conv1dSubsampling4)
    assert list(student.state_dict()) == list(teacher_state)
    load_pretrained_model(str(files(tiny_conv1d_exp.exps["teacher"])[1]), student, "cpu")  # --student_init teacher
    assert all(torch.equal(student.state_dict()[k], v) for k, v in teacher_state.items())


def test_speech2text_every_depth_and_from_pretrained(tiny_conv1d_exp, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    cfg, pth = files(tiny_conv1d_exp.exps["dld"])
    s2t = Speech2Text(cfg, pth, **DECODE)
    x = torch.tensor(wave(tiny_conv1d_exp), dtype=torch.float32)[None]
    n = torch.tensor([x.shape[1]])
    outputs, hyps = {}, {}
    for k in range(1, 5):
        s2t.set_depth(k)
        assert len(s2t.active_layers) == k
        with torch.no_grad():
            outputs[k] = s2t.asr_model.encode(x, n)
        hyps[k] = s2t(x[0].numpy())[0][0]
    frames = {k: (o[0].shape[1], int(o[1][0])) for k, o in outputs.items()}
    assert len(set(frames.values())) == 1  # the same frames at every depth
    assert not torch.allclose(outputs[1][0], outputs[4][0])
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    zip_path = tmp_path / "model.zip"
    pack(["asr", "--asr_train_config", str(cfg), "--asr_model_file", str(pth),
          "--option", str(tiny_conv1d_exp.stats / "train" / "feats_stats.npz"), "--outpath", str(zip_path)])
    packed = Speech2Text.from_pretrained(str(zip_path), depth=2, **DECODE)
    assert packed.active_layers == [1, 3] and packed(x[0].numpy())[0][0] == hyps[2]


def test_export_names_what_it_needs_and_loads_with_only_that(tiny_conv1d_exp, tmp_path):
    cfg, pth = files(tiny_conv1d_exp.exps["dld"])
    r = export_depth(tmp_path / "d2.zip", depth=2, asr_train_config=cfg, asr_model_file=pth)
    assert r["layers"] == [1, 3] and r["max_abs_diff"] < 1e-5 and r["requires"]["import"] == "espnet_dld"
    with zipfile.ZipFile(tmp_path / "d2.zip") as z:
        conf = yaml.safe_load(z.read(next(n for n in z.namelist() if n.endswith("config.yaml"))))
    assert conf["encoder"] == "static_conformer" and conf["model"] == "espnet"
    assert conf["encoder_conf"]["input_layer"] == "conv1d4x" and conf["encoder_conf"]["num_blocks"] == 2
    assert conf["requires"]["python_package"].startswith("espnet_dld>=")

    speech, lengths, _, _ = tiny_conv1d_exp.batch(3)
    np.savez(tmp_path / "batch.npz", speech=speech.numpy(), lengths=lengths.numpy())
    args = {"zip": str(tmp_path / "d2.zip"), "zoo": str(tmp_path / "zoo"), "batch": str(tmp_path / "batch.npz"),
            "out": str(tmp_path / "enc.npz")}
    # this tree's espnet_dld on the path, nothing of it imported until the config says so
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "HOME": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", LOAD_EXPORT, json.dumps(args)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["loads_without"] is False and "static_conformer" in out["error_without"]
    assert out["encoder"] == f"{StaticConformerEncoder.__module__}.StaticConformerEncoder"
    s2t = Speech2Text(cfg, pth, depth=2, **DECODE)
    with torch.no_grad():
        enc, enc_lens = s2t.asr_model.encode(speech, lengths)
    saved = np.load(tmp_path / "enc.npz")
    assert np.array_equal(saved["enc_lens"], enc_lens.numpy())
    assert np.allclose(saved["enc"], enc.numpy(), atol=1e-5, rtol=1e-4)


def test_teacher_cache_frames_equal_the_students_in_padded_batches(tiny_conv1d_exp, tmp_path):
    teacher_cfg, teacher_pth = files(tiny_conv1d_exp.exps["teacher"])
    cache = dump(str(teacher_cfg), str(teacher_pth), f"{tiny_conv1d_exp.data}/wav.scp,speech,sound",
                 str(tmp_path / "cache"), "train", topk=3, temperature=1.0, key_file=None)
    probs = dict(kaldiio.load_scp(str(cache / "prob.scp")))
    cfg, pth = files(tiny_conv1d_exp.exps["dld"])
    student = Speech2Text(cfg, pth, **DECODE).asr_model
    speech, lengths, _, _ = tiny_conv1d_exp.batch(4)
    utts = [line.split()[0] for line in (tiny_conv1d_exp.data / "wav.scp").read_text().splitlines()[:4]]
    assert len(set(lengths.tolist())) > 1  # really a padded batch
    with torch.no_grad():
        _, student_lens = student.encode(speech, lengths)
    cached = torch.tensor([probs[u].shape[0] for u in utts])
    assert torch.equal(cached, student_lens)  # per-utterance frames: no padding slack needed
    check_cached_lengths(cached, student_lens, lengths, str(cache))


def test_depth_profile(tiny_conv1d_exp, tmp_path):
    cfg, pth = files(tiny_conv1d_exp.exps["dld"])
    folder = tmp_path / "dld"
    folder.mkdir()
    for f in (cfg, pth):
        (folder / f.name).write_bytes(f.read_bytes())
    data = tiny_conv1d_exp.data
    assert depth_profile_main(["--asr_model_file", str(folder / pth.name),
                               "--data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
                               "--data_path_and_name_and_type", f"{data}/text,text,text"]) == 0
    profile = yaml.safe_load((folder / "depth_profile.yaml").read_text())["profile"]
    assert sorted(profile) == [1, 2, 3, 4] and all(len(profile[k]) == k for k in profile)
    s2t = Speech2Text(folder / "config.yaml", folder / pth.name, depth=2, **DECODE)
    assert s2t.active_layers == sorted(profile[2])
