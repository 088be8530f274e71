"""ESPnet's warnings that a user of a trained model cannot act on, filtered
where our API begins.

Decoding a trained model through ESPnet prints, on every machine:

* ``FutureWarning: torch.cuda.amp.autocast(args...) is deprecated`` from
  ``espnet2.asr.espnet_model`` (ESPnet's code calls the old torch API, even
  on a CPU);
* ``WARNING: Using legacy_rel_pos (legacy_rel_selfattn) and it will be
  deprecated in the future`` from ESPnet's conformer-type encoders (the
  default of their ``rel_pos_type``, fixed once the model is trained);
* ``WARNING: Set decoder to none as ctc_weight==1.0`` when a CTC-only model
  is built: a notice, not a problem; it is kept, at INFO level.

Each is matched by its message *and* by the ESPnet module that raises it,
so the same words from any other code (or a user's own warnings) pass.
The filters are installed by :func:`filter_unactionable_espnet_warnings`
when :mod:`espnet_dld.bin.asr_inference` (``Speech2Text``) is imported.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Tuple

#: (message regex, category, module regex) of ``warnings`` to ignore
IGNORED_WARNINGS: Tuple[Tuple[str, type, str], ...] = (
    (r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated", FutureWarning, r"espnet2\."),
)
#: log records of ESPnet modules (path part, message regex) dropped: deprecations the user cannot act on
DROPPED_LOG_RECORDS: Tuple[Tuple[str, str], ...] = (
    (f"{os.sep}espnet2{os.sep}asr{os.sep}encoder{os.sep}", r"^Using legacy_rel_(pos|selfattn) and it will be deprecated"),
)
#: log records of ESPnet modules lowered from WARNING to INFO: notices, not problems
DEMOTED_LOG_RECORDS: Tuple[Tuple[str, str], ...] = (
    (f"{os.sep}espnet2{os.sep}asr{os.sep}espnet_model.py", r"^Set decoder to none as ctc_weight==1\.0$"),
)


class EspnetNoticeFilter(logging.Filter):
    """Drops or demotes the log records of :data:`DROPPED_LOG_RECORDS` and
    :data:`DEMOTED_LOG_RECORDS` (ESPnet logs them on the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        for path_part, pattern in DROPPED_LOG_RECORDS:
            if path_part in record.pathname and re.search(pattern, message):
                return False
        for path_part, pattern in DEMOTED_LOG_RECORDS:
            if path_part in record.pathname and re.search(pattern, message):
                record.levelno, record.levelname = logging.INFO, "INFO"
                # the logger let it through as a WARNING: pass it on only where INFO is shown
                return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def filter_unactionable_espnet_warnings() -> None:
    """Install the filters (idempotent: a second call changes nothing)."""
    for message, category, module in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)  # replaces its twin
    root = logging.getLogger()
    if not any(isinstance(f, EspnetNoticeFilter) for f in root.filters):
        root.addFilter(EspnetNoticeFilter())
