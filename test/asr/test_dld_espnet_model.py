"""The dld model: teacher handling, the KD term, refusals."""
import argparse
import copy

import pytest
import torch
import yaml

from espnet_dld.asr.dld_espnet_model import DLDESPnetASRModel
from espnet_dld.asr.teacher import float32_ctc_logits
from espnet_dld.tasks.asr import ASRTask


def student_args(tiny_exp, **model_conf):
    args = yaml.safe_load((tiny_exp.exps["dld"] / "config.yaml").read_text())
    args["model_conf"] = {**args["model_conf"], **model_conf}
    return argparse.Namespace(**args)


@pytest.fixture()
def student(tiny_exp):
    return ASRTask.build_model(student_args(tiny_exp))


def test_teacher_is_frozen_eval_and_outside_the_module_tree(student):
    assert isinstance(student, DLDESPnetASRModel)
    teacher = student.teacher
    assert teacher is not None and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    student.train()
    assert student.training and not teacher.training
    assert not any(k.startswith("teacher") or "_teacher" in k for k in student.state_dict())
    student_params = {id(p) for p in student.parameters()}
    assert not any(id(p) in student_params for p in teacher.parameters())


def test_training_step_changes_student_not_teacher(student, tiny_exp):
    before = copy.deepcopy(student.teacher.state_dict())
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    student.train()
    loss, stats, weight = student(*tiny_exp.batch())
    assert {"loss_kd", "loss_ctc", "n_active_layers", "loss"} <= set(stats)
    assert stats["loss"].item() == pytest.approx(stats["loss_ctc"].item() + stats["loss_kd"].item(), rel=1e-5)
    assert 1 <= stats["n_active_layers"].item() <= 4
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in student.teacher.parameters())
    after = student.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kd_is_zero_for_a_student_equal_to_its_teacher_and_positive_at_lower_depth(student, tiny_exp):
    student.load_state_dict(student.teacher.state_dict())  # same architecture and key names
    student.eval()
    speech, lens, _, _ = tiny_exp.batch()
    with torch.no_grad():
        enc, enc_lens = student.encode(speech, lens)
        assert student.kd_loss(speech, lens, enc, enc_lens).item() == pytest.approx(0.0, abs=1e-6)
        student.encoder.set_depth(2)
        enc, enc_lens = student.encode(speech, lens)
        assert student.kd_loss(speech, lens, enc, enc_lens).item() > 1e-4


def test_teacher_with_another_token_list_is_refused(tiny_exp):
    args = student_args(tiny_exp)
    args.token_list = list(args.token_list)
    args.token_list[2], args.token_list[3] = args.token_list[3], args.token_list[2]
    with pytest.raises(ValueError, match="another token list.*first difference at index 2"):
        ASRTask.build_model(args)


def test_teacher_with_another_frame_rate_is_refused(student, tiny_exp):
    targs = argparse.Namespace(**yaml.safe_load((tiny_exp.exps["teacher"] / "config.yaml").read_text()))
    targs.encoder_conf = {**targs.encoder_conf, "input_layer": "conv2d6"}
    student.set_teacher(ASRTask.build_model(targs), "teacher_conv2d6")
    student.train()
    with pytest.raises(ValueError, match="teacher_conv2d6 has another output frame rate"):
        student(*tiny_exp.batch())


@pytest.mark.parametrize(
    "conf, error, fragment",
    [
        ({"kd_weight": -1.0}, ValueError, "kd_weight must be a number >= 0, got -1.0"),
        ({"kd_temperature": 0.0}, ValueError, "kd_temperature must be a number > 0"),
        ({"kd_normalize": "batch"}, ValueError, "kd_normalize must be one of frame, utterance, got 'batch'"),
        ({"teacher_model": None, "teacher_config": None}, ValueError, "needs a teacher"),
        ({"teacher_model": "/nonexistent/teacher.pth"}, FileNotFoundError, "/nonexistent/teacher.pth"),
        ({"teacher_config": "/nonexistent/config.yaml"}, FileNotFoundError, "/nonexistent/config.yaml"),
    ],
)
def test_bad_model_conf_is_refused_at_start_up(tiny_exp, conf, error, fragment):
    with pytest.raises(error) as e:
        ASRTask.build_model(student_args(tiny_exp, **conf))
    assert fragment in str(e.value)


def test_ld_baseline_has_no_teacher_and_no_kd_term(tiny_exp):
    args = argparse.Namespace(**yaml.safe_load((tiny_exp.exps["ld"] / "config.yaml").read_text()))
    model = ASRTask.build_model(args)
    assert model.teacher is None and model.kd_weight == 0.0
    model.train()
    _, stats, _ = model(*tiny_exp.batch())
    assert "loss_kd" not in stats and stats["loss"].item() == pytest.approx(stats["loss_ctc"].item())


def test_hybrid_ctc_attention_student_distils_its_ctc_branch(tiny_exp):
    args = student_args(tiny_exp, ctc_weight=0.5)
    args.decoder = "transformer"
    args.decoder_conf = {"attention_heads": 2, "linear_units": 32, "num_blocks": 1}
    model = ASRTask.build_model(args)
    model.train()
    loss, stats, _ = model(*tiny_exp.batch())
    assert stats["loss_att"] is not None and stats["loss_kd"].item() > 0
    expected = 0.5 * stats["loss_ctc"] + 0.5 * stats["loss_att"] + stats["loss_kd"]
    assert stats["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.decoder.decoders[0].self_attn.linear_q.weight.grad is not None


def test_feature_input_teacher_sees_the_features_before_the_student_touches_them(tiny_exp):
    """With fbank input (no frontend) ESPnet normalises the batch tensor in
    place; the teacher must still get the original features."""
    s_args = student_args(tiny_exp)
    t_args = argparse.Namespace(**yaml.safe_load((tiny_exp.exps["teacher"] / "config.yaml").read_text()))
    for a in (s_args, t_args):
        a.input_size = 20  # features in, no frontend
    s_args.model_conf = {**s_args.model_conf, "teacher_model": None, "teacher_config": None, "kd_weight": 0.0}
    student = ASRTask.build_model(s_args)
    assert student.frontend is None
    teacher = ASRTask.build_model(t_args)
    student.load_state_dict(teacher.state_dict())
    student.set_teacher(teacher, "feature_teacher")
    student.kd_weight = 1.0
    feats = torch.randn(2, 120, 20, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([120, 90])
    text = torch.tensor([[2, 3, 4], [3, 4, -1]])
    student.eval()  # full depth, no dropout or SpecAugment: student == teacher
    _, stats, _ = student(feats, lens, text, torch.tensor([3, 2]))
    assert stats["loss_kd"].item() == pytest.approx(0.0, abs=1e-5)
    student.train()
    loss, stats, _ = student(torch.randn(2, 120, 20), lens, text, torch.tensor([3, 2]))
    loss.backward()  # no in-place clash between the student's graph and the teacher
    assert stats["loss_kd"].item() > 0


def test_kd_term_stays_float32_under_amp_autocast(student, tiny_exp):
    """use_amp: the encoders may run in low precision, the KL's logits do not."""
    student.eval()
    speech, lens, text, text_lens = tiny_exp.batch()
    with torch.no_grad():
        enc, enc_lens = student.encode(speech, lens)
        plain = student.ctc.ctc_lo(enc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert student.ctc.ctc_lo(enc).dtype == torch.bfloat16  # what autocast alone would give
            logits = float32_ctc_logits(student.ctc, enc)
    assert logits.dtype == torch.float32 and torch.equal(logits, plain)
    student.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats, _ = student(speech, lens, text, text_lens)
    assert torch.isfinite(loss) and stats["loss_kd"].dtype == torch.float32 and torch.isfinite(stats["loss_kd"])
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
def test_teacher_sees_the_speech_before_specaugment(tiny_exp):
    """The tiny configs have no SpecAugment: give the student one and check
    that its features are masked while the teacher gets the waveform as the
    batch brought it (and runs without augmentation, in eval mode)."""
    args = student_args(tiny_exp)
    args.specaug = "specaug"
    args.specaug_conf = {"apply_time_warp": False, "apply_freq_mask": True, "freq_mask_width_range": [4, 8],
                         "num_freq_mask": 2, "apply_time_mask": True, "time_mask_width_range": [5, 10],
                         "num_time_mask": 2}
    student = ASRTask.build_model(args)
    teacher = student.teacher
    assert student.specaug is not None and not teacher.training
    seen, aug = {}, {}
    real_encode = teacher.encode

    def recording_encode(speech, lengths):
        seen["speech"] = speech.clone()
        return real_encode(speech, lengths)

    teacher.encode = recording_encode
    student.specaug.register_forward_pre_hook(lambda m, inp: aug.update(before=inp[0].clone()))
    student.specaug.register_forward_hook(lambda m, inp, out: aug.update(after=out[0].clone()))
    speech, lens, text, text_lens = tiny_exp.batch()
    original = speech.clone()
    student.train()
    torch.manual_seed(0)
    _, stats, _ = student(speech, lens, text, text_lens)
    assert not torch.equal(aug["before"], aug["after"])  # the student's features were masked
    assert torch.equal(seen["speech"], original)  # the teacher got the speech itself
    assert stats["loss_kd"].item() > 0
