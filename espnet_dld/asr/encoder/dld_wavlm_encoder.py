"""WavLM on raw 16 kHz waveform: static (``wavlm``, a teacher) and dynamic-depth (``dld_wavlm``).

The architecture is torchaudio's (``torchaudio.models.wavlm_model``): this
module builds it, keeps its modules, and only runs the transformer layers
itself, for two reasons: the gate of :mod:`layer_gating` must decide which
layers run, and torchaudio's WavLM cannot take padded batches (its
transformer passes the padding mask where WavLM's attention asserts None).
Here padding is passed as WavLM's ``key_padding_mask``, and the relative
position bias, which torchaudio computes inside layer 0 and hands on, is
computed from layer 0's table before the loop, so it exists when layer 0 is
dropped.  torchaudio's own layer drop is never used.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from torchaudio.models import wavlm_model
from torchaudio.models.wav2vec2.components import EncoderLayer, MaskGenerator

from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin, dynamic_encoder_signature
from espnet_dld.asr.encoder.wavlm_checkpoint import WavLMCheckpoint, read_wavlm_checkpoint
from espnet_dld.asr.trained_model import is_rebuilding_trained_model
from espnet_dld.utils.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

#: torchaudio's default convolutional feature extractor: 20 ms frames, 25 ms receptive field
DEFAULT_CONV_LAYERS = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2
#: the learnt vector that replaces time-masked frames (Microsoft ``mask_emb``, HF ``masked_spec_embed``)
MASK_EMBEDDING = "mask_generator.mask_embedding"


class _WavLMLayer(EncoderLayer):
    """torchaudio's ``EncoderLayer`` under the call convention of
    :class:`~espnet_dld.asr.encoder.layer_gating.GatedLayerStack`:
    ``(x, mask, *extra) -> (x, mask, *extra)``; parameters unchanged."""

    def forward(self, x, key_padding_mask, position_bias):  # noqa: D102
        x, position_bias = super().forward(x, None, position_bias=position_bias, key_padding_mask=key_padding_mask)
        return x, key_padding_mask, position_bias


def wavlm_final_norm(block) -> Optional[torch.nn.Module]:
    """A post-norm WavLM layer (Base, Base+) ends with ``final_layer_norm``; a
    pre-norm one (Large) ends with a residual sum."""
    return None if block.layer_norm_first else block.final_layer_norm


def _torchaudio_to_ours(key: str) -> str:
    """torchaudio ``wavlm_model`` key -> this encoder's key."""
    for old, new in (("encoder.transformer.layers.", "encoders."), ("encoder.transformer.", ""), ("encoder.", "")):
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _is_float(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class WavLMEncoder(AbsEncoder):
    """Static WavLM encoder (``encoder: wavlm``), e.g. a fine-tuned teacher.

    Input: raw waveform ``(B, T)`` (or ``(B, T, 1)``) at 16 kHz, so the ESPnet
    config needs ``input_size: 1`` (no frontend) and no SpecAugment or
    global MVN.  Output: one frame per 20 ms, ``hidden_size`` wide, or
    ``output_size`` wide through a linear output projection.

    ``pretrained_path`` loads weights from a local file or folder (torchaudio
    state dict, Hugging Face WavLMModel folder, Microsoft's ``WavLM-*.pt``)
    when the model is built for training; when it is rebuilt from trained
    files (decoding, a teacher) its own weights replace them and the file is
    not read.  ``freeze_feature_extractor`` keeps the convolutional feature
    extractor fixed; ``freeze_encoder_steps`` keeps the whole encoder fixed
    (not the output projection) for that many training steps (forward passes
    in training mode, counted in a buffer that survives resuming).
    ``mask_time_prob`` / ``mask_channel_prob`` are wav2vec 2.0-style
    fine-tuning masks (torchaudio's ``MaskGenerator``: spans of
    ``mask_time_length`` frames replaced by the pretrained mask embedding,
    spans of ``mask_channel_length`` channels zeroed), in training only.
    """

    def __init__(
        self,
        input_size: int = 1,
        output_size: Optional[int] = None,
        hidden_size: int = 768,
        num_blocks: int = 12,
        attention_heads: int = 12,
        linear_units: int = 3072,
        extractor_mode: str = "group_norm",
        extractor_conv_layers: Optional[List[List[int]]] = None,
        extractor_conv_bias: bool = False,
        pos_conv_kernel: int = 128,
        pos_conv_groups: int = 16,
        num_buckets: int = 320,
        max_distance: int = 800,
        layer_norm_first: bool = False,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.1,
        activation_dropout_rate: float = 0.0,
        projection_dropout_rate: float = 0.1,
        normalize_waveform: bool = False,
        mask_time_prob: float = 0.0,
        mask_time_length: int = 10,
        mask_channel_prob: float = 0.0,
        mask_channel_length: int = 64,
        freeze_feature_extractor: bool = True,
        freeze_encoder_steps: int = 0,
        pretrained_path: Optional[str] = None,
        layer_drop_rate: float = 0.0,
    ):
        super().__init__()
        if input_size != 1:
            raise ValueError(
                f"input_size={input_size!r}: {type(self).__name__} takes the raw waveform, so the ESPnet config "
                "needs input_size: 1 (no frontend, no fbank features)"
            )
        if layer_drop_rate:
            raise ValueError(
                f"layer_drop_rate={layer_drop_rate} is torchaudio's/fairseq's WavLM layer drop; "
                f"{type(self).__name__} uses layer_drop_prob instead (dld_wavlm; leave layer_drop_rate at 0)"
            )
        if extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(
                f"extractor_mode must be 'group_norm' (Base, Base+) or 'layer_norm' (Large), got {extractor_mode!r}"
            )
        if not isinstance(freeze_encoder_steps, int) or isinstance(freeze_encoder_steps, bool) \
                or freeze_encoder_steps < 0:
            raise ValueError(f"freeze_encoder_steps must be an integer >= 0, got {freeze_encoder_steps!r}")
        for name, p in (("dropout_rate", dropout_rate), ("attention_dropout_rate", attention_dropout_rate),
                        ("activation_dropout_rate", activation_dropout_rate),
                        ("projection_dropout_rate", projection_dropout_rate),
                        ("mask_time_prob", mask_time_prob), ("mask_channel_prob", mask_channel_prob)):
            if not _is_float(p) or not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
        for name, n in (("mask_time_length", mask_time_length), ("mask_channel_length", mask_channel_length)):
            if not _is_int(n) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        if mask_channel_prob > 0 and hidden_size < 2 * mask_channel_length + 2:
            raise ValueError(
                f"mask_channel_length={mask_channel_length} is too long for hidden_size={hidden_size} "
                f"(channel masks need hidden_size >= 2 * mask_channel_length + 2)"
            )
        if hidden_size % attention_heads:
            raise ValueError(f"hidden_size={hidden_size} must be a multiple of attention_heads={attention_heads}")
        conv_layers = extractor_conv_layers or DEFAULT_CONV_LAYERS
        if not isinstance(conv_layers, (list, tuple)) or not all(
            isinstance(c, (list, tuple)) and len(c) == 3 and all(_is_int(v) and v > 0 for v in c) for c in conv_layers
        ):
            raise ValueError(
                f"extractor_conv_layers must be a list of [dim, kernel, stride] positive integers, "
                f"got {extractor_conv_layers!r}"
            )
        conv_layers = [list(c) for c in conv_layers]
        self.arch = dict(
            hidden_size=hidden_size, num_blocks=num_blocks, attention_heads=attention_heads, linear_units=linear_units,
            extractor_mode=extractor_mode, extractor_conv_layers=conv_layers, extractor_conv_bias=extractor_conv_bias,
            pos_conv_kernel=pos_conv_kernel, pos_conv_groups=pos_conv_groups, num_buckets=num_buckets,
            max_distance=max_distance, layer_norm_first=layer_norm_first, normalize_waveform=normalize_waveform,
        )
        ta = wavlm_model(
            extractor_mode=extractor_mode,
            extractor_conv_layer_config=[tuple(c) for c in conv_layers],
            extractor_conv_bias=extractor_conv_bias,
            encoder_embed_dim=hidden_size,
            encoder_projection_dropout=projection_dropout_rate,
            encoder_pos_conv_kernel=pos_conv_kernel,
            encoder_pos_conv_groups=pos_conv_groups,
            encoder_num_layers=num_blocks,
            encoder_num_heads=attention_heads,
            encoder_num_buckets=num_buckets,
            encoder_max_distance=max_distance,
            encoder_attention_dropout=attention_dropout_rate,
            encoder_ff_interm_features=linear_units,
            encoder_ff_interm_dropout=activation_dropout_rate,
            encoder_dropout=dropout_rate,
            encoder_layer_norm_first=layer_norm_first,
            encoder_layer_drop=0.0,  # the gate decides; see layer_gating
            aux_num_out=None,
        )
        self.feature_extractor = ta.feature_extractor
        self.feature_projection = ta.encoder.feature_projection
        transformer = ta.encoder.transformer
        self.pos_conv_embed = transformer.pos_conv_embed
        self.layer_norm = transformer.layer_norm
        self.dropout = transformer.dropout
        # torchaudio's Transformer.layer_norm_first is the inverse of the layers' flag:
        # post-norm layers (Base) normalise the input of the stack, pre-norm ones (Large) its output.
        self.norm_input = not layer_norm_first
        for layer in transformer.layers:
            layer.__class__ = _WavLMLayer  # same parameters, our call convention
        self.encoders = torch.nn.ModuleList(list(transformer.layers))
        self.mask_generator = MaskGenerator(
            hidden_size, mask_time_prob, "static", 0.0, mask_time_length, False, 0,
            mask_channel_prob, "static", 0.0, mask_channel_length, False, 0,
        )
        # always there (same keys for teacher and student), trained only when time masking is on
        self.mask_generator.mask_embedding.requires_grad_(mask_time_prob > 0)
        self.output_layer = torch.nn.Linear(hidden_size, output_size) if output_size else None
        self._output_size = output_size or hidden_size
        self.normalize_waveform = normalize_waveform
        self.freeze_feature_extractor = freeze_feature_extractor
        if freeze_feature_extractor:
            for p in self.feature_extractor.parameters():
                p.requires_grad_(False)
        self.freeze_encoder_steps = freeze_encoder_steps
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.pretrained_path = pretrained_path
        if pretrained_path is not None:
            if not is_rebuilding_trained_model():
                self.load_pretrained(pretrained_path)
            else:
                logger.info("pretrained_path %s not read: the model's own trained weights are loaded", pretrained_path)

    def output_size(self) -> int:
        return self._output_size

    # -- pretrained weights --------------------------------------------------------
    def load_pretrained(self, path: Union[str, Path]) -> WavLMCheckpoint:
        """Load a local WavLM checkpoint; refuse one whose architecture or
        shapes differ from this encoder's config, naming the file and the
        first mismatching key or option."""
        ckpt = read_wavlm_checkpoint(path)
        for name, value in ckpt.arch.items():
            if name in self.arch and self.arch[name] != value:
                raise CheckpointError(
                    f"pretrained WavLM checkpoint {ckpt.path} ({ckpt.format}) has {name}={value!r}, "
                    f"the encoder config {name}={self.arch[name]!r}: set encoder_conf.{name} to match the checkpoint"
                )
        state = {_torchaudio_to_ours(k): v for k, v in ckpt.state.items()}
        # not in every file (torchaudio's state dicts have no mask embedding): kept as initialised when absent
        optional = {k for k in self.state_dict()
                    if k.startswith("output_layer.") or k in ("num_updates", MASK_EMBEDDING)}
        own = {k: v for k, v in self.state_dict().items() if k not in optional or k in state}
        for key, expected in own.items():  # model order: the first mismatch is the earliest layer
            if key not in state:
                raise CheckpointError(
                    f"pretrained WavLM checkpoint {ckpt.path} ({ckpt.format}) does not match the encoder config: "
                    f"first mismatching key {key} is missing from the file "
                    f"({len(set(own) - set(state))} missing in all)"
                )
            if state[key].shape != expected.shape:
                raise CheckpointError(
                    f"pretrained WavLM checkpoint {ckpt.path} ({ckpt.format}) does not match the encoder config: "
                    f"first mismatching key {key}: file {tuple(state[key].shape)}, config {tuple(expected.shape)} "
                    "(another model size? compare hidden_size, num_blocks, linear_units, extractor_conv_layers)"
                )
        extra = [k for k in state if k not in own]
        if extra:
            raise CheckpointError(
                f"pretrained WavLM checkpoint {ckpt.path} ({ckpt.format}) does not match the encoder config: "
                f"first mismatching key {extra[0]} is not in the encoder ({len(extra)} unexpected keys in all; "
                "more layers than num_blocks, or another architecture)"
            )
        self.load_state_dict({**self.state_dict(), **state}, strict=True)
        logger.info("loaded pretrained WavLM from %s (%s); not used: %s",
                    ckpt.path, ckpt.format, ckpt.dropped or "none")
        return ckpt

    # -- forward -------------------------------------------------------------------
    def _normalize(self, wave: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Zero mean, unit variance per utterance over its own samples
        (WavLM Large was pre-trained on normalised waveforms)."""
        valid = (torch.arange(wave.size(1), device=wave.device)[None, :] < lens[:, None]).to(wave.dtype)
        n = valid.sum(1, keepdim=True).clamp(min=1)
        mean = (wave * valid).sum(1, keepdim=True) / n
        var = (((wave - mean) * valid) ** 2).sum(1, keepdim=True) / n
        return (wave - mean) / torch.sqrt(var + 1e-5) * valid

    def _relative_position_bias(self, batch: int, length: int) -> Optional[torch.Tensor]:
        attention = self.encoders[0].attention
        if getattr(attention, "rel_attn_embed", None) is None:
            return None
        return attention.compute_bias(length, length).unsqueeze(0).repeat(batch, 1, 1, 1)

    def forward(
        self,
        xs_pad: torch.Tensor,
        ilens: torch.Tensor,
        prev_states: torch.Tensor = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Waveform ``(B, T)`` -> ``(B, T', output_size)``, output lengths, None."""
        if xs_pad.dim() == 3 and xs_pad.size(-1) == 1:
            xs_pad = xs_pad.squeeze(-1)
        if xs_pad.dim() != 2:
            raise ValueError(
                f"{type(self).__name__} takes raw waveforms (B, T), got a tensor of shape {tuple(xs_pad.shape)}: "
                "use input_size: 1 and no frontend in the ESPnet config"
            )
        frozen = False
        if self.training and torch.is_grad_enabled():
            frozen = int(self.num_updates) < self.freeze_encoder_steps
            self.num_updates += 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            wave = self._normalize(xs_pad, ilens) if self.normalize_waveform else xs_pad
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_feature_extractor):
                feats, lens = self.feature_extractor(wave, ilens)
            x = self.feature_projection(feats)
            pad = torch.arange(x.size(1), device=x.device)[None, :] >= lens[:, None]
            x = x.masked_fill(pad[..., None], 0.0)
            if self.training and (self.mask_generator.mask_prob > 0 or self.mask_generator.mask_channel_prob > 0):
                x, _ = self.mask_generator(x, pad)  # padding is never masked
            # additive key padding mask (float, as WavLM's attention combines it with the position bias)
            pad = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, float("-inf"))
            x = x + self.pos_conv_embed(x)
            if self.norm_input:
                x = self.layer_norm(x)
            x = self.dropout(x)
            bias = self._relative_position_bias(x.size(0), x.size(1))
            for block in self.encoders:  # a gated stack yields only the blocks that run (and skip stand-ins)
                x, pad, bias = block(x, pad, bias)
            if not self.norm_input:
                x = self.layer_norm(x)
        if self.output_layer is not None:
            x = self.output_layer(x)
        return x, lens, None


class DLDWavLMEncoder(DynamicDepthMixin, WavLMEncoder):
    """``encoder: dld_wavlm``: :class:`WavLMEncoder` with DLD's gated layers
    (``layer_drop_prob``, ``min_active_layers``, ``depth_policy``,
    ``keep_final_norm_when_dropped``, ``set_depth``, ``active_layers``).
    Parameter names equal the static ``wavlm``'s, so a student can start
    from a fine-tuned WavLM teacher (``--init_param``)."""

    final_norm_of = staticmethod(wavlm_final_norm)


dynamic_encoder_signature(DLDWavLMEncoder, WavLMEncoder)
