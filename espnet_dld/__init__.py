"""espnet-dld: dynamic-depth ASR with Distillation-based Layer Dropping on ESPnet.

``import espnet_dld`` makes its encoders (``dld_conformer``,
``dld_transformer``, ``dld_wavlm``, ``wavlm``) and model (``dld``) available in ESPnet's ASR task
(see :mod:`espnet_dld.registration`).
"""
from espnet_dld.registration import register_on_espnet_import
from espnet_dld.version import __version__

register_on_espnet_import()

__all__ = ["__version__", "ASRTask", "Speech2Text"]


def __getattr__(name):
    # Both pull in ESPnet (10-15 s): load them on first use.
    if name == "Speech2Text":
        from espnet_dld.bin.asr_inference import Speech2Text

        return Speech2Text
    if name == "ASRTask":
        from espnet_dld.tasks.asr import ASRTask

        return ASRTask
    raise AttributeError(f"module 'espnet_dld' has no attribute {name!r}")
