"""Whether a model is being rebuilt from its own trained files.

Building a model *for training* may read other files: a DLD student loads
its teacher, a WavLM encoder its pretrained checkpoint.  Rebuilding a
*trained* model (decoding, export, a teacher for another student) must not:
its own weights replace those, and the files may be absent where the model
is used.  Code that rebuilds runs inside :func:`rebuilding_trained_model`;
code that would read such files asks :func:`is_rebuilding_trained_model`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

_rebuilding = False


@contextlib.contextmanager
def rebuilding_trained_model() -> Iterator[None]:
    """Models built inside read no teacher and no pretrained checkpoint."""
    global _rebuilding
    previous, _rebuilding = _rebuilding, True
    try:
        yield
    finally:
        _rebuilding = previous


def is_rebuilding_trained_model() -> bool:
    return _rebuilding
