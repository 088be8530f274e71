"""Differences between the ESPnet releases we support.

espnet 202511 (the last for Python 3.11) keeps the old ``espnet.*`` modules;
espnet 202611 (Python >= 3.12) moved them to ``espnet2.legacy.*``.
"""
try:  # espnet >= 202611
    from espnet2.legacy.nets.beam_search import Hypothesis
    from espnet2.legacy.utils.cli_utils import get_commandline_args
except ImportError:  # espnet 202511
    from espnet.nets.beam_search import Hypothesis
    from espnet.utils.cli_utils import get_commandline_args

__all__ = ["Hypothesis", "get_commandline_args"]
