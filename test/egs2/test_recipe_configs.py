"""Every recipe's training configs: DDP-safe students, one checkpoint-selection
criterion for teacher, LD and DLD, and the file dld.sh decodes is the one that
criterion writes."""
import re
from pathlib import Path

import pytest
import yaml

EGS2 = Path(__file__).resolve().parents[2] / "egs2"
TRAIN_CONFIGS = sorted(p for p in EGS2.glob("*/asr1/conf/**/train_*.yaml"))
CRITERION = ["valid", "loss_ctc", "min"]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_recipes_have_training_configs():
    assert {p.relative_to(EGS2).parts[0] for p in TRAIN_CONFIGS} >= {
        "mini_dld", "fsdd_dld", "librispeech_dld"}


@pytest.mark.parametrize("config", TRAIN_CONFIGS, ids=lambda p: str(p.relative_to(EGS2)))
def test_training_configs_select_on_the_full_depth_ctc_loss(config):
    assert _load(config)["best_model_criterion"] == [CRITERION]


@pytest.mark.parametrize("config", [p for p in TRAIN_CONFIGS if _load(p)["encoder"].startswith("dld_")],
                         ids=lambda p: str(p.relative_to(EGS2)))
def test_dynamic_students_allow_unused_parameters_under_ddp(config):
    assert _load(config).get("unused_parameters") is True


def test_dld_sh_decodes_the_model_that_criterion_averages():
    dld_sh = (EGS2 / "TEMPLATE/dld1/dld.sh").read_text()
    default = re.search(r"^inference_asr_model=(\S+)", dld_sh, re.M).group(1)
    assert default == ".".join(CRITERION[:2]) + ".ave.pth"


@pytest.mark.parametrize("name", ["train_teacher", "train_student", "train_teacher_hybrid", "train_student_hybrid"])
def test_librispeech_conformer_configs_follow_espnet_librispeech_100(name):
    conf = _load(EGS2 / f"librispeech_dld/asr1/conf/{name}.yaml")
    assert (conf["accum_grad"], conf["use_amp"], conf["batch_bins"]) == (4, True, 16000000)


STUDENT_CONFIGS = [p for p in TRAIN_CONFIGS if _load(p).get("model") == "dld"]


@pytest.mark.parametrize("config", STUDENT_CONFIGS, ids=lambda p: str(p.relative_to(EGS2)))
def test_kd_normalisation_follows_what_measured_best_at_the_students_depth(config):
    """At 12 blocks (AN4) the KL summed per utterance won on train_dev; at 6 blocks (mini_dld) the
    frame mean did (docs/an4.md, README's ablations): each student config carries its depth's winner."""
    conf = _load(config)
    expected = "utterance" if conf["encoder_conf"]["num_blocks"] >= 12 else "frame"
    assert conf["model_conf"].get("kd_normalize", "frame") == expected
