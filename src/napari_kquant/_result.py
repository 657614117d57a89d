"""`QuantizeResult`: what `quantize` and `Palette.apply` return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._palette import Palette


@dataclass(frozen=True)
class QuantizeResult:
    """What `quantize` and `Palette.apply` return.

    Attributes
    ----------
    quantized : ndarray
        The image with every clustered pixel replaced by its centre; same
        shape and dtype as the input (rounded and clipped for integers).
        Left-out pixels and the alpha channel keep their original values.
    labels : ndarray
        The image's spatial shape; 1..k per clustered pixel, 0 where a pixel
        was left out. The smallest unsigned dtype that holds ``k``.
    centers : ndarray
        (k, colour channels) float64 in the image's own units (RGB for
        ``color_space="lab"``), row ``i`` being label ``i + 1``, dark to light
        for a fitted palette.
    counts : ndarray
        (k,) int64, pixels per label.
    compactness : float
        Sum of squared distances of the clustered pixels to their centres, in
        the clustering space (cv2's measure; with ``sample=None`` exactly the
        value ``cv2.kmeans`` returns).
    seed : int or None
        The seed the palette was fitted with (None for given colours); pass it
        back to reproduce the result.
    epsilon : float or None
        The convergence tolerance the fit used, in the clustering space's units.
    palette : Palette
        The palette the labels index: keep it (``result.palette.save(...)``) to
        give other images the same colour classes.
    """

    quantized: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    compactness: float
    seed: int | None
    epsilon: float | None
    palette: Palette
