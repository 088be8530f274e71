"""Import ESPnet without the noise it makes on an offline machine.

``espnet2.text.phoneme_tokenizer`` imports g2p_en, which calls
``nltk.download`` at import time and prints several lines of download errors
when there is no network; ESPnet's attention module prints a line when
flash-attn is absent, and some modules raise FutureWarnings at import.  None
of that is actionable for our users, so the first import happens here.
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_espnet_imports():
    """Silence NLTK download errors, the flash-attn notice and import-time
    FutureWarnings while ESPnet modules are imported for the first time."""
    try:
        import nltk
    except ImportError:  # pragma: no cover - nltk comes with espnet
        nltk = None
    original = getattr(nltk, "download", None)
    captured = io.StringIO()
    if nltk is not None:
        nltk.download = functools.partial(original, quiet=True, raise_on_error=False, print_error_to=captured)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if nltk is not None:
            nltk.download = original
        for line in captured.getvalue().splitlines():
            logger.debug("import: %s", line)


def import_espnet_quietly() -> None:
    """Import the ESPnet modules the package builds on, quietly, once."""
    with quiet_espnet_imports():
        import espnet2.tasks.asr  # noqa: F401
        import espnet2.text.phoneme_tokenizer  # noqa: F401  (g2p_en -> nltk)
