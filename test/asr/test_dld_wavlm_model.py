"""DLD with WavLM: a static ``wavlm`` teacher and a ``dld_wavlm`` student
trained through the CLI (fixture ``tiny_wavlm_exp``), the teacher checks,
and the conformer-teacher/WavLM-student frame-rate refusal."""
import argparse
import copy

import pytest
import torch
import yaml

from espnet_dld.asr.dld_espnet_model import DLDESPnetASRModel
from espnet_dld.asr.encoder.dld_wavlm_encoder import DLDWavLMEncoder, WavLMEncoder
from espnet_dld.tasks.asr import ASRTask


def config(exp, kind):
    return yaml.safe_load((exp.exps[kind] / "config.yaml").read_text())


@pytest.fixture()
def student(tiny_wavlm_exp):
    return ASRTask.build_model(argparse.Namespace(**config(tiny_wavlm_exp, "dld")))


def test_trained_configs_are_raw_waveform_wavlm_models(tiny_wavlm_exp):
    t, s = config(tiny_wavlm_exp, "teacher"), config(tiny_wavlm_exp, "dld")
    assert (t["encoder"], s["encoder"], s["model"]) == ("wavlm", "dld_wavlm", "dld")
    assert t["input_size"] == s["input_size"] == 1 and t["frontend"] is None and s["normalize"] is None
    assert s["encoder_conf"]["pretrained_path"] == str(tiny_wavlm_exp.pretrained)


def test_dld_training_step_with_wavlm_teacher_and_student(student, tiny_wavlm_exp):
    assert isinstance(student, DLDESPnetASRModel) and type(student.encoder) is DLDWavLMEncoder
    teacher = student.teacher
    assert type(teacher.encoder) is WavLMEncoder and not teacher.training
    before = copy.deepcopy(teacher.state_dict())
    student_before = copy.deepcopy(student.state_dict())
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    student.train()
    torch.manual_seed(0)
    loss, stats, _ = student(*tiny_wavlm_exp.batch())
    assert stats["loss"].item() == pytest.approx(stats["loss_ctc"].item() + stats["loss_kd"].item(), rel=1e-5)
    assert stats["loss_kd"].item() > 0 and 1 <= stats["n_active_layers"].item() <= 4
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    active = student.encoder.last_active_layers
    changed = {k for k, v in student.state_dict().items() if not torch.equal(student_before[k], v)}
    for i in range(4):
        ran = any(k.startswith(f"encoder.encoders.{i}.feed_forward.") for k in changed)
        assert ran == (i in active), (i, active)
    assert "ctc.ctc_lo.weight" in changed
    assert not any(k.startswith("encoder.feature_extractor.") for k in changed)  # frozen by default


def test_kd_is_zero_when_the_student_has_the_teachers_weights(student, tiny_wavlm_exp):
    student.load_state_dict(student.teacher.state_dict())  # wavlm and dld_wavlm share parameter names
    student.eval()
    speech, lens, _, _ = tiny_wavlm_exp.batch()
    with torch.no_grad():
        enc, enc_lens = student.encode(speech, lens)
        assert student.kd_loss(speech, lens, enc, enc_lens).item() == pytest.approx(0.0, abs=1e-6)
        student.encoder.set_depth(layers=[1, 2, 3])  # layer 0 dropped
        enc, enc_lens = student.encode(speech, lens)
        assert student.kd_loss(speech, lens, enc, enc_lens).item() > 1e-4


def test_conformer_teacher_with_wavlm_student_is_refused_for_its_frame_rate(student, tiny_wavlm_exp):
    """A conformer on 10 ms fbank with conv2d subsampling gives one frame per
    40 ms, WavLM one per 20 ms: the KL term is refused rather than misaligned."""
    targs = argparse.Namespace(**config(tiny_wavlm_exp, "teacher"))
    targs.input_size = None
    targs.frontend, targs.frontend_conf = "default", {"n_fft": 512, "hop_length": 160, "n_mels": 20}
    targs.encoder = "conformer"
    targs.encoder_conf = {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
                          "input_layer": "conv2d"}
    student.set_teacher(ASRTask.build_model(targs), "conformer_teacher")
    student.train()
    with pytest.raises(ValueError, match=r"conformer_teacher has another output frame rate.*teacher/student = 0.5"):
        student(*tiny_wavlm_exp.batch())


def test_teacher_loads_without_its_pretrained_checkpoint(tiny_wavlm_exp, tmp_path):
    """Once trained, neither teacher nor student needs the WavLM checkpoint
    they started from: their own weights are loaded."""
    from espnet_dld.asr.teacher import load_teacher

    moved = tmp_path / "WavLM-Tiny.pt"
    tiny_wavlm_exp.pretrained.rename(moved)
    try:
        exp = tiny_wavlm_exp.exps["teacher"]
        teacher = load_teacher(str(exp / "config.yaml"), str(exp / "1epoch.pth"))
        saved = torch.load(exp / "1epoch.pth", map_location="cpu")
        assert all(torch.equal(saved[k], v) for k, v in teacher.state_dict().items())
    finally:
        moved.rename(tiny_wavlm_exp.pretrained)
