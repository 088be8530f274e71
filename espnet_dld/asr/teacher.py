"""The frozen reference model of DLD: loading it and checking it fits the student.

The teacher is any trained ESPnet ASR model (``config.yaml`` + ``.pth``, or a
packed zip).  It must share the student's token list and output frame rate,
or the frame-wise KL term would compare unrelated distributions; both are
checked before training does anything with it.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple

import torch

from espnet_dld.asr.trained_model import load_trained_model

logger = logging.getLogger(__name__)


def load_teacher(teacher_config: Optional[str], teacher_model: Optional[str]) -> torch.nn.Module:
    """Build the teacher strictly from an experiment's files or a packed zip,
    frozen and in eval mode.  A DLD student used as a teacher brings no
    teacher of its own (it is rebuilt as a trained model)."""
    teacher, _ = load_trained_model(teacher_model, teacher_config, "cpu",
                                    model_option="model_conf.teacher_model",
                                    config_option="model_conf.teacher_config")
    freeze(teacher)
    logger.info("teacher: %s (%s), %d parameters, frozen", teacher_model, type(teacher).__name__,
                sum(p.numel() for p in teacher.parameters()))
    return teacher


def freeze(teacher: torch.nn.Module) -> torch.nn.Module:
    """Eval mode and no gradients: a teacher is never trained."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ctc_logits(model: torch.nn.Module, speech: torch.Tensor, speech_lengths: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A (teacher) model's CTC logits ``(B, T, V)`` and output lengths for
    ``speech``, without gradients: its own frontend, normalisation and
    encoder (the first output when intermediate CTC returns a tuple), then
    its CTC projection.  What the KL term, the posterior cache and the
    benchmarks take from a teacher."""
    with torch.no_grad():
        out, lens = model.encode(speech, speech_lengths)
        if isinstance(out, tuple):
            out = out[0]
        return float32_ctc_logits(model.ctc, out), lens


def float32_ctc_logits(ctc: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """CTC output projection in float32 even under ``use_amp`` (autocast
    would give float16 logits), so the KL term is computed in float32."""
    with torch.autocast(hidden.device.type, enabled=False):
        return ctc.ctc_lo(hidden.float())


def check_token_lists(student_tokens: Sequence[str], teacher_tokens: Sequence[str], teacher_model: str) -> None:
    """Same tokens in the same order, or a ValueError naming the first difference."""
    s, t = list(student_tokens), list(teacher_tokens)
    if s == t:
        return
    if len(s) != len(t):
        detail = f"student has {len(s)} tokens, teacher has {len(t)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(s, t)) if a != b)
        detail = f"first difference at index {i}: student {s[i]!r}, teacher {t[i]!r}"
    raise ValueError(
        f"teacher {teacher_model} was trained with another token list than the student ({detail}); "
        "KD on CTC posteriors needs the same token_list for both"
    )


def check_frame_rate(student_lens: torch.Tensor, teacher_lens: torch.Tensor, teacher_model: str) -> None:
    """Same number of output frames per utterance, or a ValueError giving both."""
    if student_lens.shape == teacher_lens.shape and bool(torch.equal(student_lens.cpu(), teacher_lens.cpu())):
        return
    ratio = float(teacher_lens.float().sum() / student_lens.float().sum().clamp(min=1))
    raise ValueError(
        f"teacher {teacher_model} has another output frame rate than the student: for the same input it gives "
        f"{teacher_lens.tolist()} frames, the student {student_lens.tolist()} (teacher/student = {ratio:.2f}); "
        "use a teacher with the same frontend hop and encoder subsampling (input_layer); WavLM gives 20 ms "
        "frames, a conformer with conv2d on 10 ms fbank 40 ms, so a WavLM student needs a WavLM teacher "
        "(docs/wavlm.md)"
    )
