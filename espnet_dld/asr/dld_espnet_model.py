"""ESPnet's ASR model plus DLD's distillation from a frozen full-depth teacher."""
from __future__ import annotations

import logging
from typing import Dict, Optional, Tuple

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_dld.asr.kd_loss import KD_NORMALIZE, ctc_kd_loss, topk_ctc_kd_loss
from espnet_dld.asr.teacher import check_frame_rate, check_token_lists, ctc_logits, float32_ctc_logits, freeze, load_teacher
from espnet_dld.asr.teacher_cache import TOPK_IDX, TOPK_PROB, TeacherCacheError, check_cache_meta
from espnet_dld.asr.trained_model import is_rebuilding_trained_model
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

    With ``teacher_cache`` (a directory written by
    ``espnet_dld.bin.dump_teacher_posteriors``) the teacher is not built: its
    top-k posteriors arrive with each batch as two extra data inputs
    (:mod:`espnet_dld.asr.teacher_cache`) and the KL term uses them
    (:func:`topk_ctc_kd_loss`).  ``teacher_model``, if also given, is only
    checked to be the checkpoint the cache was dumped from.
    """

    def __init__(
        self,
        *args,
        teacher_config: Optional[str] = None,
        teacher_model: Optional[str] = None,
        kd_weight: float = 1.0,
        kd_temperature: float = 1.0,
        kd_normalize: str = "frame",
        teacher_cache: Optional[str] = None,
        **kwargs,
    ):
        if isinstance(kd_weight, bool) or not isinstance(kd_weight, (int, float)) or kd_weight < 0:
            raise ValueError(f"model_conf.kd_weight must be a number >= 0, got {kd_weight!r}")
        if isinstance(kd_temperature, bool) or not isinstance(kd_temperature, (int, float)) or kd_temperature <= 0:
            raise ValueError(f"model_conf.kd_temperature must be a number > 0, got {kd_temperature!r}")
        if kd_normalize not in KD_NORMALIZE:
            raise ValueError(f"model_conf.kd_normalize must be one of {', '.join(KD_NORMALIZE)}, got {kd_normalize!r}")
        if kd_weight > 0 and teacher_model is None and teacher_cache is None:
            raise ValueError(
                f"model_conf.kd_weight={kd_weight} needs a teacher: set model_conf.teacher_model "
                "(and teacher_config) or model_conf.teacher_cache, or kd_weight: 0 for the layer-dropping baseline"
            )
        super().__init__(*args, **kwargs)
        if kd_weight > 0 and self.ctc is None:
            raise ValueError("DLD distils CTC posteriors: the student needs a CTC branch (ctc_weight > 0)")
        self.kd_weight = float(kd_weight)
        self.kd_temperature = float(kd_temperature)
        self.kd_normalize = kd_normalize
        self.teacher_name = teacher_model  # where the teacher came from, for messages
        self.teacher_cache = None
        object.__setattr__(self, "_teacher", None)  # deliberately not a submodule
        if kd_weight == 0 and (teacher_model is not None or teacher_cache is not None):
            logger.warning("model_conf.kd_weight is 0: teacher %s is not used", teacher_cache or teacher_model)
        elif is_rebuilding_trained_model():
            pass  # decoding or export: the teacher only mattered for training
        elif teacher_cache is not None:
            meta = check_cache_meta(teacher_cache, self.token_list, self.kd_temperature, teacher_model)
            self.teacher_cache = str(teacher_cache)
            logger.info("teacher posteriors from the cache %s (top %d of %s), teacher not built",
                        teacher_cache, meta["topk"], meta["teacher_model"])
        elif teacher_model is not None:
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
        freeze(teacher)
        param = next(self.parameters(), None)
        if param is not None:
            teacher.to(param.device)
        object.__setattr__(self, "_teacher", teacher)
        self.teacher_name = name

    def teacher_ctc_logits(self, speech: torch.Tensor, speech_lengths: torch.Tensor
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The teacher's CTC logits ``(B, T, V)`` and output lengths for
        ``speech`` (the speech before SpecAugment), without gradients
        (:func:`espnet_dld.asr.teacher.ctc_logits`)."""
        if self._teacher is None:
            raise ValueError("this model has no teacher (model_conf.teacher_model unset, or a teacher cache)")
        return ctc_logits(self._teacher, speech, speech_lengths)

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
        cached = self._take_cached_posteriors(kwargs)
        distil = self.kd_weight > 0 and (self._teacher is not None or cached is not None)
        # With pre-computed features (no frontend) the student's SpecAugment and
        # in-place normalisation act on ``speech`` itself: the teacher gets a copy.
        teacher_speech = speech.clone() if distil and cached is None else None
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
            if cached is not None:
                loss_kd = self.cached_kd_loss(cached, speech_lengths, encoder_out, encoder_out_lens)
            else:
                loss_kd = self.kd_loss(teacher_speech, speech_lengths, encoder_out, encoder_out_lens)
            loss = loss + self.kd_weight * loss_kd
            stats["loss_kd"] = loss_kd.detach()
            stats["loss"] = loss.detach()
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def _take_cached_posteriors(self, batch: Dict) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Remove the cache inputs from ``batch``; (prob, idx, lengths) if this model distils from the cache."""
        prob, idx = batch.pop(TOPK_PROB, None), batch.pop(TOPK_IDX, None)
        lengths = batch.pop(TOPK_PROB + "_lengths", None)
        batch.pop(TOPK_IDX + "_lengths", None)
        if self.teacher_cache is None or self.kd_weight == 0:
            return None
        if prob is None or idx is None:
            raise TeacherCacheError(
                f"model_conf.teacher_cache is {self.teacher_cache}, but the batch has no {TOPK_PROB}/{TOPK_IDX}: "
                f"add --train_data_path_and_name_and_type {self.teacher_cache}/<set>/prob.scp,{TOPK_PROB},kaldi_ark "
                f"and .../idx.scp,{TOPK_IDX},kaldi_ark (and the same for --valid_...)"
            )
        return prob, idx, lengths

    def cached_kd_loss(
        self,
        cached: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        speech_lengths: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
    ) -> torch.Tensor:
        """KL between the cached top-k teacher posteriors and this student's,
        over the frames the cache holds (see :func:`check_cached_lengths`)."""
        prob, idx, lengths = cached
        check_cached_lengths(lengths, encoder_out_lens, speech_lengths, self.teacher_cache)
        frames = prob.size(1)
        s_logits = float32_ctc_logits(self.ctc, encoder_out[:, :frames])
        return topk_ctc_kd_loss(s_logits, prob, idx, lengths.to(encoder_out_lens.device),
                                self.kd_temperature, self.kd_normalize)

    def kd_loss(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
    ) -> torch.Tensor:
        """KL between the teacher's and this student's CTC posteriors."""
        t_logits, t_lens = self.teacher_ctc_logits(speech, speech_lengths)
        check_frame_rate(encoder_out_lens, t_lens, self.teacher_name)
        s_logits = float32_ctc_logits(self.ctc, encoder_out)
        return ctc_kd_loss(s_logits, t_logits, encoder_out_lens, self.kd_temperature, self.kd_normalize)


#: ESPnet's conv2d subsampling cuts an utterance's output mask from the padded
#: batch's, so an utterance shorter than its batch gets up to one more frame per
#: strided convolution than alone (conv2d: 2 of them, conv2d8: 3): the cache, dumped
#: one utterance at a time, may hold that many frames fewer than the student has.
PADDING_FRAME_SLACK = 3


def check_cached_lengths(
    cached_lens: Optional[torch.Tensor],
    student_lens: torch.Tensor,
    speech_lengths: torch.Tensor,
    cache: str,
) -> None:
    """Cached frames fit the student's: equal for the batch's longest
    utterance (no padding), at most :data:`PADDING_FRAME_SLACK` fewer for the others."""
    if cached_lens is not None and cached_lens.shape == student_lens.shape:
        diff = student_lens.cpu() - cached_lens.cpu()
        longest = speech_lengths.cpu() == speech_lengths.max().cpu()
        if bool(((diff >= 0) & (diff <= PADDING_FRAME_SLACK)).all()) and bool((diff[longest] == 0).all()):
            return
    raise TeacherCacheError(
        f"teacher-posterior cache {cache} does not match this batch: it holds "
        f"{None if cached_lens is None else cached_lens.tolist()} frames, the student gives "
        f"{student_lens.tolist()}; the cache was dumped from other features, another frontend or a teacher of "
        "another frame rate: delete it and dump it again from this data"
    )


#: the model_conf options DLD adds to ESPnet's model (training-only: distillation)
DLD_OPTIONS = ("teacher_config", "teacher_model", "kd_weight", "kd_temperature", "kd_normalize", "teacher_cache")

extend_signature(DLDESPnetASRModel, ESPnetASRModel, DLDESPnetASRModel.__init__, list(DLD_OPTIONS))
