"""DLD's distillation term on CTC posteriors, from teacher logits (online
teacher) or from stored top-k teacher probabilities (teacher-posterior cache)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KD_NORMALIZE = ("frame", "utterance")


def _check_normalize(normalize: str) -> None:
    if normalize not in KD_NORMALIZE:
        raise ValueError(f"kd_normalize must be one of {', '.join(KD_NORMALIZE)}, got {normalize!r}")


def _reduce(kl: torch.Tensor, lengths: torch.Tensor, temperature: float, normalize: str) -> torch.Tensor:
    """Sum the (B, T) frame KLs over valid frames, scaled as ``normalize`` says, times T^2."""
    mask = torch.arange(kl.size(1), device=kl.device)[None, :] < lengths.to(kl.device)[:, None]
    denominator = mask.sum().clamp(min=1) if normalize == "frame" else kl.size(0)
    return (kl * mask).sum() / denominator * temperature**2


def ctc_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    lengths: torch.Tensor,
    temperature: float = 1.0,
    normalize: str = "frame",
) -> torch.Tensor:
    """``T^2 * KL(p_teacher || p_student)`` summed over non-padded frames.

    Args:
        student_logits, teacher_logits: (B, T, V) pre-softmax CTC outputs.
        lengths: (B,) valid frames per utterance.
        temperature: softmax temperature T (> 0); T^2 keeps gradient scale
            comparable across temperatures (Hinton et al.).
        normalize: ``"frame"``: divided by the number of valid frames (a
            per-frame mean, about T_frames times smaller than ESPnet's CTC
            loss); ``"utterance"``: divided by the batch size, the scale of
            ESPnet's CTC loss (a sum over each utterance, averaged over the
            batch) and of ``kl_div(reduction="batchmean")``.
    """
    _check_normalize(normalize)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (B, T)
    return _reduce(kl, lengths, temperature, normalize)


def topk_ctc_kd_loss(
    student_logits: torch.Tensor,
    topk_prob: torch.Tensor,
    topk_idx: torch.Tensor,
    lengths: torch.Tensor,
    temperature: float = 1.0,
    normalize: str = "frame",
) -> torch.Tensor:
    """:func:`ctc_kd_loss` against a teacher known only by its k most likely
    tokens per frame (their probabilities at ``temperature``).

    The teacher's remaining mass ``r = 1 - sum(topk_prob)`` is one bucket
    matched against the student's mass on all other tokens, so the term is
    the KL between both distributions coarsened to k + 1 outcomes: exact when
    k equals the vocabulary, and never above the full KL.

    Args:
        student_logits: (B, T, V) pre-softmax CTC outputs of the student.
        topk_prob: (B, T, k) teacher probabilities (any float dtype, e.g. float16).
        topk_idx: (B, T, k) their token indices (padding may hold -1).
    """
    _check_normalize(normalize)
    b, t, v = student_logits.shape
    if topk_prob.shape != topk_idx.shape or topk_prob.shape[:2] != (b, t) or topk_prob.shape[2] > v:
        raise ValueError(
            f"teacher top-k probabilities {tuple(topk_prob.shape)} / indices {tuple(topk_idx.shape)} do not fit "
            f"student logits {tuple(student_logits.shape)} (expected (B, T, k) with k <= {v})"
        )
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    idx = topk_idx.long().clamp(min=0)  # padded frames hold -1; they are masked below
    q = topk_prob.float().clamp(min=0.0)
    log_p_s_top = log_p_s.gather(-1, idx)  # (B, T, k)
    kl = torch.where(q > 0, q * (torch.log(q.clamp(min=1e-30)) - log_p_s_top), torch.zeros_like(q)).sum(-1)
    if q.size(-1) < v:  # with k = V nothing is left outside; 1 - sum(q) is float16 rounding
        r = (1.0 - q.sum(-1)).clamp(min=0.0)  # teacher mass outside the top k
        # the student's log-mass outside the top k (top-k entries set to -1e4, far below any
        # float32 log-probability; -inf would give NaN gradients)
        log_s_rest = torch.logsumexp(log_p_s.scatter(-1, idx, -1e4), dim=-1)
        rest_term = r * (torch.log(r.clamp(min=1e-30)) - log_s_rest)
        kl = kl + torch.where(r > 0, rest_term, torch.zeros_like(r))
    return _reduce(kl, lengths, temperature, normalize)
