"""`QuantizeResult`: what `quantize` and `Palette.apply` return."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ._measure import check_planes, cluster_table, plane_counts, totals

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
    channel_axis : int or None
        The axis of ``quantized`` that holds the channels (None: one channel).
    """

    quantized: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    compactness: float
    seed: int | None
    epsilon: float | None
    palette: Palette
    channel_axis: int | None = None

    @cached_property
    def plane_counts(self):
        """Pixels per label 0..k (label 0: left out) in every plane of a stack, shape
        (*planes, k + 1) for labels of shape (*planes, rows, columns); (k + 1,) for a
        2-D image. A lazy (dask) array for lazy results: compute it together with
        what you write from the labels, and it costs no second pass."""
        return plane_counts(self.labels, self.palette.k, counts=self.counts)

    def table(self, *, background=(), pixel_size=None, unit=None, plane_spacing=None):
        """Numbers per cluster as a pandas DataFrame: one row per label, row 0 the left-out
        pixels (mask, alpha 0, non-finite), which are in no share.

        Columns: ``label``, ``hex``, the centre per channel (``red``, ``green``,
        ``blue`` or ``channel_<i>``), ``L*``, ``a*``, ``b*`` (3-channel colour),
        ``count``, ``share`` (of the clustered pixels), ``background``,
        ``foreground_share`` (of the clustered pixels not in a ``background``
        cluster), ``area`` and ``area_unit``. Lazy results are counted here (one
        pass over the data).

        Parameters
        ----------
        background : int or iterable of int
            Labels (1..k) that are background, e.g. the glass around a section
            (`napari_kquant.suggest_background` proposes one).
        pixel_size : float or sequence of float, optional
            The pixel's size per spatial axis (a napari layer's ``scale``); the
            area of a pixel is the product over the last two. None: areas in px².
        unit : str, optional
            The unit of ``pixel_size`` (e.g. ``"µm"``): areas are in its square.
        plane_spacing : sequence of (float or None), optional
            For a stack: per plane axis (all but the last two), its spacing where it
            is space (a z step, in the unit of ``pixel_size``), None where it is not
            (time, channel). Given, ``area`` is the mean area per plane (never a sum
            over time), and a stack with an axis in space gets ``volume`` and
            ``volume_unit`` columns (per time point, where there is time too).

        Examples
        --------
        >>> import numpy as np
        >>> from napari_kquant import quantize
        >>> image = np.zeros((4, 6), np.uint8)
        >>> image[:, 4:] = 200
        >>> table = quantize(image, k=2, seed=0).table(pixel_size=(0.5, 0.25), unit="µm")
        >>> table["count"].tolist(), table["area"].tolist()
        ([0, 16, 8], [0.0, 2.0, 1.0])
        >>> table["share"].round(3).tolist()[1:]
        [0.667, 0.333]
        """
        planes = check_planes(plane_spacing, tuple(self._finest_labels.shape[:-2]))
        return self._frame(totals(self.plane_counts), background, pixel_size, unit, None, planes)

    def plane_table(self, *, background=(), pixel_size=None, unit=None, axes=None):
        """The long per-plane table of a stack, as a pandas DataFrame: one row per
        (plane index..., label), with the columns of `table` computed within each
        plane, after the plane index columns (named by ``axes``, default
        ``axis_0``, ...). "Share of cluster 3 over time" is then
        ``t[t.label == 3].share``. For a 2-D image, the same rows as `table`.
        """
        return self._frame(np.asarray(self.plane_counts), background, pixel_size, unit, axes)

    @property
    def _finest_labels(self):
        """The labels, or a multiscale result's finest level."""
        return self.labels[0] if isinstance(self.labels, list) else self.labels

    def _frame(self, counts, background, pixel_size, unit, axes, planes=None):
        import pandas as pd

        columns = cluster_table(
            self.palette, counts, background=background, pixel_size=pixel_size, unit=unit,
            ndim=len(self._finest_labels.shape), axes=axes, planes=planes,
        )  # fmt: skip
        return pd.DataFrame(columns)
