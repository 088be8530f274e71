"""The WavLM recipe configs and ``run.sh --encoder wavlm``: the configs build
the intended models, the option reaches dld.sh, bad values stop at once."""
from pathlib import Path

import pytest
import torch
import yaml
from recipe_copy import REPO, copy_recipe, run_recipe
from torchaudio.models import wavlm_base

from espnet_dld.asr.dld_espnet_model import DLDESPnetASRModel
from espnet_dld.asr.encoder.dld_wavlm_encoder import MASK_EMBEDDING, DLDWavLMEncoder, WavLMEncoder
from espnet_dld.tasks.asr import ASRTask

DYNAMIC = {"layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped"}


def build(config: Path, tmp_path: Path, n_tokens: int = 10, *extra: str):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(n_tokens - 3)] + ["<sos/eos>"]) + "\n")
    args = ASRTask.get_parser().parse_args(["--config", str(config), "--token_list", str(tokens), *extra])
    return ASRTask.build_model(args)


@pytest.mark.parametrize("recipe", ["mini_dld", "fsdd_dld"])
def test_tiny_wavlm_configs_train_a_raw_waveform_dld_student(recipe, tmp_path):
    conf = REPO / "egs2" / recipe / "asr1" / "conf" / "tuning"
    teacher_conf = yaml.safe_load((conf / "train_teacher_wavlm_tiny.yaml").read_text())
    student_conf = yaml.safe_load((conf / "train_student_wavlm_tiny.yaml").read_text())
    assert {k: v for k, v in student_conf["encoder_conf"].items() if k not in DYNAMIC} == teacher_conf["encoder_conf"]
    teacher = build(conf / "train_teacher_wavlm_tiny.yaml", tmp_path)
    student = build(conf / "train_student_wavlm_tiny.yaml", tmp_path, 10, "--model_conf", "kd_weight=0.0")
    assert type(teacher.encoder) is WavLMEncoder and type(student.encoder) is DLDWavLMEncoder
    assert teacher.frontend is None and teacher.normalize is None and teacher.specaug is None
    assert list(teacher.state_dict()) == list(student.state_dict())  # --student_init teacher works
    speech = torch.randn(2, 16000)
    student.train()
    loss, stats, _ = student(speech, torch.tensor([16000, 12000]), torch.tensor([[2, 3, 4], [3, 4, -1]]),
                             torch.tensor([3, 2]))
    loss.backward()
    assert torch.isfinite(loss) and 1 <= stats["n_active_layers"].item() <= 6
    assert student.encoder.feature_extractor.conv_layers[0].conv.weight.grad is not None  # random init: trained
    enc, lens = student.eval().encode(speech, torch.tensor([16000, 12000]))
    assert enc.shape == (2, 49, 96) and lens.tolist() == [49, 37]  # 20 ms frames


def test_librispeech_wavlm_configs_are_wavlm_base_plus(tmp_path):
    conf = REPO / "egs2/librispeech_dld/asr1/conf"
    teacher_conf = yaml.safe_load((conf / "train_teacher_wavlm.yaml").read_text())
    student_conf = yaml.safe_load((conf / "train_student_wavlm.yaml").read_text())
    assert {k: v for k, v in student_conf["encoder_conf"].items() if k not in DYNAMIC} == teacher_conf["encoder_conf"]
    assert student_conf["model_conf"]["ctc_weight"] == 1.0
    # frozen encoder steps (both) and dropped layers (student) leave parameters without gradients under DDP
    assert teacher_conf["unused_parameters"] is True and student_conf["unused_parameters"] is True
    student = build(conf / "train_student_wavlm.yaml", tmp_path, 256, "--model_conf", "kd_weight=0.0")
    assert isinstance(student, DLDESPnetASRModel) and student.ctc.ctc_lo.out_features == 256
    reference = {k.replace("encoder.transformer.layers.", "encoders.").replace("encoder.transformer.", "")
                 .replace("encoder.feature_projection.", "feature_projection."): v.shape
                 for k, v in wavlm_base().state_dict().items()}
    ours = {k: v.shape for k, v in student.encoder.state_dict().items() if k != "num_updates"}
    assert ours.pop(MASK_EMBEDDING) == (768,)
    assert ours == reference  # torchaudio's WavLM Base (= Base+ architecture), key for key
    assert student.encoder.mask_generator.mask_prob == 0.65


def test_run_sh_encoder_option(tmp_path):
    mini = copy_recipe("mini_dld", tmp_path / "mini" / "asr1")
    r = run_recipe(mini, ["--encoder", "hubert"], timeout=60)
    assert r.returncode != 0 and "--encoder must be one of conformer, conformer_conv1d, wavlm, got 'hubert'" in r.stderr
    assert not (mini / "data").exists()
    # a stage past the last one: dld.sh checks its options, then does nothing
    r = run_recipe(mini, ["--encoder", "wavlm", "--stage", "99"], timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "--teacher_config conf/tuning/train_teacher_wavlm_tiny.yaml" in r.stdout + r.stderr
    assert "--feats_normalize none --expdir exp/wavlm" in r.stdout + r.stderr
    libri = copy_recipe("librispeech_dld", tmp_path / "libri" / "asr1")
    r = run_recipe(libri, ["--encoder", "wavlm", "--wavlm_checkpoint", "/nonexistent/WavLM-Base+.pt"], timeout=60)
    assert r.returncode != 0
    assert "'/nonexistent/WavLM-Base+.pt' does not exist" in r.stderr and "docs/wavlm.md" in r.stderr
    ckpt = tmp_path / "WavLM-Base+.pt"
    ckpt.write_bytes(b"")
    r = run_recipe(libri, ["--encoder", "wavlm", "--stage", "99"], timeout=120, env={"WAVLM_CHECKPOINT": str(ckpt)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = r.stdout + r.stderr
    assert f"--teacher_args --encoder_conf pretrained_path={ckpt}" in log
    assert "--teacher_config conf/train_teacher_wavlm.yaml" in log and "--expdir exp/wavlm" in log
