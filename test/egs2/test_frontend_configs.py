"""The recipes' front-end choices: librispeech_dld and tedlium3_dld use the DLD authors'
Conv1d front end (conv2d under conf/tuning/), the small recipes keep conv2d
(conv1d under conf/tuning/); each variant differs from its counterpart only
there, and teacher and student share parameter names (--student_init teacher)."""
from pathlib import Path

import pytest
import yaml
from recipe_copy import REPO

from espnet_dld.asr.encoder.subsampling import Conv1dSubsampling4
from espnet_dld.tasks.asr import ASRTask

DYNAMIC = {"layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped"}
FRONT_END = {"encoder", "input_layer"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def without_front_end(conf: dict) -> dict:
    conf = dict(conf, encoder_conf={k: v for k, v in conf["encoder_conf"].items() if k != "input_layer"})
    conf.pop("encoder")
    return conf


def build(config: Path, tmp_path: Path, n_tokens: int, *extra: str):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(n_tokens - 3)] + ["<sos/eos>"]) + "\n")
    args = ASRTask.get_parser().parse_args(["--config", str(config), "--token_list", str(tokens), *extra])
    return ASRTask.build_model(args)


PAIRS = [  # (recipe, default config, its other-front-end variant, front end of the default)
    ("librispeech_dld", "train_teacher", "tuning/train_teacher_conv2d", "conv1d4x"),
    ("librispeech_dld", "train_student", "tuning/train_student_conv2d", "conv1d4x"),
    ("librispeech_dld", "train_teacher_hybrid", "tuning/train_teacher_hybrid_conv2d", "conv1d4x"),
    ("librispeech_dld", "train_student_hybrid", "tuning/train_student_hybrid_conv2d", "conv1d4x"),
    ("tedlium3_dld", "train_teacher", "tuning/train_teacher_conv2d", "conv1d4x"),
    ("tedlium3_dld", "train_student", "tuning/train_student_conv2d", "conv1d4x"),
    ("mini_dld", "train_teacher", "tuning/train_teacher_conv1d", "conv2d"),
    ("mini_dld", "train_student", "tuning/train_student_conv1d", "conv2d"),
    ("fsdd_dld", "train_teacher", "tuning/train_teacher_conv1d", "conv2d"),
    ("fsdd_dld", "train_student", "tuning/train_student_conv1d", "conv2d"),
]


@pytest.mark.parametrize("recipe, default, variant, front_end", PAIRS)
def test_variants_differ_only_in_the_front_end(recipe, default, variant, front_end):
    conf = REPO / "egs2" / recipe / "asr1" / "conf"
    a, b = load(conf / f"{default}.yaml"), load(conf / f"{variant}.yaml")
    assert a["encoder_conf"]["input_layer"] == front_end
    assert {a["encoder_conf"]["input_layer"], b["encoder_conf"]["input_layer"]} == {"conv1d4x", "conv2d"}
    assert without_front_end(a) == without_front_end(b)
    teacher = "teacher" in default
    for c in (a, b):  # a conv1d teacher needs our static encoder; ESPnet's otherwise
        if c["encoder_conf"]["input_layer"] == "conv1d4x":
            assert c["encoder"] == ("static_conformer" if teacher else "dld_conformer")
        else:
            assert c["encoder"] == ("conformer" if teacher else "dld_conformer")


@pytest.mark.parametrize("recipe, suffix", [("librispeech_dld", ""), ("tedlium3_dld", ""), ("fsdd_dld", "_conv1d")])
def test_conv1d_teacher_and_student_build_with_shared_parameter_names(recipe, suffix, tmp_path):
    conf = REPO / "egs2" / recipe / "asr1" / "conf" / ("tuning" if suffix else "")
    t_conf, s_conf = load(conf / f"train_teacher{suffix}.yaml"), load(conf / f"train_student{suffix}.yaml")
    assert {k: v for k, v in s_conf["encoder_conf"].items() if k not in DYNAMIC} == t_conf["encoder_conf"]
    n_tokens = 256 if recipe in ("librispeech_dld", "tedlium3_dld") else 14
    teacher = build(conf / f"train_teacher{suffix}.yaml", tmp_path, n_tokens)
    student = build(conf / f"train_student{suffix}.yaml", tmp_path, n_tokens, "--model_conf", "kd_weight=0.0")
    assert isinstance(teacher.encoder.embed, Conv1dSubsampling4) and isinstance(student.encoder.embed, Conv1dSubsampling4)
    assert list(teacher.state_dict()) == list(student.state_dict())


def test_run_sh_selects_the_other_front_end(tmp_path):
    from recipe_copy import copy_recipe, run_recipe

    # a stage past the last one: dld.sh checks its options (and that the configs exist), then does nothing
    for recipe, option, variant, expdir in (("mini_dld", "conformer_conv1d", "conv1d", "exp/conv1d"),
                                            ("librispeech_dld", "conformer_conv2d", "conv2d", "exp/conv2d")):
        copy = copy_recipe(recipe, tmp_path / recipe / "asr1")
        r = run_recipe(copy, ["--encoder", option, "--stage", "99"], timeout=120)
        log = r.stdout + r.stderr
        assert r.returncode == 0, log[-3000:]
        assert (f"--teacher_config conf/tuning/train_teacher_{variant}.yaml "
                f"--student_config conf/tuning/train_student_{variant}.yaml --expdir {expdir}") in log
