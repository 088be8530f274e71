"""Checks of the files a trained model is loaded from, with errors that name
the file and what to do.

Without them a truncated download fails with ``BadZipFile: File is not a
zip file`` (which file?), a zip that lost its model file with a
``FileNotFoundError`` on a path inside the model cache, and a config whose
encoder this installation does not know with ESPnet's ``--encoder must be
one of ...`` (which config?).
"""
from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import yaml

PathLike = Union[str, Path]

#: what a packed ASR model must hold, by its meta.yaml key
REQUIRED_MEMBERS = {"asr_train_config": "config", "asr_model_file": "model file"}


class ModelFileError(ValueError):
    """A packed model or config that cannot be used as it is; the message
    names the file and what to do."""


def repack_hint(path: PathLike) -> str:
    return (f"re-download it, or re-pack it from the experiment folder: python -m espnet2.bin.pack asr "
            f"--asr_train_config <exp>/config.yaml --asr_model_file <exp>/valid.loss.ave.pth --outpath {path}")


def _archive_names_and_meta(path: Path) -> Tuple[list, Optional[bytes]]:
    """Member names of a zip or tar archive and the bytes of its ``meta.yaml`` (None if it has none)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            meta = [n for n in names if Path(n).name == "meta.yaml"]
            return names, (z.read(meta[0]) if meta else None)
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            names = t.getnames()  # reads the whole (compressed) stream: notices truncation
            meta = [n for n in names if Path(n).name == "meta.yaml"]
            return names, (t.extractfile(meta[0]).read() if meta else None)
    raise ModelFileError(f"packed model {path} is not a readable zip archive (truncated or corrupt download?)")


def _member_name(name: str) -> str:
    """An archive path as zip and tar store it: ``pack`` of absolute paths
    lists ``/exp/x.pth`` in meta.yaml, the archive holds ``exp/x.pth``."""
    name = name.lstrip("/")
    return name[2:] if name.startswith("./") else name


def check_packed_model(path: PathLike) -> Dict[str, str]:
    """Check that a packed model (``espnet2.bin.pack``'s zip or tar) can be
    read and holds a config and a model file; returns its meta.yaml's
    ``{key: member}`` of files."""
    path = Path(path)
    hint = repack_hint(path)
    try:
        names, meta_text = _archive_names_and_meta(path)
    except ModelFileError as e:
        raise ModelFileError(f"{e}; {hint}") from None
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise ModelFileError(f"packed model {path} cannot be read (truncated or corrupt): {e}; {hint}") from e
    if meta_text is None:
        raise ModelFileError(f"packed model {path} holds no meta.yaml, so it is not a model packed by "
                             f"espnet2.bin.pack (or files are missing); {hint}")
    try:
        meta = yaml.safe_load(meta_text)
        members = {**(meta.get("yaml_files") or {}), **(meta.get("files") or {})}
    except (yaml.YAMLError, AttributeError, TypeError) as e:
        raise ModelFileError(f"packed model {path}: its meta.yaml is unreadable ({e}); {hint}") from e
    for key, what in REQUIRED_MEMBERS.items():
        if key not in members:
            raise ModelFileError(f"packed model {path} has no {what} (its meta.yaml lists no {key}); {hint}")
    present = {_member_name(n) for n in names}
    for key, member in members.items():
        if _member_name(member) not in present:
            raise ModelFileError(f"packed model {path} lacks {member}, which its meta.yaml lists as {key}; {hint}")
    return members


def unpack_error(path: PathLike, error: BaseException) -> ModelFileError:
    """The error for an archive whose members fail while being unpacked
    (a CRC mismatch or a truncated member)."""
    return ModelFileError(f"packed model {path} is corrupt: {error}; {repack_hint(path)}")


def check_train_config(config_file: PathLike) -> None:
    """Refuse a training config that is not YAML, or that names a class
    (encoder, model, front end, ...) this installation has not registered
    with ESPnet's ASR task, naming the config and the known choices."""
    from espnet_dld.tasks.asr import ASRTask

    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ModelFileError(f"config {path} is not valid YAML ({e}); restore it from the experiment folder "
                             "or re-pack the model") from e
    if not isinstance(conf, dict):
        raise ModelFileError(f"config {path} holds no training configuration (got {type(conf).__name__}); "
                             "restore it from the experiment folder or re-pack the model")
    for choices in ASRTask.class_choices_list:
        value = conf.get(choices.name)
        if value is None or not isinstance(value, str):
            continue
        if value.lower() in choices.classes or (choices.optional and value.lower() in ("none", "null", "nil")):
            continue
        known = ", ".join(sorted(choices.classes))
        raise ModelFileError(
            f"config {path}: {choices.name} '{value}' is not registered with ESPnet's ASR task (known: {known}); "
            f"the model needs code this installation lacks: install the espnet-dld/ESPnet version it was "
            f"trained with (or the package that provides '{value}'), or re-pack it from a config that names a "
            f"known {choices.name}"
        )

