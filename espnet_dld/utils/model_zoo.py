"""Unpacking packed models (ESPnet model-zoo zips) for decoding and teachers.

espnet_model_zoo caches a local zip under a hash of its *path* and skips
unpacking when that cache exists, so re-packing a model at the same path
would silently decode the old one.  We key the cache on the file's path,
size and modification time instead.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Union

from espnet_dld.utils.model_files import check_packed_model, unpack_error


def default_cache_dir() -> Path:
    return Path(os.environ.get("ESPNET_DLD_CACHE", Path.home() / ".cache" / "espnet_dld")) / "models"


def unpack_model(model: Union[str, Path], cachedir: Optional[Union[str, Path]] = None) -> Dict[str, str]:
    """Unpack a packed model zip (or fetch a model-zoo tag) and return the
    keyword arguments ESPnet's ``Speech2Text`` takes (``asr_train_config``,
    ``asr_model_file``, ...)."""
    from espnet_model_zoo.downloader import ModelDownloader

    path = Path(model)
    if path.exists():
        if not path.is_file():
            raise ValueError(f"packed model {path} is not a file (expected a .zip made by espnet2.bin.pack)")
        st = path.stat()
        key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        root = Path(cachedir) if cachedir is not None else default_cache_dir()
        target = root / f"{path.stem}-{key}"
        check_packed_model(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Expanding a local model to the cachedir"
                info = ModelDownloader(target).download_and_unpack(str(path.resolve()))
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as e:
            shutil.rmtree(target, ignore_errors=True)  # no half-unpacked cache that a rerun would trust
            raise unpack_error(path, e) from e
    else:
        if str(model).endswith(".zip") or os.sep in str(model):
            raise FileNotFoundError(f"packed model {model} does not exist")
        info = ModelDownloader(cachedir).download_and_unpack(str(model))
    return {k: v for k, v in info.items() if v is not None}
