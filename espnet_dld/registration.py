"""Registering our classes in ESPnet's ASR task, on import of the package.

ESPnet has no plugin entry point: ``ASRTask.build_model`` reads the
module-level ``ClassChoices`` of ``espnet2.tasks.asr``, so our encoders and
model must be added there (:func:`register`).
Importing ``espnet2.tasks.asr`` costs 10-15 s, which tools that never touch
ESPnet (data preparation, scoring, reports) should not pay, so
``import espnet_dld`` registers at once only if ESPnet's ASR task is already
imported, and otherwise installs a one-shot import hook that registers the
moment it is.  Either way, whenever ``espnet2.tasks.asr`` exists in a process
that imported ``espnet_dld``, it knows ``dld_conformer``, ``dld_transformer``,
``dld_wavlm``, ``wavlm`` (static WavLM, e.g. a teacher), ``static_conformer`` and
``static_transformer`` (ESPnet's, plus ``input_layer: conv1d4x``) and ``dld``.  The hook also keeps ESPnet's offline import noise quiet.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

TARGET = "espnet2.tasks.asr"


def register() -> None:
    """Add our encoders and model to ESPnet's ASR task (idempotent)."""
    import espnet2.tasks.asr as espnet_asr

    from espnet_dld.asr.dld_espnet_model import DLDESPnetASRModel
    from espnet_dld.asr.encoder.dld_conformer_encoder import DLDConformerEncoder
    from espnet_dld.asr.encoder.dld_transformer_encoder import DLDTransformerEncoder
    from espnet_dld.asr.encoder.dld_wavlm_encoder import DLDWavLMEncoder, WavLMEncoder
    from espnet_dld.asr.encoder.static_encoders import StaticConformerEncoder, StaticTransformerEncoder

    espnet_asr.encoder_choices.classes["dld_conformer"] = DLDConformerEncoder
    espnet_asr.encoder_choices.classes["dld_transformer"] = DLDTransformerEncoder
    espnet_asr.encoder_choices.classes["dld_wavlm"] = DLDWavLMEncoder
    espnet_asr.encoder_choices.classes["wavlm"] = WavLMEncoder
    espnet_asr.encoder_choices.classes["static_conformer"] = StaticConformerEncoder
    espnet_asr.encoder_choices.classes["static_transformer"] = StaticTransformerEncoder
    espnet_asr.model_choices.classes["dld"] = DLDESPnetASRModel


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds ``espnet2.tasks.asr`` with the other finders and wraps its
    loader so that our classes are registered right after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            from espnet_dld.utils.quiet_imports import quiet_espnet_imports

            with quiet_espnet_imports():
                exec_module(module)
            register()

        spec.loader.exec_module = exec_then_register
        return spec


def register_on_espnet_import() -> None:
    """Register now if ESPnet's ASR task is loaded, else when it is."""
    if TARGET in sys.modules:
        register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
