"""eSpeak NG speech synthesis backends.

Two ways to reach eSpeak NG, tried in this order by :func:`get_espeak`:

``library``
    The PyPI wheel ``espeakng-loader`` ships ``libespeak-ng`` and its data
    folder; we drive it through ctypes (synchronous mode, samples collected by
    a synth callback).  No root and no download beyond PyPI are needed.
``command``
    The ``espeak-ng`` program (Debian package ``espeak-ng``), one process per
    utterance.

The library keeps state across utterances (e.g. a static pitch-flutter phase
in its wave generator), so the same text synthesized twice in one process
differs slightly.  To make every utterance depend on its inputs only, the
library backend synthesizes each utterance in a child forked from a helper
process that initialized the library but never synthesized
(:mod:`_espeak_server`).
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile

INSTALL_HINT = (
    "eSpeak NG is needed to generate the synthetic corpus: install the PyPI package "
    "'espeakng-loader' (pip install espeakng-loader) or the Debian package 'espeak-ng' "
    "(apt-get install espeak-ng)."
)


class EspeakError(RuntimeError):
    pass


class Espeak(ABC):
    """Text -> int16 samples at :attr:`sample_rate` with a given voice."""

    name: str
    sample_rate: int
    version: str
    data_path: Optional[Path]

    @abstractmethod
    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text`` with ``voice`` (e.g. ``en-us+m3``), ``rate`` in words
        per minute (80-450) and ``pitch`` 0-99; returns int16 samples.

        ``seed`` seeds the random noise some voices add (breathy variants);
        the same arguments always give the same samples."""

    def close(self) -> None:
        """Release resources (helper processes); the object is unusable after."""

    def identity(self) -> str:
        """Backend and version, recorded in generation plans: a different
        eSpeak NG may sound different, so its files must not be reused."""
        return f"{self.name}:{self.version}"

    def check_voice(self, voice: str) -> None:
        """Raise EspeakError if the language or variant of ``voice`` is unknown
        (eSpeak NG silently falls back to a default voice for those)."""
        if self.data_path is None:
            return
        lang, _, variant = voice.partition("+")
        lang_dir = self.data_path / "lang"
        if lang.lower() not in {p.name.lower() for p in lang_dir.rglob("*") if p.is_file()}:
            raise EspeakError(
                f"eSpeak NG language {lang!r} of voice {voice!r} not found in {lang_dir}"
            )
        variant_dir = self.data_path / "voices" / "!v"
        if variant and not (variant_dir / variant).is_file():
            raise EspeakError(
                f"eSpeak NG variant {variant!r} of voice {voice!r} not found in {variant_dir}"
            )


def _check_args(text: str, rate: int, pitch: int) -> None:
    if not text.strip():
        raise EspeakError("empty text")
    if not 80 <= rate <= 450:
        raise EspeakError(f"rate {rate} outside 80..450 words per minute")
    if not 0 <= pitch <= 99:
        raise EspeakError(f"pitch {pitch} outside 0..99")


class EspeakLibrary(Espeak):
    """libespeak-ng (the ``espeakng-loader`` wheel by default) via ctypes.

    The library runs in a small helper process (:mod:`._espeak_server`) that
    forks one child per utterance from a pristine, initialized state.  Calls
    are serialized by a lock; the helper exits with this object.
    """

    name = "library"

    def __init__(self, library_path: Optional[str] = None, data_path: Optional[str] = None):
        if library_path is None or data_path is None:
            try:
                import espeakng_loader
            except ImportError as e:
                raise EspeakError(INSTALL_HINT) from e
            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        if not Path(library_path).is_file():
            raise EspeakError(f"libespeak-ng not found at {library_path}. {INSTALL_HINT}")
        self.library_path = str(library_path)
        self.data_path = Path(data_path)
        self._lock = threading.Lock()
        server = Path(__file__).with_name("_espeak_server.py")
        self._proc = subprocess.Popen(
            # -I -S: the helper needs only the standard library
            [sys.executable, "-I", "-S", str(server), self.library_path, str(self.data_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._finalizer = weakref.finalize(self, _stop_server, self._proc)
        header = self._proc.stdout.readline()
        try:
            info = json.loads(header)
        except ValueError:
            info = {"error": f"helper process exited ({self._proc.poll()}) without start-up line"}
        if "error" in info:
            self.close()
            raise EspeakError(f"cannot start libespeak-ng from {library_path}: {info['error']}")
        self.sample_rate = int(info["sample_rate"])
        self.version = str(info["version"])

    def close(self) -> None:
        """Stop the helper process (also done when the object is collected)."""
        self._finalizer()

    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int, seed: int = 0
    ) -> np.ndarray:
        _check_args(text, rate, pitch)
        request = json.dumps(
            {"text": text, "voice": voice, "rate": rate, "pitch": pitch, "seed": seed}
        )
        with self._lock:
            if self._proc.poll() is not None:
                raise EspeakError(f"eSpeak NG helper process has exited ({self._proc.returncode})")
            try:
                self._proc.stdin.write(request.encode() + b"\n")
                self._proc.stdin.flush()
                size = struct.unpack("<Q", _read_exactly(self._proc.stdout, 8))[0]
                payload = _read_exactly(self._proc.stdout, size)
            except (OSError, EOFError) as e:
                raise EspeakError(f"eSpeak NG helper process failed: {e}") from e
        if payload[:1] != b"K":
            msg = payload[1:].decode(errors="replace")
            raise EspeakError(f"eSpeak NG failed on voice {voice!r}, text {text!r}: {msg}")
        return np.frombuffer(payload, dtype="<i2", offset=1).astype(np.int16)


def _read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError(f"expected {size} bytes, got {0 if data is None else len(data)}")
    return data


def _stop_server(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        proc.stdout.close()


class EspeakCommand(Espeak):
    """The ``espeak-ng`` program, one process per utterance."""

    name = "command"

    def __init__(self, program: str = "espeak-ng"):
        exe = shutil.which(program)
        if exe is None:
            raise EspeakError(f"{program!r} not found on PATH. {INSTALL_HINT}")
        self.program = exe
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
        self.version = out.split(":", 1)[1].split()[0] if ":" in out else out.strip()
        self.data_path = None
        if "Data at:" in out:
            self.data_path = Path(out.rsplit("Data at:", 1)[1].strip())
        if self.data_path is not None and not self.data_path.is_dir():
            self.data_path = None
        self.sample_rate = self._run("a", "en", 175, 50)[1]

    def _run(self, text: str, voice: str, rate: int, pitch: int):
        """(int16 samples, sample rate) of one espeak-ng run."""
        fd, path = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        try:
            # text on stdin (-b 1: UTF-8), so that it is never taken for an option
            cmd = [self.program, "-b", "1", "-v", voice, "-s", str(rate), "-p", str(pitch)]
            cmd += ["-w", path, "--stdin"]
            proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
            if proc.returncode != 0:
                raise EspeakError(f"{' '.join(cmd)} failed on {text!r}: {proc.stderr.strip()}")
            x, sr = soundfile.read(path, dtype="int16")
        finally:
            os.unlink(path)
        return x, sr

    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int, seed: int = 0
    ) -> np.ndarray:
        # The program cannot be seeded, but every run starts from the same
        # state, so the output is reproducible all the same.
        _check_args(text, rate, pitch)
        return self._run(text, voice, rate, pitch)[0]


_BACKENDS = {"library": EspeakLibrary, "command": EspeakCommand}


def get_espeak(backend: str = "auto") -> Espeak:
    """Return an eSpeak NG backend: ``library``, ``command``, or the first that
    works (``auto``).  Raises EspeakError saying what to install if none does."""
    if backend != "auto":
        if backend not in _BACKENDS:
            choices = ", ".join(["auto", *_BACKENDS])
            raise ValueError(f"unknown eSpeak backend {backend!r}; choose from {choices}")
        return _BACKENDS[backend]()
    errors = []
    for name in ("library", "command"):
        try:
            return _BACKENDS[name]()
        except EspeakError as e:
            errors.append(f"{name}: {e}")
    raise EspeakError(INSTALL_HINT + " Tried: " + "; ".join(errors))


if __name__ == "__main__":  # tiny smoke test: python local/espeak.py "hello"
    es = get_espeak()
    x = es.synthesize(" ".join(sys.argv[1:]) or "hello world", "en-us", 175, 50)
    print(f"{es.identity()} {es.sample_rate} Hz {len(x) / es.sample_rate:.2f} s")
