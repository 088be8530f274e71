"""Shared fixtures: a tiny generated Kaldi-style corpus and tiny experiments
trained through the real CLIs (teacher, LD baseline, DLD student)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_experiment import TinyExperiment  # noqa: E402


@pytest.fixture(scope="session")
def tiny_exp(tmp_path_factory) -> TinyExperiment:
    """Corpus + stats + teacher, LD and DLD students (2 steps each)."""
    exp = TinyExperiment(tmp_path_factory.mktemp("tiny_exp"))
    exp.prepare()
    exp.train("teacher")
    exp.train("ld")
    exp.train("dld")
    return exp


@pytest.fixture(scope="session")
def tiny_wavlm_exp(tmp_path_factory) -> TinyExperiment:
    """The same with tiny random WavLMs: a static ``wavlm`` teacher and a
    ``dld_wavlm`` DLD student (2 steps each), from a pretrained checkpoint file."""
    exp = TinyExperiment(tmp_path_factory.mktemp("tiny_wavlm_exp"), encoder="wavlm")
    exp.prepare()
    exp.train("teacher")
    exp.train("dld")
    return exp


@pytest.fixture(scope="session")
def tiny_conv1d_exp(tmp_path_factory) -> TinyExperiment:
    """The conformer experiment with ``input_layer: conv1d4x``: a
    ``static_conformer`` teacher and a DLD student (2 steps each)."""
    exp = TinyExperiment(tmp_path_factory.mktemp("tiny_conv1d_exp"), encoder="conv1d")
    exp.prepare()
    exp.train("teacher")
    exp.train("dld")
    return exp
