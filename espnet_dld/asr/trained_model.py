"""Loading a trained ASR model: the one way this package does it.

A trained model is given as a packed zip (``espnet2.bin.pack``) or as its
``.pth`` with its training ``config.yaml`` (by default the one beside it).
:func:`load_trained_model` builds it with ESPnet's stock ASR task (our
classes are registered there, :mod:`espnet_dld.registration`) and loads the
weights strictly (:func:`espnet_dld.utils.checkpoint.load_state_dict_strict`):
a checkpoint of another depth or width is an error, never a half-load.

Building a model *for training* may read other files: a DLD student loads
its teacher, a WavLM encoder its pretrained checkpoint.  Rebuilding a
*trained* model (decoding, export, a teacher for another student) must not:
its own weights replace those, and the files may be absent where the model
is used.  Such code runs inside :func:`rebuilding_trained_model`; code that
would read those files asks :func:`is_rebuilding_trained_model`.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import torch

from espnet_dld.utils.checkpoint import load_state_dict_strict

PathLike = Union[str, Path]

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


def is_packed(model_file: PathLike) -> bool:
    """Whether ``model_file`` names a packed model zip rather than a ``.pth``."""
    return str(model_file).endswith(".zip")


def trained_model_files(
    model_file: Optional[PathLike],
    config_file: Optional[PathLike] = None,
    model_option: str = "--asr_model_file",
    config_option: str = "--asr_train_config",
) -> Tuple[str, str]:
    """``(config, model file)`` of a trained model given as a packed zip or a
    ``.pth`` (whose config defaults to ``config.yaml`` beside it).  Errors
    name the option (``model_option``/``config_option``) and the file."""
    if model_file is None:
        raise ValueError(f"{model_option} is required (a .pth or a packed .zip)")
    if not Path(model_file).exists():
        raise FileNotFoundError(f"{model_option}: {model_file} does not exist")
    if config_file is not None and not Path(config_file).exists():
        raise FileNotFoundError(f"{config_option}: {config_file} does not exist")
    if is_packed(model_file):
        if config_file is not None:
            raise ValueError(
                f"{model_option}={model_file} is a packed zip, which carries its own "
                f"config: leave {config_option} ({config_file}) unset"
            )
        from espnet_dld.utils.model_zoo import unpack_model

        files = unpack_model(model_file)
        return files["asr_train_config"], files["asr_model_file"]
    if config_file is None:
        config_file = Path(model_file).parent / "config.yaml"
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist (give {config_option})")
    return str(config_file), str(model_file)


def load_trained_model(
    model_file: Optional[PathLike],
    config_file: Optional[PathLike] = None,
    device: str = "cpu",
    model_option: str = "--asr_model_file",
    config_option: str = "--asr_train_config",
) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """The trained model (and its training arguments) of a packed zip or a
    ``.pth`` + config, built by ESPnet's stock ASR task without its teacher
    or pretrained files, with strictly loaded weights, on ``device``."""
    config_file, model_file = trained_model_files(model_file, config_file, model_option, config_option)
    from espnet_dld.registration import register
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.tasks.asr import ASRTask
    register()  # a no-op when the import hook already did it
    with rebuilding_trained_model():
        model, train_args = ASRTask.build_model_from_file(config_file, None, device)
    load_state_dict_strict(model, model_file)
    return model, train_args
