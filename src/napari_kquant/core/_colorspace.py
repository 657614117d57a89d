"""The space distances are measured in: CIE L*a*b* through OpenCV, and safe scaling.

Values are clustered as they are, except in two cases: ``color_space="lab"``
(perceptual distances), and values so large that their squared distances would
overflow float32 (cv2.kmeans) or float64 (the kernels). Those are divided by a
power of two first, which is exact and keeps every distance comparison.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Values beyond this magnitude are scaled down, values all below SAFE_MIN scaled up,
#: by a power of two before clustering.
SAFE_MAX = 2.0**50
SAFE_MIN = 2.0**-20
#: Float64 distances (the assignment, dithering): values below this are scaled up, their
#: squares would underflow (1e-300 squared is 0 in float64).
SAFE_MIN_64 = 2.0**-480
_TARGET_EXP = 20


def rgb_scale(dtype: np.dtype) -> float:
    """The value of full-intensity white: the integer maximum, or 1.0 for floats."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def safe_scale(max_abs: float, low: float = SAFE_MIN, least: int = -1074) -> float:
    """1.0, or the power of two that brings ``max_abs`` to about 2**20 (float32-safe
    squared distances, neither overflowing nor underflowing) when it is above SAFE_MAX or
    below ``low``; never below 2**``least`` (by default the smallest float64, which
    2**(-1073 - 20) would be)."""
    if not math.isfinite(max_abs) or max_abs == 0 or max_abs <= SAFE_MAX:
        if 0 < max_abs < low:
            return 2.0 ** max(math.frexp(max_abs)[1] - _TARGET_EXP, least)
        return 1.0
    return 2.0 ** (math.frexp(max_abs)[1] - _TARGET_EXP)


def safe_scale_64(max_abs: float) -> float:
    """`safe_scale` for float64 distances: scaled up only below `SAFE_MIN_64` (whose
    squares underflow), and never below 2**-1022, so that its inverse is finite."""
    return safe_scale(max_abs, low=SAFE_MIN_64, least=-1022)


def rgb_range_error(values: np.ndarray, white: float) -> str | None:
    """None when every value lies from 0 (black) to ``white`` (NaN, a left-out pixel,
    passes), else the range found, for an error message: L*a*b* and CIEDE2000 of values
    outside mean nothing (OpenCV extrapolates L past 100; clipped, an error reads 0)."""
    with np.errstate(invalid="ignore"):
        if not ((values < 0) | (values > white)).any():
            return None
    return f"values from {float(np.nanmin(values)):g} to {float(np.nanmax(values)):g}"


def lab_features(rgb: np.ndarray, scale: float) -> np.ndarray:
    """`to_lab` of pixels to assign, refusing RGB outside 0..``scale`` (an 8-bit picture
    stored as float 0..255, say)."""
    found = None if rgb.dtype.kind == "u" else rgb_range_error(rgb, scale)  # u: 0..max
    if found is not None:
        raise ValueError(
            f"color_space='lab' takes RGB values from 0 (black) to {scale:g} (white), but "
            f"the image has {found}"
        )
    return to_lab(rgb, scale)


def to_lab(rgb: np.ndarray, scale: float) -> np.ndarray:
    """(n, 3) RGB in ``[0, scale]`` -> (n, 3) float32 L*a*b* (L in 0..100)."""
    x = rgb.astype(np.float32)
    x *= np.float32(1.0 / scale)
    return cv2.cvtColor(x.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)


def from_lab(lab: np.ndarray, scale: float) -> np.ndarray:
    """(n, 3) L*a*b* -> (n, 3) float64 RGB in ``[0, scale]`` (out-of-gamut clipped)."""
    x = np.ascontiguousarray(lab, np.float32).reshape(-1, 1, 3)
    rgb = cv2.cvtColor(x, cv2.COLOR_Lab2RGB).reshape(-1, 3).astype(np.float64)
    return np.clip(rgb, 0.0, 1.0) * scale


#: Optical densities are capped here (0.1% transmission): darker values are noise.
OD_MAX = 3.0
#: ``white="auto"``: the median of the brightest pixels (this share of them, by their
#: summed channels) is the white level: the glass around a tissue.
WHITE_SHARE = 0.01


def to_od(values: np.ndarray, white, dtype=np.float32) -> np.ndarray:
    """(n, c) values -> (n, c) optical density, -log10(value / white) per channel, in
    [0, OD_MAX] (values above white are clear glass: 0); float32 unless ``dtype``."""
    t = np.asarray(values, np.float64) / np.asarray(white, np.float64)  # any magnitude
    np.clip(t, 10.0**-OD_MAX, 1.0, out=t)
    t[np.isnan(t)] = 1.0  # non-finite pixels are left out anyway
    od = np.log10(t)
    np.negative(od, out=od)
    return od.astype(dtype, copy=False)


def from_od(od: np.ndarray, white) -> np.ndarray:
    """(n, c) optical density -> (n, c) float64 values (the inverse of `to_od`)."""
    return np.asarray(white, np.float64) * 10.0 ** -np.asarray(od, np.float64)


def resolve_white(white, sample: np.ndarray, dtype, ncolour: int) -> np.ndarray:
    """The per-channel white level of an "od" fit: given (one value or one per channel),
    the dtype's maximum (None), or estimated from the brightest pixels ("auto")."""
    if white is None:
        return np.full(ncolour, rgb_scale(dtype))
    if isinstance(white, str):  # "auto"
        values = sample[:, :ncolour].astype(np.float64)
        brightness = values.sum(axis=1)
        n = max(1, round(len(values) * WHITE_SHARE))
        brightest = values[np.argpartition(brightness, len(values) - n)[len(values) - n :]]
        level = np.median(brightest, axis=0)
        if not (np.isfinite(level).all() and (level > 0).all()):
            raise ValueError(
                f"white='auto' found no usable white level (brightest pixels {level.tolist()}); "
                "give white= the value of clear glass"
            )
        return level
    level = np.asarray(white, np.float64)
    if level.ndim == 0:
        level = np.full(ncolour, float(level))
    if level.shape != (ncolour,):
        raise ValueError(
            f"white has {level.size} values, but the image has {ncolour} colour channels"
        )
    top = rgb_scale(dtype) if np.dtype(dtype).kind in "ui" else math.inf
    if (level > top).any():
        raise ValueError(f"white={white!r} is above {np.dtype(dtype)}'s maximum {top:g}")
    return level.copy()
