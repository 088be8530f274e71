"""The training entry point: ESPnet's CLI with our classes."""
import re
import subprocess
import sys

import torch
import yaml


def test_print_config_lists_dld_options_without_offline_noise(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "espnet_dld.bin.asr_train", "--print_config", "--encoder", "dld_conformer",
         "--model", "dld"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    conf = yaml.safe_load(r.stdout)
    assert conf["encoder"] == "dld_conformer" and conf["model"] == "dld"
    assert conf["encoder_conf"]["layer_drop_prob"] == 0.5
    assert conf["encoder_conf"]["num_blocks"] == 6  # ESPnet's own option and default
    assert conf["model_conf"]["kd_weight"] == 1.0 and conf["model_conf"]["ctc_weight"] == 0.5
    assert "nltk_data" not in r.stderr and "Failed to import Flash" not in r.stdout


def test_unknown_encoder_is_refused_with_the_choices(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "espnet_dld.bin.asr_train", "--encoder", "dld_conformerr", "--print_config"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 2
    error = r.stderr.strip().splitlines()[-1]
    assert "--encoder: invalid choice: 'dld_conformerr'" in error
    choices = re.search(r"\(choose from (.*)\)", error).group(1)
    assert {"'dld_conformer'", "'dld_transformer'", "'dld_wavlm'", "'wavlm'", "'conformer'"} <= set(choices.split(", "))


def test_trained_students_save_only_student_weights(tiny_exp):
    for kind in ("ld", "dld"):
        exp = tiny_exp.exps[kind]
        conf = yaml.safe_load((exp / "config.yaml").read_text())
        assert conf["model"] == "dld" and conf["encoder"] == "dld_conformer"
        state = torch.load(exp / "valid.loss.ave.pth", map_location="cpu")
        teacher_state = torch.load(tiny_exp.exps["teacher"] / "valid.loss.ave.pth", map_location="cpu")
        assert set(state) == set(teacher_state)  # same keys as a static conformer, no teacher copy
        assert (exp / "checkpoint.pth").exists()  # --resume works from here
    dld_conf = yaml.safe_load((tiny_exp.exps["dld"] / "config.yaml").read_text())
    assert dld_conf["model_conf"]["kd_weight"] == 1.0
    assert dld_conf["model_conf"]["teacher_model"].endswith("teacher/1epoch.pth")
