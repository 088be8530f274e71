"""Speech as a user hands it to ``Speech2Text``: made one mono float channel
at the model's sampling rate, or refused with a message that says what is
wrong with *this* input and how to fix it.

ESPnet's ``Speech2Text`` takes a 1-D float tensor at the model's rate and
nothing else: a path or a list fails with an ``AttributeError``, audio that
is too short with a padding error from deep inside the front end, and
integer PCM, NaNs or audio at another rate are decoded into garbage without
a word.  :class:`ModelAudioInput` sits in front of it:

* accepted: a path to an audio file (read with soundfile, its own rate), a
  1-D numpy array, torch tensor or list of floats, with ``fs`` (Hz) when it
  is not at the model's rate; an array without ``fs`` is taken to be at the
  model's rate.  Arrays of shape ``(1, n)`` or ``(n, 1)`` are one channel.
* integer PCM (int8, uint8, int16, int32 arrays or tensors) is converted to
  float with its full scale, exactly as soundfile reads such a file
  (int16: ``x / 32768``); int64 (what a Python list of ints becomes) has no
  agreed full scale and is refused.
* other rates are resampled to the model's with the polyphase filter the
  recipe's ``format_audio`` uses (logged once per input rate, at INFO: it
  is what the caller asked for, not a problem).
* refused with :class:`AudioInputError` (a ``ValueError``): empty or shorter
  than the model's minimum (in samples and milliseconds, measured on the
  model itself, see :func:`probe_min_samples`), NaN or infinite samples,
  several channels, an unreadable or missing file (named), a bad ``fs``.
* float audio far outside [-1, 1] (integer PCM cast to float without
  scaling) is decoded but warned about.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Set, Tuple, Union

import numpy as np
import soundfile
import torch

from espnet_dld.data.audio import resample

logger = logging.getLogger(__name__)

Speech = Union[str, os.PathLike, np.ndarray, torch.Tensor, Sequence[float]]

#: integer sample types converted to float, by their full scale (as soundfile reads PCM files)
PCM_FULL_SCALE = {np.dtype(np.int8): 2**7, np.dtype(np.int16): 2**15, np.dtype(np.int32): 2**31}
#: float audio peaking above this is most likely integer PCM cast to float without scaling
FLOAT_PEAK_WARNING = 2.0
#: ESPnet's default sampling rate of every front end (``frontend_conf.fs``)
ESPNET_DEFAULT_FS = 16000


class AudioInputError(ValueError):
    """Speech that cannot be decoded as given; the message says why and what to do."""


def read_audio_file(path: Union[str, os.PathLike]) -> Tuple[np.ndarray, int]:
    """All samples of an audio file as float32 ``(frames, channels)`` and its
    rate; a missing, empty or unreadable file raises :class:`AudioInputError`
    naming it."""
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"audio file {path} does not exist")
    if not path.is_file():
        raise AudioInputError(f"audio file {path} is not a file")
    if path.stat().st_size == 0:
        raise AudioInputError(f"audio file {path} is empty (0 bytes)")
    try:
        data, fs = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for foreign or broken files
        reason = " ".join(str(e).split()) or type(e).__name__
        raise AudioInputError(f"cannot read audio file {path} (corrupt, truncated or not audio "
                              f"that soundfile reads: WAV, FLAC, OGG, ...): {reason}") from e
    return data, int(fs)


def as_float_array(speech: Any, what: str = "speech") -> np.ndarray:
    """A float32 numpy array of ``speech`` (array, tensor or sequence);
    integer PCM is scaled by its full scale, other types are refused."""
    if isinstance(speech, torch.Tensor):
        speech = speech.detach().cpu()
        if speech.dtype == torch.bfloat16:
            speech = speech.float()
        array = speech.numpy()
    elif isinstance(speech, np.ndarray):
        array = speech
    elif isinstance(speech, (list, tuple)):
        try:
            array = np.asarray(speech)
        except ValueError as e:  # ragged nesting
            raise AudioInputError(f"{what}: a list of samples must be flat (one channel): {e}") from e
        if array.dtype == object or array.dtype.kind in "US":
            raise AudioInputError(f"{what}: a list must hold numbers (samples), got {type(speech[0]).__name__}")
    else:
        raise AudioInputError(
            f"{what}: expected a path to an audio file, or samples as a numpy array, torch tensor or list, "
            f"got {type(speech).__name__}"
        )
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float32, copy=False)
    if array.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if array.dtype in PCM_FULL_SCALE:
        return (array.astype(np.float64) / PCM_FULL_SCALE[array.dtype]).astype(np.float32)
    if kind in "iu":
        raise AudioInputError(
            f"{what} has integer samples of type {array.dtype}, whose full scale is unknown; give float samples "
            "in [-1, 1] (e.g. x / 32768 for 16-bit PCM), or an int16/int32 array, which are converted by "
            "their full scale"
        )
    raise AudioInputError(f"{what} has samples of type {array.dtype}; give real float samples in [-1, 1]")


def as_mono(array: np.ndarray, what: str = "speech") -> np.ndarray:
    """The one channel of ``array``: 1-D, or 2-D with one row or column."""
    if array.ndim == 1:
        return array
    if array.ndim == 2 and 1 in array.shape:
        return array.reshape(-1)
    if array.ndim == 2:
        axis = int(np.argmin(array.shape))  # soundfile: (frames, channels); torchaudio: (channels, frames)
        one = "speech[0]" if axis == 0 else "speech[:, 0]"
        raise AudioInputError(
            f"{what} has {array.shape[axis]} channels (shape {tuple(array.shape)}); the model decodes one: "
            f"pass one channel ({one}) or their average (speech.mean(axis={axis}))"
        )
    raise AudioInputError(f"{what} has shape {tuple(array.shape)}; give one channel of samples (1-D)")


def check_finite(array: np.ndarray, what: str = "speech") -> None:
    """Refuse NaN and infinite samples, counting them and naming the first."""
    bad = ~np.isfinite(array)
    if bad.any():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(bad.sum()) - n_nan
        first = int(np.flatnonzero(bad)[0])
        raise AudioInputError(
            f"{what} has {n_nan} NaN and {n_inf} infinite sample(s) (first at sample {first} of {array.size}); "
            "the model cannot decode them: fix the audio where it was produced "
            "(np.nan_to_num replaces them, if silence is what they stand for)"
        )


def check_sample_rate(fs: Any) -> int:
    """``fs`` as a positive integer number of Hz."""
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)):
        raise AudioInputError(f"fs must be a sampling rate in Hz (a positive integer), got {fs!r}")
    if not math.isfinite(fs) or fs <= 0 or int(fs) != fs:
        raise AudioInputError(f"fs must be a sampling rate in Hz (a positive integer), got {fs!r}")
    return int(fs)


def model_sample_rate(train_args: Any) -> int:
    """The rate a model was trained at: its config's ``frontend_conf.fs``
    (``16k`` and ``16000`` both), else ESPnet's default 16000 Hz."""
    conf = getattr(train_args, "frontend_conf", None) or {}
    fs = conf.get("fs", ESPNET_DEFAULT_FS) if isinstance(conf, dict) else ESPNET_DEFAULT_FS
    if isinstance(fs, str):
        import humanfriendly

        fs = humanfriendly.parse_size(fs)
    return int(fs)


def probe_min_samples(
    encoded_frames: Callable[[int], int], start: int = 64, limit: int = 1 << 20
) -> Optional[int]:
    """The fewest input samples for which ``encoded_frames(n)`` gives at least
    one encoder frame (an exception counts as none).

    Measured rather than computed, so it holds for any front end (STFT
    window and padding, raw waveform) and any subsampling (conv2d,
    conv1d, WavLM's convolutions) without knowing their formulas.  None
    when not even ``limit`` samples encode (the decoding error then tells).
    """
    lo, hi = 0, start
    while encoded_frames(hi) < 1:  # lo fails (or is 0), hi is the next guess
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if encoded_frames(mid) >= 1:
            hi = mid
        else:
            lo = mid
    return hi


def encoder_frames_of(asr_model: torch.nn.Module, device: str, dtype: str) -> Callable[[int], int]:
    """``n -> number of encoder frames`` of ``asr_model`` for ``n`` samples of
    silence (0 when the model refuses input that short)."""

    @torch.no_grad()
    def frames(n: int) -> int:
        speech = torch.zeros(1, n, dtype=getattr(torch, dtype), device=device)
        try:
            enc, lengths = asr_model.encode(speech, torch.tensor([n], device=device))[:2]
        except Exception:  # too short: STFT padding error, ESPnet's TooShortUttError, empty convolution, ...
            return 0
        if isinstance(enc, tuple):  # intermediate CTC outputs ride along
            enc = enc[0]
        return int(lengths[0]) if lengths is not None else int(enc.shape[1])

    return frames


@dataclass
class ModelAudioInput:
    """What a model accepts as speech: its sampling rate and the fewest
    samples its front end and encoder subsampling need."""

    sample_rate: int
    min_samples: Optional[int] = None
    #: the model reads feature matrices (no frontend, input_size > 1: the
    #: recipes' feats_type fbank), not samples: nothing here applies to them
    feature_input: bool = False
    _resampled_from: Set[int] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_model(cls, asr_model: torch.nn.Module, train_args: Any, device: str = "cpu",
                  dtype: str = "float32") -> "ModelAudioInput":
        """Measure ``asr_model`` (in eval mode) once: its rate from the config,
        its minimum input length by :func:`probe_min_samples`."""
        if getattr(asr_model, "frontend", None) is None and (getattr(train_args, "input_size", None) or 1) > 1:
            return cls(model_sample_rate(train_args), None, feature_input=True)
        return cls(model_sample_rate(train_args), probe_min_samples(encoder_frames_of(asr_model, device, dtype)))

    def ms(self, samples: int, fs: Optional[int] = None) -> str:
        return f"{1000.0 * samples / (fs or self.sample_rate):.1f} ms"

    def prepare(self, speech: Speech, fs: Optional[int] = None) -> np.ndarray:
        """``speech`` as a 1-D float32 array at the model's rate, checked as
        the module docstring says (feature matrices of a feature-input
        model pass through unchanged)."""
        if self.feature_input:
            return speech
        if isinstance(speech, (str, os.PathLike)):
            data, file_fs = read_audio_file(speech)
            what = f"audio file {speech}"
            if fs is not None and check_sample_rate(fs) != file_fs:
                raise AudioInputError(f"fs={fs} was given, but {what} is recorded at {file_fs} Hz; leave fs out "
                                      "for files (their rate is read from the file)")
            fs = file_fs
        else:
            what = "speech"
            data = as_float_array(speech, what)
            fs = self.sample_rate if fs is None else check_sample_rate(fs)
        return self.check(data, fs, what)

    def check(self, data: np.ndarray, fs: int, what: str = "speech") -> np.ndarray:
        """Float samples ``data`` at ``fs`` Hz checked, made mono and
        resampled to the model's rate."""
        data = as_mono(data, what)
        self.check_length(data.size, fs, what)
        check_finite(data, what)
        peak = float(np.abs(data).max())
        if peak > FLOAT_PEAK_WARNING:
            warnings.warn(
                f"{what} peaks at {peak:g}, but float audio is expected in [-1, 1]: integer PCM converted to "
                "float without scaling? (divide 16-bit samples by 32768, or pass the int16 array itself)",
                stacklevel=2,
            )
        if fs != self.sample_rate:
            with self._lock:
                first = fs not in self._resampled_from
                self._resampled_from.add(fs)
            if first:
                logger.info("resampling input audio from %d Hz to the model's %d Hz (logged once per rate)",
                            fs, self.sample_rate)
            data = resample(data, fs, self.sample_rate).astype(np.float32)
        return data

    def check_length(self, n: int, fs: int, what: str = "speech") -> None:
        """Refuse fewer samples than the model needs (its minimum scaled to ``fs``)."""
        need = None if self.min_samples is None else math.ceil(self.min_samples * fs / self.sample_rate)
        if n > 0 and (need is None or n >= need):
            return
        minimum = "" if need is None else (f"; this model needs at least {need} samples at {fs} Hz "
                                           f"({self.ms(need, fs)}) for its front end and encoder subsampling")
        if n == 0:
            raise AudioInputError(f"{what} is empty (0 samples){minimum}")
        raise AudioInputError(f"{what} is too short: {n} samples at {fs} Hz ({self.ms(n, fs)}){minimum}; "
                              "pad it with silence or decode a longer recording")
