"""Choosing K: fit every K of a range on one pixel sample and measure each fit, then find
the knee of the error curve and the smallest K that meets a perceptual target.

numpy and OpenCV only. The perceptual error is CIEDE2000 (Sharma, Wu and Dalal 2005),
between each sampled pixel and the centre it is given, in CIE L*a*b*.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from ..core._colorspace import resolve_white, rgb_range_error, rgb_scale, to_lab, to_od
from ..core._layout import is_lazy, is_multiscale
from ..core._options import MAX_AUTO_K, MAX_K, callback, not_items, scalar, settings
from ..engine._fit import cluster
from ..engine._sample import fit_level, sample_pixels

#: The range of K a curve covers by default.
DEFAULT_KS = range(2, 33)
#: Pixels every K of a curve is fitted on (one sample for all): 0.8 s for K = 2..32.
CURVE_SAMPLE = 20_000
#: ``k="auto"``'s default target: the mean CIEDE2000 between a pixel and its colour. See
#: `DEFAULT_TARGET_NOTE`.
DEFAULT_TARGET = 3.0
DEFAULT_TARGET_NOTE = (
    "A mean CIEDE2000 of 3 is where, on scikit-image's photographs, the quantized picture "
    "stops showing banding in smooth areas at a normal viewing distance; 1 is a just "
    "noticeable difference between two flat patches side by side."
)


@dataclass(frozen=True)
class KCurve:
    """How well each K fits one pixel sample; see `k_curve`."""

    ks: np.ndarray  # the K values, ascending
    compactness: np.ndarray  # cv2's compactness of each fit, in the clustering space
    mse: np.ndarray  # mean squared error per pixel (summed over colour channels), image units
    delta_e: np.ndarray | None  # mean CIEDE2000 per pixel (3-channel colour), else None
    knee: int  # the K at the knee of the error curve
    target: float | None  # the mean CIEDE2000 asked for
    meets_target: int | None  # the smallest K whose mean CIEDE2000 is at most ``target``
    seed: int
    sample: int  # pixels every K was fitted on

    def table(self):
        """The curve as a pandas DataFrame: one row per K."""
        import pandas as pd

        columns = {"k": self.ks, "compactness": self.compactness, "mse": self.mse}
        if self.delta_e is not None:
            columns["delta_e2000"] = self.delta_e
        return pd.DataFrame(columns)


def k_curve(
    image,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    channel_axis=None,
    alpha=None,
    mask=None,
    target: float | None = None,
    seed: int | None = None,
    sample: int = CURVE_SAMPLE,
    color_space: str = "rgb",
    white=None,
    progress: Callable[[float, str], None] | None = None,
) -> KCurve:
    """Fit every K in ``ks`` to one random sample of the image's pixels and measure each.

    The smallest K gets one k-means++ attempt, and each next K starts from the
    fit before it with its worst cluster halved (`_grown`), all run to
    convergence on the same ``sample`` pixels (the whole image is never read:
    lazy input reads a subset of chunks); the curve costs about two default
    `quantize` runs on a 16.7 MP photo.

    Parameters
    ----------
    image, channel_axis, alpha, mask
        As for `napari_kquant.quantize` (numpy, dask, zarr or a multiscale list).
    ks : iterable of int
        The K values, at least two (default 2 to 32).
    target : float, optional
        A mean CIEDE2000 to meet (3-channel colour only): ``meets_target`` is
        the smallest K of the range that meets it, or None.
    seed, sample, color_space, white
        The sample's seed (None draws one, reported), its size, where to
        cluster ("rgb", "lab" or "od") and, for "od", the white level.
    progress : callable, optional
        ``progress(fraction, message)`` after each K; an exception from it stops.

    Returns
    -------
    KCurve
        Per K: compactness, mean squared error, mean CIEDE2000; the knee (the K
        farthest below the straight line from the first to the last point of the
        normalised log error curve) and the smallest K meeting ``target``.
    """
    ks = _check_ks(ks)
    if target is not None:
        target = _check_target(target)
    opts = settings(
        ks[-1], seed=seed, sample=sample, attempts=1, color_space=color_space, white=white
    )
    callback("progress", progress)
    dtype, ncolour, pixels = _draw(image, channel_axis, alpha, mask, opts)
    if len(pixels) < ks[-1]:
        raise ValueError(f"ks go up to {ks[-1]}, but the image has {len(pixels)} usable pixels")
    if target is not None and ncolour != 3:
        raise ValueError("target is a CIEDE2000 colour difference: it needs 3 colour channels")
    if target is not None:
        _check_rgb_range(pixels, dtype, "target")
    compactness, mse, delta = _fits(pixels, dtype, ncolour, ks, opts, progress)
    meets = None
    if target is not None:
        good = np.flatnonzero(delta <= target)
        meets = int(ks[good[0]]) if len(good) else None
    return KCurve(
        ks=np.array(ks), compactness=compactness, mse=mse, delta_e=delta, knee=knee(ks, mse),
        target=target, meets_target=meets, seed=opts.seed, sample=len(pixels),
    )  # fmt: skip


def auto_k(image, channel_axis, alpha, mask, target, opts, progress=None) -> tuple[int, dict]:
    """The smallest K (up to `MAX_AUTO_K`) whose fit of a `CURVE_SAMPLE`-pixel sample has a
    mean CIEDE2000 of at most ``target``. Returns K and what to record of the choice.

    Each K is fitted on its own (one seeded k-means++ attempt on the same sample),
    so its error does not depend on which K were tried before. K = 1, 2, 4, 8, ...
    until one meets the target, then bisection between the last K that did not
    and the first that did: at most 2 log2(256) + 1 = 17 fits (under 10 s on
    300 x 300 noise, where no K meets it), against 256 for a search of every K.
    Where the error falls as K grows (a fit rarely gets worse with more
    clusters) this is the K a search of every K finds (tested). ``opts``: the
    fit's options, whose seed, colour space and white level the search uses.
    """
    target = DEFAULT_TARGET if target is None else _check_target(target)
    opts = settings(
        MAX_AUTO_K, seed=opts.seed, sample=CURVE_SAMPLE, attempts=1,
        color_space=opts.color_space, white=opts.white, speed=opts.speed,
    )  # fmt: skip
    dtype, ncolour, pixels = _draw(image, channel_axis, alpha, mask, opts)
    if ncolour != 3:
        raise ValueError(
            f"k='auto' meets a CIEDE2000 colour difference: it needs 3 colour channels, but "
            f"the image has {ncolour}; give k as a number"
        )
    _check_rgb_range(pixels, dtype, "k='auto'")
    top = min(MAX_AUTO_K, len(pixels))
    measure = _measurer(pixels, dtype, ncolour, opts)
    most = 2 * max(1, math.ceil(math.log2(top))) + 1  # fits at most, for the progress
    errors = {}

    def error(k):
        if k not in errors:
            errors[k] = measure(k)
            if progress is not None:
                progress(min(1.0, len(errors) / most), f"K = {k} fitted")
        return errors[k]

    below, k = 0, 1  # below: the largest K known to miss the target
    while error(k) > target and k < top:
        below, k = k, min(2 * k, top)
    found = k if errors[k] <= target else None
    if found is not None:
        while found - below > 1:
            middle = (below + found) // 2
            below, found = (below, middle) if error(middle) <= target else (middle, found)
    if found is None:
        warnings.warn(
            f"k='auto': no K up to {top} meets a mean CIEDE2000 of {target}; using K={top}",
            UserWarning,
            stacklevel=4,
        )
        found = top
    reached = errors[found]  # measured: the K that met the target, or the largest K tried
    record = {"k": "auto", "target": target, "chosen": found, "delta_e2000": reached,
              "met": reached <= target, "sample": len(pixels), "seed": opts.seed}  # fmt: skip
    return found, record


def _measurer(pixels, dtype, ncolour, opts) -> Callable[[int], float]:
    """``error(k)``: the mean CIEDE2000 of one seeded fit of K to ``pixels`` (a fit of its
    own, whatever K were fitted before)."""
    white = rgb_scale(dtype)
    lab = to_lab(pixels, white).astype(np.float64)
    if opts.od:  # one white level for every K
        level = resolve_white(opts.white, pixels, dtype, ncolour)
        opts = replace(opts, white=tuple(level.tolist()))

    def error(k):
        with warnings.catch_warnings():  # more K than colours is a finding here, not a fault
            warnings.simplefilter("ignore", UserWarning)
            fitted = cluster(pixels, dtype, ncolour, _with_k(opts, k))
        centre_lab = to_lab(fitted.palette.centers, white).astype(np.float64)
        return float(ciede2000(lab, centre_lab[fitted.labels - 1]).mean())

    return error


def _check_rgb_range(pixels, dtype, what) -> None:
    """CIEDE2000 is measured on RGB from 0 (black) to the dtype's white (1.0 for floats)."""
    white = rgb_scale(dtype)
    found = rgb_range_error(pixels, white)
    if found is not None:
        raise ValueError(
            f"{what} measures CIEDE2000 colour differences on RGB values from 0 to {white:g}, "
            f"but the image has {found}; give k as a number"
        )


def _draw(image, channel_axis, alpha, mask, opts):
    """(dtype, colour channels, sampled pixels (n, colours)) of any kind of image."""
    if is_multiscale(image):
        image = fit_level(list(image), channel_axis, alpha, mask, opts)
        mask = None
    dtype, ncolour, pixels, _ = sample_pixels(image, channel_axis, alpha, mask, opts)
    pixels = np.asarray(pixels)[:, :ncolour]
    if len(pixels) == 0:
        raise ValueError("the image has no usable pixel (all masked, transparent or non-finite)")
    return dtype, ncolour, pixels


def _fits(pixels, dtype, ncolour, ks, opts, progress):
    """Compactness, mean squared error and mean CIEDE2000 (None unless 3 colours) of one
    fit per K."""
    values = pixels.astype(np.float64)
    white = rgb_scale(dtype)
    lab = None
    if ncolour == 3:
        found = rgb_range_error(pixels, white)
        if found is None:
            lab = to_lab(pixels, white).astype(np.float64)
        else:
            warnings.warn(
                f"delta_e2000 is left out: CIEDE2000 is measured on RGB values from 0 to "
                f"{white:g}, but the image has {found}",
                UserWarning,
                stacklevel=3,
            )
    feats = lab if opts.lab else values  # where the fits measure distances
    if opts.od:  # one white level for every K
        level = resolve_white(opts.white, pixels, dtype, ncolour)
        opts = replace(opts, white=tuple(level.tolist()))
        feats = to_od(pixels, level).astype(np.float64)
    compactness, mse, delta_e = [], [], []
    previous = None
    for i, k in enumerate(ks):
        initial = None
        if previous is not None and k == previous.palette.k + 1:
            initial = _grown(previous, feats)
        with warnings.catch_warnings():  # more K than colours is a finding here, not a fault
            warnings.simplefilter("ignore", UserWarning)
            fitted = cluster(pixels, dtype, ncolour, _with_k(opts, k), initial=initial)
        previous = fitted
        given = fitted.palette.centers[fitted.labels - 1]
        compactness.append(fitted.compactness)
        mse.append(float(((values - given) ** 2).sum(axis=1).mean()))
        if lab is not None:
            centre_lab = to_lab(fitted.palette.centers, white).astype(np.float64)
            delta_e.append(float(ciede2000(lab, centre_lab[fitted.labels - 1]).mean()))
        if progress is not None:
            progress((i + 1) / len(ks), f"K = {k} fitted")
    delta = np.array(delta_e) if lab is not None else None
    return np.array(compactness), np.array(mse), delta


def _grown(fitted, feats) -> np.ndarray:
    """Starting labels for K + 1 from a fit of K: the cluster with the largest squared
    error gives its farther half to a new cluster (half the time of a fresh k-means++
    start, and as good: a chain of fits that rarely gets worse as K grows)."""
    labels = fitted.labels - 1
    centres = fitted.palette.features
    distance = ((feats - centres[labels]) ** 2).sum(axis=1)
    k = fitted.palette.k
    worst = int(np.argmax(np.bincount(labels, distance, minlength=k)))
    members = np.flatnonzero(labels == worst)
    far = members[distance[members] > np.median(distance[members])]
    if len(far) == 0:  # all its pixels alike: any one starts the new cluster
        far = members[:1]
    grown = labels.copy()
    grown[far] = k
    return grown


def _with_k(opts, k):
    return replace(opts, k=int(k))


def _check_ks(ks) -> list[int]:
    if not_items(ks):
        raise TypeError(f"ks must be whole numbers (e.g. range(2, 33)), got {ks!r}")
    values = list(ks)
    if not all(isinstance(k, int | np.integer) and not isinstance(k, bool) for k in values):
        raise TypeError(f"ks must be whole numbers (e.g. range(2, 33)), got {values!r}")
    values = sorted({int(k) for k in values})
    if len(values) < 2 or values[0] < 1 or values[-1] > MAX_K:
        raise ValueError(f"ks must hold at least two values between 1 and {MAX_K}, got {ks!r}")
    return values


def _check_target(target) -> float:
    target = scalar(target)
    if isinstance(target, bool) or not isinstance(target, int | float | np.integer | np.floating):
        raise TypeError(f"target must be a mean CIEDE2000 (a number), got {target!r}")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive mean CIEDE2000, got {target!r}")
    return float(target)


def knee(ks, errors) -> int:
    """The K farthest below the chord of the normalised, decreasing curve of log(error):
    on a log scale a sharp drop (the last cluster a distinct colour needed) stands out
    however large the errors before it were."""
    x = np.asarray(ks, np.float64)
    y = np.log(np.maximum(np.asarray(errors, np.float64), 1e-12))
    x = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    if span <= 0:
        return int(ks[0])  # flat: more clusters buy nothing
    y = (y - y.min()) / span
    chord = y[0] + (y[-1] - y[0]) * x
    return int(ks[int(np.argmax(chord - y))])


def picture_delta_e(image, picture, labels, channel_axis=-1, size=1 << 16) -> float:
    """The mean CIEDE2000 between an RGB(A) image and a picture of it (a result's
    ``quantized``: dithering and clean-up included), over about ``size`` of the pixels
    ``labels`` keeps (label 0 is left out), evenly spread; numpy or dask arrays (a lazy
    image: only a regular grid of it is read, unless no grid pixel is kept). NaN when
    no pixel is kept."""
    image = np.moveaxis(image, channel_axis, -1)
    picture = np.moveaxis(picture, channel_axis, -1)
    spatial = image.shape[:-1]
    if is_lazy(image) or is_lazy(picture) or is_lazy(labels):
        import dask

        step = max(1, math.ceil((math.prod(spatial) / size) ** (1 / len(spatial))))
        grid = (slice(None, None, step),) * len(spatial)
        arrays = (image, picture, labels)
        read = dask.compute(*(a[grid] for a in arrays))  # one pass: shared assignment tasks
        image, picture, labels = read if np.asarray(read[2]).any() else dask.compute(*arrays)
    kept = np.flatnonzero(np.asarray(labels).ravel())
    if kept.size == 0:
        return math.nan
    kept = kept[np.linspace(0, kept.size - 1, min(size, kept.size)).astype(np.int64)]
    white = rgb_scale(image.dtype)
    lab = [to_lab(a.reshape(-1, a.shape[-1])[kept, :3], white).astype(np.float64)
           for a in (image, picture)]  # fmt: skip
    return float(ciede2000(*lab).mean())


def ciede2000(lab1, lab2) -> np.ndarray:
    """CIEDE2000 colour differences between rows of two (n, 3) L*a*b* arrays (kL=kC=kH=1).

    Follows Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula:
    implementation notes, supplementary test data, and mathematical observations".
    """
    lab1 = np.asarray(lab1, np.float64)
    lab2 = np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp = L2 - L1
    dCp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    Lp_mean = (L1 + L2) / 2
    Cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_mean = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180,
            h_sum / 2,
            np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
        ),
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(hp_mean - 30))
        + 0.24 * np.cos(np.radians(2 * hp_mean))
        + 0.32 * np.cos(np.radians(3 * hp_mean + 6))
        - 0.20 * np.cos(np.radians(4 * hp_mean - 63))
    )
    d_theta = 30 * np.exp(-(((hp_mean - 275) / 25) ** 2))
    rc = 2 * np.sqrt(Cp_mean**7 / (Cp_mean**7 + 25.0**7))
    sl = 1 + 0.015 * (Lp_mean - 50) ** 2 / np.sqrt(20 + (Lp_mean - 50) ** 2)
    sc = 1 + 0.045 * Cp_mean
    sh = 1 + 0.015 * Cp_mean * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt(
        (dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2 + rt * (dCp / sc) * (dHp / sh)
    )
