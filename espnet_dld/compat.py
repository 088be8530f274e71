"""Differences between the ESPnet releases we support.

espnet 202511 (the last for Python 3.11) keeps the old ``espnet.*`` modules;
espnet 202611 (Python >= 3.12) moved them to ``espnet2.legacy.*``.  Import
them from here, never from ``espnet.*`` directly.
"""
try:  # espnet >= 202611
    from espnet2.legacy.nets.beam_search import Hypothesis
    from espnet2.legacy.nets.pytorch_backend.transformer import embedding, subsampling
    from espnet2.legacy.utils.cli_utils import get_commandline_args
except ImportError:  # espnet 202511
    from espnet.nets.beam_search import Hypothesis
    from espnet.nets.pytorch_backend.transformer import embedding, subsampling
    from espnet.utils.cli_utils import get_commandline_args

Conv2dSubsampling = subsampling.Conv2dSubsampling
TooShortUttError = subsampling.TooShortUttError

__all__ = ["Conv2dSubsampling", "Hypothesis", "TooShortUttError", "embedding", "get_commandline_args", "subsampling"]
