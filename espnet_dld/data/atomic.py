"""Atomic file writers: the one place this package writes temp-then-rename.

Every file (or folder) a tool produces is written under a temporary name in
the same folder and then renamed with :func:`os.replace`, so an interrupted run
never leaves a half-written file behind: a file either has its old content, its
new content, or does not exist.
"""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import soundfile

PathLike = Union[str, os.PathLike]


def _tmp_name(path: Path) -> Path:
    # Hidden, pid-tagged, in the same folder so that os.replace stays a rename
    # inside one file system; the suffix is kept for writers that go by it.
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``path`` if the block succeeds.

    The temporary file is removed when the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a fresh, empty temporary folder that replaces the folder ``path``
    (and whatever it held) if the block succeeds; removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: PathLike, text: str) -> bool:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Returns False and leaves the file untouched (mtime included) when it already
    has exactly this content, so re-running a preparation step is a no-op.
    """
    path = Path(path)
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def write_audio_atomic(
    path: PathLike, samples: np.ndarray, sample_rate: int, fmt: str = "WAV"
) -> None:
    """Write 16-bit PCM audio (``fmt`` "WAV" or "FLAC") to ``path`` atomically."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise TypeError(f"{path}: expected int16 samples, got {samples.dtype}")
    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), samples, sample_rate, format=fmt, subtype="PCM_16")
