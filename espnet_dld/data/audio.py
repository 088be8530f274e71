"""Small audio helpers shared by the corpus generators.

Resampling uses a polyphase FIR filter (:func:`scipy.signal.resample_poly`),
which is deterministic on CPU and does not need torch to be imported.
"""

from math import gcd

import numpy as np
from scipy.signal import resample_poly

INT16_MAX = 32767


def resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a 1-D float signal from ``orig_sr`` to ``new_sr`` Hz."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"bad sample rates {orig_sr} -> {new_sr}")
    x = np.asarray(x, dtype=np.float64)
    if orig_sr == new_sr or x.size == 0:
        return x.copy()
    g = gcd(orig_sr, new_sr)
    return resample_poly(x, new_sr // g, orig_sr // g)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """int16 PCM -> float64 in [-1, 1)."""
    return np.asarray(x, dtype=np.float64) / (INT16_MAX + 1)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 PCM, rounding and clipping."""
    y = np.rint(np.asarray(x, dtype=np.float64) * INT16_MAX)
    return np.clip(y, -INT16_MAX - 1, INT16_MAX).astype(np.int16)


def peak_normalize(x: np.ndarray, peak_db: float) -> np.ndarray:
    """Scale ``x`` so its absolute peak is ``peak_db`` dB full scale."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x
    return x * (10.0 ** (peak_db / 20.0) / peak)
