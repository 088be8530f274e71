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
import importlib
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # Only this module's import is redirected: modules that bind
            # ``file=sys.stdout`` as a default at import (ESPnet's
            # print_config) must see the real stdout.
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                _import_attention_module()
            yield
    finally:
        if nltk is not None:
            nltk.download = original
        for line in captured.getvalue().splitlines():
            logger.debug("import: %s", line)


def _import_attention_module() -> None:
    """ESPnet's attention module prints a notice when flash-attn is absent
    (to stdout in espnet 202511, to stderr in 202611);
    its location moved to ``espnet2.legacy.nets`` in espnet 202611."""
    for name in (
        "espnet2.legacy.nets.pytorch_backend.transformer.attention",  # espnet >= 202611
        "espnet.nets.pytorch_backend.transformer.attention",  # espnet 202511
    ):
        try:
            importlib.import_module(name)
            return
        except ImportError:
            continue


def import_espnet_quietly() -> None:
    """Import the ESPnet modules the package builds on, quietly, once."""
    with quiet_espnet_imports():
        import espnet2.tasks.asr  # noqa: F401
        import espnet2.text.phoneme_tokenizer  # noqa: F401  (g2p_en -> nltk)
