"""ESPnet's ASR task with espnet-dld's classes registered.

``ASRTask.build_model`` reads the module-level ``ClassChoices`` of
``espnet2.tasks.asr`` directly, so adding our classes to their ``classes``
dicts is what makes training, ``build_model_from_file`` and ``Speech2Text``
see them (see also :mod:`espnet_dld.registration`).  The subclass exists so
that DDP workers, which unpickle ``ASRTask.main_worker``, import this module
(and so register) too.
"""
from __future__ import annotations

from espnet_dld.utils.quiet_imports import import_espnet_quietly

import_espnet_quietly()

import espnet2.tasks.asr as espnet_asr  # noqa: E402

from espnet_dld.registration import register  # noqa: E402

register()  # a no-op when the import hook already did it


class ASRTask(espnet_asr.ASRTask):
    """``espnet2.tasks.asr.ASRTask`` with ``dld_conformer``, ``dld_transformer``
    and the ``dld`` model available; otherwise identical."""
