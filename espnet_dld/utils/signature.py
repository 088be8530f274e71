"""Signatures for classes that add options to an ESPnet class via ``**kwargs``."""
from __future__ import annotations

import inspect
from typing import Callable, Sequence


def extend_signature(cls: type, base: type, extra_from: Callable, extra: Sequence[str]) -> type:
    """Give ``cls`` the signature of ``base`` plus the options ``extra`` of
    ``extra_from`` (keyword-only).

    ESPnet's ``--print_config`` and config dumps read default options with
    ``inspect.signature(cls)``; a subclass that passes ESPnet's options on as
    ``**kwargs`` would otherwise hide them.
    """
    own = inspect.signature(extra_from).parameters
    params = [p for p in inspect.signature(base).parameters.values() if p.kind != p.VAR_KEYWORD]
    params += [own[name].replace(kind=inspect.Parameter.KEYWORD_ONLY) for name in extra]
    cls.__signature__ = inspect.Signature(params)
    return cls
