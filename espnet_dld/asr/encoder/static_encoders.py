"""ESPnet's conformer and transformer with the extra input layers of
:mod:`espnet_dld.asr.encoder.subsampling` (``input_layer: conv1d4x``).

Registered as ``static_conformer`` and ``static_transformer``: the encoders of
teachers with that front end, and of exported depths of a dynamic model that
uses it.  With one of ESPnet's own input layers they are ESPnet's classes
unchanged.  The dynamic encoders extend them, so a teacher and its student
share parameter names (``--student_init teacher``, ``--init_param``).
"""
from __future__ import annotations

import inspect

from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

from espnet_dld.asr.encoder.subsampling import ExtraInputLayers


class StaticConformerEncoder(ExtraInputLayers, ConformerEncoder):
    """ESPnet's ``ConformerEncoder``; ``input_layer`` may also be ``conv1d4x``."""


class StaticTransformerEncoder(ExtraInputLayers, TransformerEncoder):
    """ESPnet's ``TransformerEncoder``; ``input_layer`` may also be ``conv1d4x``."""


# ESPnet's config dumps read the options from the signature, which **kwargs would hide
StaticConformerEncoder.__signature__ = inspect.signature(ConformerEncoder)
StaticTransformerEncoder.__signature__ = inspect.signature(TransformerEncoder)
