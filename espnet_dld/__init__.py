"""espnet-dld: dynamic-depth ASR with Distillation-based Layer Dropping on ESPnet.

Importing the package registers its encoders (``dld_conformer``,
``dld_transformer``) and model (``dld``) in ESPnet's ASR task.
"""
from espnet_dld.version import __version__
from espnet_dld.tasks.asr import ASRTask  # noqa: F401  (registers our classes)

__all__ = ["__version__", "ASRTask", "Speech2Text"]


def __getattr__(name):
    # Speech2Text pulls in ESPnet's decoding stack; load it on first use.
    if name == "Speech2Text":
        from espnet_dld.bin.asr_inference import Speech2Text

        return Speech2Text
    raise AttributeError(f"module 'espnet_dld' has no attribute {name!r}")
