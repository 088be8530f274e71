"""The one trained-model loader: zip or config + .pth, strict, no teacher,
and importing the teacher code does not reach our task (no import cycles)."""
import subprocess
import sys

import pytest
import torch

from espnet_dld.asr.trained_model import load_trained_model, trained_model_files
from espnet_dld.utils.checkpoint import CheckpointError, read_state_dict


@pytest.mark.parametrize("module", ["espnet_dld.asr.teacher", "espnet_dld.asr.teacher_cache",
                                    "espnet_dld.asr.trained_model"])
def test_teacher_code_does_not_import_our_task(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('espnet_dld.tasks')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("first", ["espnet_dld.asr.dld_espnet_model", "espnet_dld.tasks.asr",
                                   "espnet_dld.asr.teacher_cache"])
def test_each_module_imports_first_in_a_fresh_interpreter(first):
    """With a cycle, one of these orders fails on a half-initialised module."""
    code = f"import {first}; import espnet_dld.tasks.asr as t; print(t.ASRTask.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "ASRTask"


def test_loads_a_dld_student_strictly_without_its_teacher(tiny_exp, tmp_path):
    exp = tiny_exp.exps["dld"]
    model, args = load_trained_model(exp / "1epoch.pth")  # config.yaml beside it
    assert type(model).__name__ == "DLDESPnetASRModel" and model.teacher is None
    assert args.model_conf["teacher_model"]  # it was trained with one
    expected = read_state_dict(exp / "1epoch.pth")
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    # a checkpoint of another depth does not half-load
    state = dict(expected)
    state.pop(next(k for k in state if k.startswith("encoder.encoders.3.")))
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="missing keys: encoder.encoders.3"):
        load_trained_model(tmp_path / "cut.pth", exp / "config.yaml")


def test_a_packed_zip_loads_the_same_weights(tiny_exp, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    exp = tiny_exp.exps["teacher"]
    zip_path = tmp_path / "teacher.zip"
    pack(["asr", "--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "1epoch.pth"),
          "--option", str(tiny_exp.stats / "train" / "feats_stats.npz"), "--outpath", str(zip_path)])
    packed, _ = load_trained_model(zip_path)
    plain, _ = load_trained_model(exp / "1epoch.pth")
    assert packed.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in packed.state_dict().items())
    with pytest.raises(ValueError, match=f"--asr_model_file={zip_path} is a packed zip.*leave --asr_train_config"):
        trained_model_files(zip_path, exp / "config.yaml")


def test_errors_name_the_option_and_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"model_conf.teacher_model: {tmp_path}/t.pth does not exist"):
        trained_model_files(tmp_path / "t.pth", model_option="model_conf.teacher_model")
    (tmp_path / "t.pth").touch()
    with pytest.raises(FileNotFoundError, match=f"config file {tmp_path}/config.yaml does not exist"):
        trained_model_files(tmp_path / "t.pth")
    with pytest.raises(ValueError, match="--asr_model_file is required"):
        trained_model_files(None)
