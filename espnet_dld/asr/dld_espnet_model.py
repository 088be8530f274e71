"""ESPnet's ASR model plus DLD's distillation from a frozen full-depth teacher."""
from __future__ import annotations

import logging
from typing import Dict, Optional, Tuple

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_dld.asr.kd_loss import KD_NORMALIZE, ctc_kd_loss
from espnet_dld.asr.teacher import check_frame_rate, check_token_lists, load_teacher
from espnet_dld.utils.trained_model import is_rebuilding_trained_model
from espnet_dld.utils.signature import extend_signature

logger = logging.getLogger(__name__)


class DLDESPnetASRModel(ESPnetASRModel):
    """``loss = ESPnet's CTC/attention loss + kd_weight * T^2 * KL(p_teacher || p_student)``.

    ``kd_normalize`` sets the KL term's scale: ``frame`` (mean over frames)
    or ``utterance`` (sum over frames, mean over the batch, like the CTC loss).

    The KL term compares CTC output distributions frame by frame.  The
    teacher is frozen, runs under ``no_grad`` in eval mode on the speech
    before SpecAugment (through its own frontend and normalisation), and is
    held outside the module tree: it has no parameters in the optimizer, no
    keys in the student's checkpoints, and ``train()`` never reaches it.
    Without a teacher and with ``kd_weight: 0`` this is the plain
    layer-dropping (LD) baseline through the same code.
    """

    def __init__(
        self,
        *args,
        teacher_config: Optional[str] = None,
        teacher_model: Optional[str] = None,
        kd_weight: float = 1.0,
        kd_temperature: float = 1.0,
        kd_normalize: str = "frame",
        **kwargs,
    ):
        if isinstance(kd_weight, bool) or not isinstance(kd_weight, (int, float)) or kd_weight < 0:
            raise ValueError(f"model_conf.kd_weight must be a number >= 0, got {kd_weight!r}")
        if isinstance(kd_temperature, bool) or not isinstance(kd_temperature, (int, float)) or kd_temperature <= 0:
            raise ValueError(f"model_conf.kd_temperature must be a number > 0, got {kd_temperature!r}")
        if kd_normalize not in KD_NORMALIZE:
            raise ValueError(f"model_conf.kd_normalize must be one of {', '.join(KD_NORMALIZE)}, got {kd_normalize!r}")
        if kd_weight > 0 and teacher_model is None:
            raise ValueError(
                f"model_conf.kd_weight={kd_weight} needs a teacher: set model_conf.teacher_model "
                "(and teacher_config), or kd_weight: 0 for the layer-dropping baseline"
            )
        super().__init__(*args, **kwargs)
        if kd_weight > 0 and self.ctc is None:
            raise ValueError("DLD distils CTC posteriors: the student needs a CTC branch (ctc_weight > 0)")
        self.kd_weight = float(kd_weight)
        self.kd_temperature = float(kd_temperature)
        self.kd_normalize = kd_normalize
        self.teacher_model = teacher_model
        object.__setattr__(self, "_teacher", None)  # deliberately not a submodule
        if teacher_model is not None and kd_weight == 0:
            logger.warning("model_conf.kd_weight is 0: teacher %s is not loaded", teacher_model)
        elif teacher_model is not None and not is_rebuilding_trained_model():
            self.set_teacher(load_teacher(teacher_config, teacher_model), teacher_model)

    # -- teacher -----------------------------------------------------------
    @property
    def teacher(self) -> Optional[ESPnetASRModel]:
        return self._teacher

    def set_teacher(self, teacher: ESPnetASRModel, name: str = "teacher") -> None:
        """Attach a frozen teacher after checking it fits this student."""
        if getattr(teacher, "ctc", None) is None:
            raise ValueError(f"teacher {name} has no CTC branch (ctc_weight 0); DLD distils CTC posteriors")
        check_token_lists(self.token_list, teacher.token_list, name)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        param = next(self.parameters(), None)
        if param is not None:
            teacher.to(param.device)
        object.__setattr__(self, "_teacher", teacher)
        self.teacher_model = name

    def _apply(self, fn, *args, **kwargs):
        # .to(), .cuda(), .half() reach the teacher although it is not a child
        super()._apply(fn, *args, **kwargs)
        if self._teacher is not None:
            self._teacher._apply(fn, *args, **kwargs)
        return self

    # -- training ----------------------------------------------------------
    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        encoder_out, encoder_out_lens = super().encode(speech, speech_lengths)
        if getattr(self, "_capture_encoder_out", False):
            out = encoder_out[0] if isinstance(encoder_out, tuple) else encoder_out
            self._captured = (out, encoder_out_lens)
        return encoder_out, encoder_out_lens

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        distil = self._teacher is not None and self.kd_weight > 0
        # With pre-computed features (no frontend) the student's SpecAugment and
        # in-place normalisation act on ``speech`` itself: the teacher gets a copy.
        teacher_speech = speech.clone() if distil else None
        self._capture_encoder_out, self._captured = True, None
        try:
            loss, stats, weight = super().forward(speech, speech_lengths, text, text_lengths, **kwargs)
        finally:
            self._capture_encoder_out = False
        encoder_out, encoder_out_lens = self._captured
        self._captured = None

        active = getattr(self.encoder, "last_active_layers", None)
        if active is not None:
            stats["n_active_layers"] = torch.tensor(float(len(active)))
        if distil:
            loss_kd = self.kd_loss(teacher_speech, speech_lengths, encoder_out, encoder_out_lens)
            loss = loss + self.kd_weight * loss_kd
            stats["loss_kd"] = loss_kd.detach()
            stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def kd_loss(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
    ) -> torch.Tensor:
        """KL between the teacher's and this student's CTC posteriors."""
        with torch.no_grad():
            t_out, t_lens = self._teacher.encode(speech, speech_lengths)
            if isinstance(t_out, tuple):
                t_out = t_out[0]
            check_frame_rate(encoder_out_lens, t_lens, self.teacher_model)
            t_logits = self._teacher.ctc.ctc_lo(t_out)
        s_logits = self.ctc.ctc_lo(encoder_out)
        return ctc_kd_loss(s_logits, t_logits, encoder_out_lens, self.kd_temperature, self.kd_normalize)


#: the model_conf options DLD adds to ESPnet's model (training-only: distillation)
DLD_OPTIONS = ("teacher_config", "teacher_model", "kd_weight", "kd_temperature", "kd_normalize")

extend_signature(DLDESPnetASRModel, ESPnetASRModel, DLDESPnetASRModel.__init__, list(DLD_OPTIONS))
