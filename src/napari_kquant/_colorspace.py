"""CIE L*a*b* conversion of RGB pixels and centres, through OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def rgb_scale(dtype: np.dtype) -> float:
    """The value of full-intensity white: the integer maximum, or 1.0 for floats."""
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


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
