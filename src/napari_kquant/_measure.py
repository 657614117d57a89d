"""Numbers per cluster: pixel counts, shares, foreground shares and physical areas.

numpy only: `cluster_table` returns plain columns; `QuantizeResult.table` turns
them into a pandas DataFrame (pandas is imported only then).
"""

from __future__ import annotations

import math

import numpy as np

from ._colorspace import rgb_scale, to_lab


def channel_names(n: int) -> list[str]:
    return ["red", "green", "blue"] if n == 3 else [f"channel_{c}" for c in range(n)]


def cluster_table(result, *, background=(), pixel_size=None, unit=None) -> dict:
    """One row per label (row 0: the left-out pixels), as a dict of equal-length columns.

    Parameters
    ----------
    result : QuantizeResult
        Computed numpy results (lazy counts are computed here: one pass).
    background : iterable of int
        Labels (1..k) that are background: excluded from ``foreground_share``.
    pixel_size : sequence of float, optional
        The size of a pixel along each spatial axis (a layer's ``scale``); the
        area of a pixel is the product over the last two axes. None: 1.
    unit : str, optional
        The unit of ``pixel_size`` (e.g. "µm"); areas are in its square.
    """
    counts = np.asarray(result.counts, np.int64)
    labels = result.labels[0] if isinstance(result.labels, list) else result.labels
    k = len(counts)
    background = sorted({int(b) for b in background})
    bad = [b for b in background if not 1 <= b <= k]
    if bad:
        raise ValueError(f"background labels must be between 1 and {k}, got {bad}")
    left_out = int(math.prod(labels.shape)) - int(counts.sum())
    all_counts = np.concatenate([[left_out], counts])
    area = _pixel_area(pixel_size, labels.ndim)
    clustered = counts.sum()
    is_background = np.zeros(k + 1, bool)
    is_background[background] = True
    foreground = counts[~is_background[1:]].sum()
    share = np.full(k + 1, np.nan)
    share[1:] = counts / clustered if clustered else np.nan
    fg_share = np.full(k + 1, np.nan)
    keep = ~is_background
    keep[0] = False
    if foreground:
        fg_share[keep] = all_counts[keep] / foreground
    palette = result.palette
    centers = np.vstack([np.full((1, result.centers.shape[1]), np.nan), result.centers])
    table = {
        "label": np.arange(k + 1),
        "hex": ["", *(palette.hex or [""] * k)],
        **{name: centers[:, c] for c, name in enumerate(channel_names(centers.shape[1]))},
    }
    if centers.shape[1] == 3 and palette.dtype is not None:
        lab = np.full((k + 1, 3), np.nan)
        if palette.lab_centers is not None:
            lab[1:] = palette.lab_centers
        else:
            lab[1:] = to_lab(palette.centers, rgb_scale(palette.dtype))
        table.update({"L*": lab[:, 0], "a*": lab[:, 1], "b*": lab[:, 2]})
    table.update(
        {
            "count": all_counts,
            "share": share,
            "background": is_background,
            "foreground_share": fg_share,
            "area": all_counts * area,
            "area_unit": [f"{unit}²" if unit else "px²"] * (k + 1),
        }
    )
    return table


def _pixel_area(pixel_size, ndim) -> float:
    if pixel_size is None:
        return 1.0
    sizes = [float(s) for s in pixel_size]
    if len(sizes) < min(ndim, 2) or not all(math.isfinite(s) and s > 0 for s in sizes):
        raise ValueError(
            f"pixel_size must hold a positive size per spatial axis, got {tuple(pixel_size)}"
        )
    return float(np.prod(sizes[-2:]))
