"""The KL term on CTC posteriors."""
import pytest
import torch
import torch.nn.functional as F

from espnet_dld.asr.kd_loss import ctc_kd_loss, topk_ctc_kd_loss


def logits(seed, shape=(2, 7, 5)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_zero_for_identical_distributions_positive_otherwise():
    t = logits(0)
    lens = torch.tensor([7, 4])
    assert ctc_kd_loss(t.clone(), t, lens).item() == pytest.approx(0.0, abs=1e-7)
    assert ctc_kd_loss(logits(1), t, lens).item() > 0.01


def test_matches_torch_kl_div_over_valid_frames():
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 3])
    ref = []
    for b, n in enumerate(lens):
        ref.append(F.kl_div(F.log_softmax(s[b, :n], -1), F.log_softmax(t[b, :n], -1), log_target=True,
                            reduction="none").sum(-1))
    expected = torch.cat(ref).mean()
    assert ctc_kd_loss(s, t, lens).item() == pytest.approx(expected.item(), rel=1e-5)


def test_padded_frames_are_ignored():
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 3])
    s2 = s.clone()
    s2[1, 3:] = 100.0  # garbage in the padding
    assert ctc_kd_loss(s2, t, lens).item() == pytest.approx(ctc_kd_loss(s, t, lens).item())


def test_temperature_scaling():
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 7])
    T = 2.0
    expected = ctc_kd_loss(s / T, t / T, lens, 1.0) * T**2
    assert ctc_kd_loss(s, t, lens, T).item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_flows_to_student_only():
    s, t = logits(1).requires_grad_(), logits(2).requires_grad_()
    ctc_kd_loss(s, t.detach(), torch.tensor([7, 5])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        ctc_kd_loss(logits(1), logits(2, (2, 6, 5)), torch.tensor([6, 6]))


def test_utterance_normalisation_is_the_frame_sum_over_the_batch():
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 3])
    per_frame = ctc_kd_loss(s, t, lens, normalize="frame")
    per_utt = ctc_kd_loss(s, t, lens, normalize="utterance")
    assert per_utt.item() == pytest.approx(per_frame.item() * 10 / 2, rel=1e-6)
    # the scale of torch's kl_div(reduction="batchmean") on the valid frames
    ref = sum(F.kl_div(F.log_softmax(s[b, :n], -1), F.log_softmax(t[b, :n], -1), log_target=True,
                       reduction="sum") for b, n in enumerate(lens)) / 2
    assert per_utt.item() == pytest.approx(ref.item(), rel=1e-5)


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="kd_normalize must be one of frame, utterance, got 'batch'"):
        ctc_kd_loss(logits(1), logits(2), torch.tensor([7, 7]), normalize="batch")


def _topk(teacher_logits, k, temperature=1.0):
    values, indices = torch.softmax(teacher_logits / temperature, -1).topk(k, dim=-1)
    return values, indices


@pytest.mark.parametrize("normalize", ["frame", "utterance"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_topk_with_the_whole_vocabulary_is_the_full_kl(normalize, temperature):
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 4])
    prob, idx = _topk(t, 5, temperature)
    full = ctc_kd_loss(s, t, lens, temperature, normalize)
    assert topk_ctc_kd_loss(s, prob, idx, lens, temperature, normalize).item() == pytest.approx(full.item(), rel=1e-5)
    # float16 storage costs about its rounding error
    half = topk_ctc_kd_loss(s, prob.half(), idx.short(), lens, temperature, normalize)
    assert half.item() == pytest.approx(full.item(), rel=2e-3)


def test_topk_is_the_kl_of_the_distributions_coarsened_to_k_plus_one_outcomes():
    s, t = logits(1, (1, 3, 6)), logits(2, (1, 3, 6))
    lens = torch.tensor([3])
    prob, idx = _topk(t, 2)
    p_s = torch.softmax(s, -1)
    expected = 0.0
    for f in range(3):
        top = idx[0, f]
        q = torch.cat([prob[0, f], (1 - prob[0, f].sum()).reshape(1)])
        ps = p_s[0, f, top]
        ps = torch.cat([ps, (1 - ps.sum()).reshape(1)])
        expected += float((q * (q.log() - ps.log())).sum())
    got = topk_ctc_kd_loss(s, prob, idx, lens)
    assert got.item() == pytest.approx(expected / 3, rel=1e-4)
    assert got.item() <= ctc_kd_loss(s, t, lens).item() + 1e-6  # coarsening never raises the KL


def test_topk_gradient_is_finite_and_zero_for_a_student_equal_to_the_teacher():
    t = logits(2)
    lens = torch.tensor([7, 5])
    for k in (2, 5):
        prob, idx = _topk(t, k)
        s = t.clone().requires_grad_()
        loss = topk_ctc_kd_loss(s, prob, idx, lens)
        loss.backward()
        assert loss.item() == pytest.approx(0.0, abs=1e-6)
        assert torch.isfinite(s.grad).all() and s.grad.abs().max() < 1e-5
        s2 = logits(1).requires_grad_()
        topk_ctc_kd_loss(s2, prob, idx, lens).backward()
        assert torch.isfinite(s2.grad).all() and s2.grad[0].abs().sum() > 0
        assert s2.grad[1, 5:].abs().sum() == 0  # padded frames get no gradient


def test_topk_with_padding_indices_and_bad_shapes():
    s, t = logits(1), logits(2)
    lens = torch.tensor([7, 3])
    prob, idx = _topk(t, 3)
    ref = topk_ctc_kd_loss(s, prob, idx, lens)
    prob2, idx2 = prob.clone(), idx.clone()
    prob2[1, 3:], idx2[1, 3:] = 0.0, -1  # how ESPnet's collate pads
    assert topk_ctc_kd_loss(s, prob2, idx2, lens).item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(ValueError, match="do not fit student logits"):
        topk_ctc_kd_loss(s, prob[:, :5], idx[:, :5], lens)
