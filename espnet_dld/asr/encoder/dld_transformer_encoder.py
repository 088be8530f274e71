"""Transformer encoder whose blocks can be dropped in training and skipped at inference."""
from __future__ import annotations

from typing import Optional

from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin, dynamic_encoder_signature
from espnet_dld.asr.encoder.static_encoders import StaticTransformerEncoder


def transformer_final_norm(block) -> Optional[object]:
    """Only a post-norm transformer block ends with a LayerNorm (``norm2``)."""
    return None if getattr(block, "normalize_before", True) else getattr(block, "norm2", None)


class DLDTransformerEncoder(DynamicDepthMixin, StaticTransformerEncoder):
    """ESPnet's ``TransformerEncoder`` with DLD's gated blocks (options as for
    :class:`~espnet_dld.asr.encoder.dld_conformer_encoder.DLDConformerEncoder`)."""

    final_norm_of = staticmethod(transformer_final_norm)


dynamic_encoder_signature(DLDTransformerEncoder, TransformerEncoder)
