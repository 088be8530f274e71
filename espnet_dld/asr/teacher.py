"""The frozen reference model of DLD: loading it and checking it fits the student.

The teacher is any trained ESPnet ASR model (``config.yaml`` + ``.pth``, or a
packed zip).  It must share the student's token list and output frame rate,
or the frame-wise KL term would compare unrelated distributions; both are
checked before training does anything with it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import torch

from espnet_dld.utils.checkpoint import build_model_strict
from espnet_dld.utils.trained_model import rebuilding_trained_model

logger = logging.getLogger(__name__)


def load_teacher(teacher_config: Optional[str], teacher_model: Optional[str]) -> torch.nn.Module:
    """Build the teacher strictly from an experiment's files or a packed zip,
    frozen and in eval mode."""
    from espnet_dld.tasks.asr import ASRTask
    from espnet_dld.utils.model_zoo import unpack_model

    if teacher_model is None:
        raise ValueError("model_conf.teacher_model is required when a teacher is used (a .pth or a packed .zip)")
    if not Path(teacher_model).exists():
        raise FileNotFoundError(f"model_conf.teacher_model: {teacher_model} does not exist")
    if teacher_config is not None and not Path(teacher_config).exists():
        raise FileNotFoundError(f"model_conf.teacher_config: {teacher_config} does not exist")
    if str(teacher_model).endswith(".zip"):
        if teacher_config is not None:
            raise ValueError(
                f"model_conf.teacher_model={teacher_model} is a packed zip, which carries its own "
                f"config: leave teacher_config ({teacher_config}) unset"
            )
        files = unpack_model(teacher_model)
        teacher_config, teacher_model = files["asr_train_config"], files["asr_model_file"]
    with rebuilding_trained_model():  # a DLD student used as a teacher brings no teacher of its own
        teacher, _ = build_model_strict(ASRTask, teacher_config, teacher_model, "cpu")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    logger.info("teacher: %s (%s), %d parameters, frozen", teacher_model, type(teacher).__name__,
                sum(p.numel() for p in teacher.parameters()))
    return teacher


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
