"""The engine: colour quantization of an image by K-means (``cv2.kmeans``).

numpy and OpenCV only; the compiled assignment kernels are loaded on first use.
"""

from __future__ import annotations

import itertools
import math
import numbers
import secrets
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ._colorspace import from_lab, rgb_scale, to_lab

CRITERIA = {
    "eps+max_iter": cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER,
    "eps": cv2.TERM_CRITERIA_EPS,
    "max_iter": cv2.TERM_CRITERIA_MAX_ITER,
}
INITS = {"kmeans++": cv2.KMEANS_PP_CENTERS, "random": cv2.KMEANS_RANDOM_CENTERS}
COLOR_SPACES = ("rgb", "lab")

#: Pixels the default call fits on. On a 16.7 MP photo a 50,000-pixel sample with
#: 3 k-means++ attempts lands within 1% of a converged full-image fit at K=8, 16 and
#: 64 (a 20,000-pixel sample does at K=16, but is 6% off at K=64), in under a second
#: end to end (see the README's benchmark).
DEFAULT_SAMPLE = 50_000
DEFAULT_ATTEMPTS = 3
#: OpenCV runs at least 2 and at most 100 iterations whatever it is asked.
MIN_ITER, MAX_ITER = 2, 100
#: With ``epsilon=None`` the tolerance is this fraction of the data's value
#: range, so uint8, uint16 and float images converge alike.
EPSILON_FRACTION = 1e-3
SEED_MAX = 2**31 - 1  # cv2.setRNGSeed takes a C int

_LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 weights for dark-to-light order
_KERNEL_LOCK = threading.Lock()  # numba's default thread pool is not re-entrant


@dataclass(frozen=True)
class QuantizeResult:
    """What `quantize` returns.

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
        ``color_space="lab"``), row ``i`` being label ``i + 1``, dark to light.
    counts : ndarray
        (k,) int64, pixels per label.
    compactness : float
        Sum of squared distances of the clustered pixels to their centres, in
        the clustering space (cv2's measure; with ``sample=None`` exactly the
        value ``cv2.kmeans`` returns).
    seed : int
        The seed used; pass it back to reproduce the result.
    epsilon : float
        The convergence tolerance used, in the clustering space's units.
    """

    quantized: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    compactness: float
    seed: int
    epsilon: float


def quantize(
    image,
    k: int = 8,
    *,
    channel_axis: int | None = None,
    alpha: bool | None = None,
    criteria: str = "eps+max_iter",
    max_iter: int = MAX_ITER,
    epsilon: float | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    init: str = "kmeans++",
    seed: int | None = None,
    sample: int | None = DEFAULT_SAMPLE,
    color_space: str = "rgb",
    mask=None,
    progress: Callable[[float, str], None] | None = None,
) -> QuantizeResult:
    """Reduce an image to ``k`` colours by K-means clustering with OpenCV.

    Parameters
    ----------
    image : array_like, dask array, chunked array or list of arrays
        2-D grayscale, colour (channels on ``channel_axis``), or an n-D stack
        (time, z, ...) that is clustered as one set of pixels sharing one
        palette. Integer or floating dtype. A dask array, or a chunked array
        dask can wrap (zarr, h5py), is never loaded: the fit reads a sample
        from a random subset of chunks and the results are lazy. A list of
        arrays, finest first (a multiscale pyramid), gets one palette for every
        level and lists of results.
    k : int
        Number of clusters (colours).
    channel_axis : int or None
        The axis that holds the channels; None for a single channel.
    alpha : bool or None
        Whether the last channel is alpha: it is not clustered, pixels where it
        is 0 are left out, and it is copied to ``quantized`` as it was. None
        means "yes for 4 channels on the last axis" (RGBA).
    criteria : {"eps+max_iter", "eps", "max_iter"}
        When a K-means attempt stops: centres moved less than ``epsilon``,
        ``max_iter`` iterations ran, or whichever comes first
        (``cv2.TERM_CRITERIA_*``).
    max_iter : int
        Iterations per attempt, 2 to 100 (OpenCV's own limits).
    epsilon : float or None
        Centre movement below which an attempt has converged, in the units of
        the clustered values. None: 1/1000 of the data's value range.
    attempts : int
        Independent K-means runs; the one with the lowest compactness wins.
    init : {"kmeans++", "random"}
        Initial centres: ``cv2.KMEANS_PP_CENTERS`` or
        ``cv2.KMEANS_RANDOM_CENTERS``.
    seed : int or None
        Seed for the pixel sample and for OpenCV's RNG (0 to 2**31 - 1).
        None draws one; it is returned in the result.
    sample : int or None
        Fit on at most this many usable pixels drawn at random, then give every
        pixel its nearest centre. None fits on every usable pixel in one
        ``cv2.kmeans`` call, which is exactly what a direct call returns but
        can take minutes on a large photo.
    color_space : {"rgb", "lab"}
        Cluster the values as they are, or (3 colour channels only) in CIE
        L*a*b*, where distances follow perceived colour differences. Integer
        images are scaled by their dtype's maximum, float images are taken to
        be in [0, 1].
    mask : array_like of bool, optional
        The image's spatial shape; only True pixels are clustered.
    progress : callable, optional
        Called as ``progress(fraction_done, message)`` before each K-means
        attempt and after each block of assigned pixels, in the calling
        thread. An exception raised from it stops the run and propagates;
        nothing has been modified. With a hook, attempts run as separate
        ``cv2.kmeans`` calls (same result, slightly slower in exact mode).

    Returns
    -------
    QuantizeResult
        ``quantized``, ``labels``, ``centers``, ``counts``, ``compactness``,
        and the ``seed`` and ``epsilon`` used. For lazy input, ``quantized``,
        ``labels``, ``counts`` and ``compactness`` are dask arrays (the last
        two need a pass over all the data: compute them together with what
        you write); ``centers`` is always computed.

    Raises
    ------
    TypeError
        An unsupported image dtype (bool, complex, object, float16), or an
        option of the wrong type.
    ValueError
        An option out of range, an empty image, a mask of the wrong shape, or
        fewer usable pixels than ``k``.

    Warns
    -----
    UserWarning
        When the clustered pixels have fewer distinct colours than ``k``: the
        result is valid, and some clusters duplicate others.

    Notes
    -----
    Left-out pixels (mask False, alpha 0, or any non-finite channel) get label
    0 and keep their values. Labels run dark to light by luminance (Rec. 601
    weights for 3 colour channels, the mean of the channels otherwise), so a
    palette reads the same on every run with the same seed. The caller's array
    is never modified.

    The defaults (k-means++ on a 50,000-pixel sample, 3 attempts, run to
    convergence) come within 1% of a converged full-image fit on a 16.7 MP
    photo in a fraction of a second. OpenCV's tutorial settings (10 iterations,
    epsilon 1.0, random centres) stop before convergence.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_kquant import quantize
    >>> image = np.zeros((4, 6, 3), np.uint8)
    >>> image[:, 3:] = (200, 40, 10)
    >>> result = quantize(image, k=2, channel_axis=-1, seed=0)
    >>> result.labels[0]
    array([1, 1, 1, 2, 2, 2], dtype=uint8)
    >>> result.centers
    array([[  0.,   0.,   0.],
           [200.,  40.,  10.]])
    """
    settings = _settings(k, criteria, max_iter, epsilon, attempts, init, seed, sample, color_space)
    if is_multiscale(image):
        from ._lazy import quantize_levels

        return quantize_levels(list(image), settings, channel_axis, alpha, mask, progress)
    if is_lazy(image):
        from ._lazy import quantize_lazy

        return quantize_lazy(image, settings, channel_axis, alpha, mask, progress)
    return _quantize_array(np.asarray(image), settings, channel_axis, alpha, mask, progress)


def _silent(*progress):
    """The progress hook when nobody listens."""


def check_mask(mask, spatial_shape):
    """A boolean mask of the image's spatial shape (numpy or dask), or an error."""
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(spatial_shape):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the image's spatial shape "
            f"{tuple(spatial_shape)}"
        )
    return mask


def is_lazy(image) -> bool:
    """A dask array, or a chunked array-like (zarr, h5py) that dask can wrap."""
    return not isinstance(image, np.ndarray) and getattr(image, "chunks", None) is not None


def is_multiscale(image) -> bool:
    """A list of arrays, finest first, each smaller than the one before (napari's convention)."""
    if not isinstance(image, list | tuple) or len(image) < 2:
        return False
    if not all(hasattr(level, "shape") and hasattr(level, "dtype") for level in image):
        return False
    sizes = [math.prod(level.shape) for level in image]
    same_ndim = len({len(level.shape) for level in image}) == 1
    return same_ndim and all(a > b for a, b in itertools.pairwise(sizes))


@dataclass(frozen=True)
class Settings:
    """Validated `quantize` options."""

    k: int
    criteria: tuple  # (cv2 type, max_iter, epsilon or None)
    attempts: int
    flags: int
    seed: int
    sample: int | None
    lab: bool


def _settings(k, criteria, max_iter, epsilon, attempts, init, seed, sample, color_space):
    """Check every option before any work; the errors name the parameter and the value."""
    k = _integer("k", k, 1)
    criteria_type = CRITERIA[_choice("criteria", criteria, CRITERIA)]
    max_iter = _integer("max_iter", max_iter, MIN_ITER, MAX_ITER)
    epsilon = _epsilon(epsilon)
    attempts = _integer("attempts", attempts, 1)
    flags = INITS[_choice("init", init, INITS)]
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else _integer("seed", seed, 0, SEED_MAX)
    if sample is not None:
        sample = _integer("sample", sample, k)
    lab = _choice("color_space", color_space, COLOR_SPACES) == "lab"
    return Settings(k, (criteria_type, max_iter, epsilon), attempts, flags, seed, sample, lab)


@dataclass(frozen=True)
class Model:
    """Fitted centres, in label order, and how to apply them to pixels."""

    centers: np.ndarray  # image units
    centers_feat: np.ndarray  # the clustering space (L*a*b* or the image's values)
    palette: np.ndarray  # (k + 1, colours) output colours in the image dtype; row 0 unused
    ncolour: int
    scale: float | None  # L*a*b*: the value of white; None: cluster the values as they are
    epsilon: float
    rank: np.ndarray  # fit label -> output label (1..k)

    def features(self, colour):
        """Colour channels -> the float32 values distances are measured on."""
        if self.scale is None:
            return colour.astype(np.float32)
        return to_lab(colour, self.scale)


def fit_model(fit_pixels, ncolour, dtype, settings, report, stacklevel=3):
    """Cluster (n, colours) pixels; return the model and cv2's (compactness, labels).

    ``report`` is a progress hook ``(fraction, message)``, or None.
    """
    k = settings.k
    scale = rgb_scale(dtype) if settings.lab else None
    if settings.lab and ncolour != 3:
        raise ValueError(
            f"color_space='lab' needs 3 colour channels (RGB), but the image has {ncolour}"
        )
    if len(fit_pixels) < k:
        raise ValueError(f"k={k} is larger than the number of usable pixels ({len(fit_pixels)})")
    data = to_lab(fit_pixels, scale) if settings.lab else fit_pixels.astype(np.float32)
    criteria_type, max_iter, epsilon = settings.criteria
    if epsilon is None:
        epsilon = EPSILON_FRACTION * float(data.max() - data.min())
    compactness, fit_labels, centers_feat = _fit(
        data, k, (criteria_type, max_iter, epsilon), settings.attempts, settings.flags,
        settings.seed, report,
    )  # fmt: skip
    centers = from_lab(centers_feat, scale) if settings.lab else centers_feat.astype(np.float64)
    order = _dark_to_light(centers, ncolour)
    rank = np.empty(k, _label_dtype(k))
    rank[order] = np.arange(1, k + 1)
    distinct = len(np.unique(centers_feat, axis=0))
    if distinct < k:
        warnings.warn(
            f"k={k}, but the clustered pixels have only {distinct} distinct colours; "
            f"{k - distinct} clusters duplicate others",
            UserWarning,
            stacklevel=stacklevel,
        )
    model = Model(
        centers=centers[order],
        centers_feat=centers_feat[order],
        palette=_palette(centers[order], dtype),
        ncolour=ncolour,
        scale=scale,
        epsilon=float(epsilon),
        rank=rank,
    )
    return model, compactness, fit_labels


def apply_model(model, pixels, valid, report=_silent):
    """Nearest-centre labels and quantized pixels for (n, channels) pixels.

    Returns (labels, out, counts indexed by label, sum of squared distances).
    """
    from . import _assign

    labels = np.empty(len(pixels), model.rank.dtype)
    out = np.empty_like(pixels)
    to_features = None if model.scale is None else model.features
    with _KERNEL_LOCK:
        counts, sse = _assign.assign(
            pixels, model.ncolour, model.centers_feat, model.palette, valid, labels, out,
            to_features, report,
        )  # fmt: skip
    return labels, out, counts, sse


def paint_labels(model, labels, pixels):
    """Quantized pixels for given labels; where a label is 0, the source pixel."""
    from . import _assign

    out = np.empty_like(pixels)
    with _KERNEL_LOCK:
        _assign.paint(labels, pixels, model.ncolour, model.palette, out)
    return out


def _quantize_array(image, settings, channel_axis, alpha, mask, progress):
    """The eager path: a numpy image in, numpy results out."""
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    ncolour = lay.ncolour
    pixels, spatial_shape = _pixels(image, lay)
    valid = _usable(pixels, ncolour, spatial_shape, mask)
    n_usable = len(pixels) if valid is None else int(np.count_nonzero(valid))
    if n_usable == 0:
        raise ValueError("the image has no usable pixel (all masked, transparent or non-finite)")
    exact = settings.sample is None or n_usable <= settings.sample
    if exact:
        fit_pixels = pixels[:, :ncolour] if valid is None else pixels[valid, :ncolour]
    else:
        rng = np.random.default_rng(settings.seed)
        indices = _sample_indices(rng, valid, n_usable, settings.sample)
        fit_pixels = pixels[indices, :ncolour]
    fit_share = 0.9 if exact else 0.5  # rough share of the run the fit takes
    fit_report = assign_report = None
    if progress is not None:
        fit_report = lambda done, msg: progress(fit_share * done, msg)  # noqa: E731
        assign_report = lambda done: progress(  # noqa: E731
            fit_share + (1 - fit_share) * done, "assigning pixels"
        )
    model, compactness, fit_labels = fit_model(
        fit_pixels, ncolour, pixels.dtype, settings, fit_report, stacklevel=4
    )
    if exact:  # cv2's own partition, painted
        labels = np.zeros(len(pixels), model.rank.dtype)
        if valid is None:
            labels[:] = model.rank[fit_labels.ravel()]
        else:
            labels[valid] = model.rank[fit_labels.ravel()]
        out = paint_labels(model, labels, pixels)
        counts = np.bincount(labels, minlength=settings.k + 1)
    else:
        labels, out, counts, compactness = apply_model(
            model, pixels, valid, assign_report or _silent
        )
    if progress is not None:
        progress(1.0, "done")
    return QuantizeResult(
        quantized=_restore_layout(out, image.shape, channel_axis),
        labels=labels.reshape(spatial_shape),
        centers=model.centers,
        counts=counts[1:].astype(np.int64),
        compactness=float(compactness),
        seed=settings.seed,
        epsilon=model.epsilon,
    )


def _fit(data, k, criteria, attempts, flags, seed, report):
    """``cv2.kmeans``; with a progress hook, one attempt at a time.

    Without a hook it is one call with ``attempts``. With one, each attempt is
    its own call so a run can be followed and stopped between attempts:
    OpenCV draws every attempt's initial centres from the same per-thread RNG
    and keeps the first attempt with the strictly lowest compactness, and so
    does this loop, so the result is identical (tested). The loop repeats
    OpenCV's per-call set-up (10 attempts of 10 iterations on 4.2 MP: 3-8%
    slower than one call, measured), hence one call when nobody is watching.
    """
    if len(data) == 1:  # cv2.kmeans would read a single row as one sample per column
        return 0.0, np.zeros((1, 1), np.int32), data
    cv2.setRNGSeed(seed)  # per thread: it must be set in the thread that fits
    if report is None:
        return cv2.kmeans(data, k, None, criteria, attempts, flags)
    best = None
    for attempt in range(attempts):
        report(attempt / attempts, f"K-means attempt {attempt + 1} of {attempts}")
        found = cv2.kmeans(data, k, None, criteria, 1, flags)
        if best is None or found[0] < best[0]:
            best = found
    return best


def _integer(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def _choice(name, value, options):
    if value not in options:
        names = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {names}, got {value!r}")
    return value


def _epsilon(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"epsilon must be a number or None, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {value}")
    return float(value)


@dataclass(frozen=True)
class Layout:
    """Where an image keeps its channels, and which of them are colour."""

    channel_axis: int | None  # non-negative, or None for one channel
    nchan: int
    has_alpha: bool

    @property
    def ncolour(self) -> int:
        return self.nchan - self.has_alpha


def layout(shape, dtype, channel_axis, alpha) -> Layout:
    """Check an image's dtype, size and channel options."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype == np.float16:
        raise TypeError(
            f"image dtype {dtype} is not supported; use an integer, float32 or float64 image"
        )
    ndim = len(shape)
    if ndim == 0 or math.prod(shape) == 0:
        raise ValueError(f"image is empty (shape {tuple(shape)})")
    if channel_axis is None:
        if alpha:
            raise ValueError("alpha=True needs a channel_axis")
        return Layout(None, 1, False)
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an integer or None, got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim or ndim < 2:
        raise ValueError(
            f"channel_axis={channel_axis} is out of range for an image of shape {tuple(shape)}"
        )
    axis = channel_axis % ndim
    nchan = shape[axis]
    has_alpha = (nchan == 4 and axis == ndim - 1) if alpha is None else bool(alpha)
    if has_alpha and nchan < 2:
        raise ValueError(f"alpha=True needs at least 2 channels, the image has {nchan}")
    return Layout(axis, nchan, has_alpha)


def _pixels(image, lay):
    """The image as (pixels, channels) and its spatial shape."""
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    if lay.channel_axis is None:
        return image.reshape(-1, 1), image.shape
    moved = np.moveaxis(image, lay.channel_axis, -1)
    return np.ascontiguousarray(moved).reshape(-1, lay.nchan), moved.shape[:-1]


def _usable(pixels, ncolour, spatial_shape, mask):
    """Boolean (n,) of the pixels to cluster, or None when every pixel is."""
    valid = None
    if mask is not None:
        mask = check_mask(np.asarray(mask), spatial_shape)
        valid = np.ascontiguousarray(mask).reshape(-1)
    if pixels.shape[1] > ncolour:  # alpha: transparent pixels are left out
        opaque = pixels[:, -1] != 0
        valid = opaque if valid is None else valid & opaque
    if pixels.dtype.kind == "f":
        finite = np.isfinite(pixels[:, :ncolour]).all(axis=1)
        if not finite.all():
            valid = finite if valid is None else valid & finite
    if valid is not None and valid.all():
        return None
    return valid


def _sample_indices(rng, valid, n_usable, size):
    """Sorted indices of ``size`` distinct usable pixels, drawn with ``rng``."""
    n = len(valid) if valid is not None else n_usable
    if valid is None:
        return np.sort(rng.choice(n, size, replace=False))
    draw = min(n, math.ceil(size * n / n_usable * 1.2) + 16)
    while True:  # draw candidates from all pixels, keep the usable ones
        candidates = rng.choice(n, draw, replace=False)
        kept = candidates[valid[candidates]]
        if len(kept) >= size or draw == n:
            return np.sort(kept[:size])
        draw = min(n, 2 * draw)


def _dark_to_light(centers, ncolour):
    brightness = centers[:, :3] @ _LUMA if ncolour == 3 else centers.mean(axis=1)
    return np.lexsort((*centers.T[::-1], brightness))


def _palette(centers, dtype):
    """(k + 1, channels) output colours in the image dtype; row 0 is unused."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(centers), info.min, info.max)
    else:
        values = centers
    palette = np.zeros((len(centers) + 1, centers.shape[1]), dtype)
    palette[1:] = values
    return palette


def _label_dtype(k):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if k <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"k={k} is too large")


def _restore_layout(out, shape, channel_axis):
    """(pixels, channels) back to the input's shape, channels where they were."""
    if channel_axis is None:
        return out.reshape(shape)
    spatial = list(shape)
    nchan = spatial.pop(channel_axis)
    arranged = out.reshape(*spatial, nchan)
    return np.ascontiguousarray(np.moveaxis(arranged, -1, channel_axis))
