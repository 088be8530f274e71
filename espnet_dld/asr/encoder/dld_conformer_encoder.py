"""Conformer encoder whose blocks can be dropped in training and skipped at inference."""
from __future__ import annotations

from typing import Optional

from espnet2.asr.encoder.conformer_encoder import ConformerEncoder

from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin, dynamic_encoder_signature
from espnet_dld.asr.encoder.static_encoders import StaticConformerEncoder


def conformer_final_norm(block) -> Optional[object]:
    """A conformer block ends with ``norm_final`` when it has a conv module."""
    return getattr(block, "norm_final", None) if getattr(block, "conv_module", None) is not None else None


class DLDConformerEncoder(DynamicDepthMixin, StaticConformerEncoder):
    """ESPnet's ``ConformerEncoder`` with DLD's gated blocks.

    Accepts every ``ConformerEncoder`` option unchanged (and ``input_layer:
    conv1d4x``, see :mod:`~espnet_dld.asr.encoder.subsampling`) plus
    ``layer_drop_prob``, ``min_active_layers``, ``depth_policy`` and
    ``keep_final_norm_when_dropped``.  Parameter names are ESPnet's, so
    ``--init_param`` from a static conformer works and a depth-k subset is a
    plain conformer.  ESPnet's own ``layer_drop_rate`` is refused.
    """

    final_norm_of = staticmethod(conformer_final_norm)


dynamic_encoder_signature(DLDConformerEncoder, ConformerEncoder)
