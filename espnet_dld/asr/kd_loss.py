"""DLD's distillation term on CTC posteriors."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KD_NORMALIZE = ("frame", "utterance")


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
    if normalize not in KD_NORMALIZE:
        raise ValueError(f"kd_normalize must be one of {', '.join(KD_NORMALIZE)}, got {normalize!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (B, T)
    mask = torch.arange(kl.size(1), device=kl.device)[None, :] < lengths.to(kl.device)[:, None]
    denominator = mask.sum().clamp(min=1) if normalize == "frame" else kl.size(0)
    return (kl * mask).sum() / denominator * temperature**2
