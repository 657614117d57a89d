"""Fitting a palette: a seeded sample of usable pixels, clustered by ``cv2.kmeans``.

`fit_image` takes one image (numpy, lazy or multiscale; the public `fit` calls it
once K is known), `fit_pooled` a sequence of images sampled in proportion to their
usable pixels. Both end in `cluster`,
which calls OpenCV and orders the centres dark to light.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..core._colorspace import (
    from_lab,
    from_od,
    lab_features,
    resolve_white,
    rgb_scale,
    safe_scale,
    to_od,
)
from ..core._layout import is_lazy, is_multiscale
from ..core._options import (
    EPSILON_FRACTION,
    INITS,
    MAX_ITER,
    attempt_size,
    callback,
    check_names,
    refines,
    refines_each,
    settings,
)
from ._palette import Palette
from ._sample import fit_level, pool, sample_array, sample_lazy, sample_pixels

_LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 weights for dark-to-light order
#: A channel whose values lie more than this many times their spread from 0 is clustered
#: from its minimum: cv2.kmeans sums and compares float32, where 1e6 + 0..150, or 1000 + a
#: fraction, lose most of their detail in the sums of a few thousand pixels.
FAR_FROM_ZERO = 64
#: How often a run that waits on cv2.kmeans calls its progress hook (so Cancel is heard).
POLL_SECONDS = 0.1
#: The refinement's bounds are kept per group of about GROUP_SIZE nearby centres, in at most
#: MAX_GROUPS groups (each distinct value keeps a float64 bound per group: at K=4096 on a
#: 16-bit image, 256 groups would take 2 KB for each of millions of values).
GROUP_SIZE = 16
MAX_GROUPS = 32
#: ... and fewer where the bounds would take more than this (millions of distinct values).
BOUNDS_BYTES = 256 << 20


def fit_image(image, channel_axis, alpha, mask, progress, opts):
    """Fit ``opts`` (integer K) to one image: numpy, lazy or multiscale.

    Returns (fitted, drawn): ``fitted`` is a `Fitted`; ``drawn`` is None or,
    when the fit labelled every usable pixel of a numpy image, the `Drawn` pixels
    it clustered (so that `quantize` keeps the fit's partition): an exact fit
    (cv2's own partition), or a sampled one refined on all of them (each pixel's
    nearest centre). A sampled fit of no more pixels than its attempts run on is
    not refined: its pixels get their nearest centres afterwards, as with a sample.
    """
    callback("progress", progress)
    pyramid = is_multiscale(image)
    if pyramid:
        image = fit_level(list(image), channel_axis, alpha, mask, opts)
        mask = None
    if is_lazy(image):
        dtype, ncolour, sample, _ = sample_lazy(image, channel_axis, alpha, mask, opts)
        return cluster(sample, dtype, ncolour, opts, progress), None
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    drawn = sample_array(image, channel_axis, alpha, mask, opts)
    if drawn.n_usable == 0:
        raise ValueError("the image has no usable pixel (all masked, transparent or non-finite)")
    fitted = cluster(drawn.sample, drawn.pixels.dtype, drawn.layout.ncolour, opts, progress)
    own = drawn.exact and (opts.sample is None or refines(len(drawn.sample), opts.k, opts.speed))
    # one level of a pyramid fitted exactly: every level is still labelled by nearest centre
    return fitted, drawn if own and not pyramid else None


def fit_pooled(
    images: Iterable,
    k: int = 8,
    *,
    channel_axis=None,
    alpha=None,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> Palette:
    """One palette for many images: a seeded sample pooled across all of them.

    Each image contributes to the ``sample`` pixels in proportion to its usable
    pixels. Images are read one at a time and only a sample of each is kept,
    so the sequence may be larger than memory: give lazy arrays (dask, zarr) or
    callables that load an image when called (e.g. from a file).

    Parameters
    ----------
    images : iterable of array_like, dask array, or callable returning one
        The images; all with the same number of colour channels and dtype. A
        list of arrays here is a list of images, never a multiscale pyramid.
    k, channel_axis, alpha, progress, **options
        As for `fit` (``sample`` is the size of the pooled sample; None pools
        every usable pixel of every numpy image).

    Returns
    -------
    Palette
        Reproducible from its seed: the same images and options give the same
        palette.
    """
    check_names("fit_pooled", options)
    if isinstance(images, np.ndarray) or hasattr(images, "chunks"):
        raise TypeError(
            "images must be a sequence of images (a list, a generator, ...), got a single "
            f"{type(images).__name__}; use fit() for one image"
        )
    if isinstance(images, str | bytes | bytearray | memoryview | os.PathLike):
        raise TypeError(
            f"images must be a sequence of images, got the {type(images).__name__} "
            f"{images!r}; load the files first (a callable per file loads it when needed)"
        )
    if not hasattr(images, "__iter__"):
        raise TypeError(f"images must be an iterable of images, got {type(images).__name__}")
    opts = settings(k, **options)
    callback("progress", progress)
    parts, counts, kinds = [], [], []
    for i, item in enumerate(images):
        image = item() if callable(item) else item
        own = replace(opts, seed=image_seed(opts.seed, i))
        try:
            if is_multiscale(image):
                raise ValueError("a multiscale list: give one of its levels (its finest: [0])")
            dtype, ncolour, part, n = sample_pixels(image, channel_axis, alpha, None, own)
        except (TypeError, ValueError) as e:  # which image it was
            kind = TypeError if isinstance(e, TypeError) else ValueError
            raise kind(f"images[{i}]: {e}") from e
        kinds.append((np.dtype(dtype), ncolour))
        if kinds[-1] != kinds[0]:
            raise ValueError(
                f"images[{i}] is {kinds[-1][0]} with {ncolour} colour channels, but images[0] is "
                f"{kinds[0][0]} with {kinds[0][1]}: a pooled palette needs them alike"
            )
        parts.append(part)
        counts.append(n)
        if progress is not None:
            progress(0.0, f"sampled image {i + 1}")
    if not parts:
        raise ValueError("images is empty: give at least one image")
    sample = pool(parts, counts, opts.sample, opts.seed)
    return cluster(sample, *kinds[0], opts, progress).palette


def image_seed(seed, i):
    """The seed of image ``i``'s own sample in a pooled fit."""
    return int(np.random.default_rng([seed, i]).integers(2**31 - 1))


@dataclass(frozen=True)
class Fitted:
    """A fit's palette, plus cv2's compactness and partition of the fitted pixels."""

    palette: Palette
    compactness: float
    labels: np.ndarray  # output labels (1..k) of the fitted pixels, in their order


def cluster(sample, dtype, ncolour, opts, progress=None, initial=None) -> Fitted:
    """Cluster (n, colours) pixels with cv2.kmeans; centres dark to light. ``initial``:
    starting labels (0..k-1 per pixel) for one attempt from them instead of ``init``."""
    k = opts.k
    dtype = np.dtype(dtype)
    if opts.lab and ncolour != 3:
        raise ValueError(
            f"color_space='lab' needs 3 colour channels (RGB), but the image has {ncolour}"
        )
    white = rgb_scale(dtype)
    lab = lab_features(sample, white) if opts.lab else None  # (refuses RGB past white)
    level = resolve_white(opts.white, sample, dtype, ncolour) if opts.od else None
    if len(sample) < k:
        raise ValueError(f"k={k} is larger than the number of usable pixels ({len(sample)})")
    lows, highs = sample.min(axis=0), sample.max(axis=0)  # per channel, read once
    scale, low = 1.0, _offset(lows, highs) if not (opts.lab or opts.od) else None
    if opts.lab:
        data = lab
    elif opts.od:
        data = to_od(sample, level)
    else:
        values = sample if low is None else sample.astype(np.float64) - low
        scale = safe_scale(float(np.abs(values).max()))
        data = (
            values.astype(np.float32)
            if scale == 1.0
            else (values.astype(np.float64) / scale).astype(np.float32)
        )
        _check_float32(sample, values, data, k, (lows.min(), highs.max()))
    value_range = (float(lows.min()), float(highs.max()))
    epsilon = opts.epsilon
    if epsilon is None:
        epsilon = EPSILON_FRACTION * float(data.max() - data.min())
    elif scale != 1.0:
        epsilon /= scale
    if initial is not None:
        compactness, fit_labels, centers_feat = cv2.kmeans(
            data, k, np.array(initial, np.int32).reshape(-1, 1), opts.cv2_criteria(epsilon), 1,
            cv2.KMEANS_USE_INITIAL_LABELS,
        )  # fmt: skip
    else:
        compactness, fit_labels, centers_feat = kmeans(
            data, k, opts.cv2_criteria(epsilon), opts.attempts, opts.init, opts.seed, progress,
            staged=opts.sample is not None, raw=sample if opts.lab or opts.od else None,
            speed=opts.speed,
        )  # fmt: skip
    if opts.lab:
        centers = from_lab(centers_feat, white)
    elif opts.od:
        centers = from_od(centers_feat, level)
    else:
        centers = centers_feat.astype(np.float64) * scale + (0.0 if low is None else low)
    order = dark_to_light(centers, ncolour)
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(1, k + 1)
    distinct = len(np.unique(centers_feat, axis=0))
    if distinct < k:
        # counted on the pixels: two centres of one colour can differ in the last bit
        colours = len(np.unique(data, axis=0))
        found = "the fit found fewer"
        if colours < k:
            distinct, found = colours, f"the clustered pixels have only {colours} distinct colours"
        warnings.warn(
            f"k={k}, but {found}; {k - distinct} clusters duplicate others",
            UserWarning,
            stacklevel=4,
        )
    record = opts.record()
    seed = record.pop("seed")
    palette = Palette(
        centers=centers[order],
        color_space=opts.color_space,
        lab_centers=centers_feat[order].astype(np.float64) if opts.lab else None,
        white=None if level is None else tuple(level.tolist()),
        dtype=str(dtype),
        value_range=value_range,
        fit=record,
        seed=seed,
        epsilon=float(epsilon) * scale if opts.epsilon is None else opts.epsilon,  # as given
        compactness=float(compactness) * scale * scale,
    )
    return Fitted(palette, float(compactness) * scale * scale, rank[fit_labels.ravel()])


def _offset(lows, highs) -> np.ndarray | None:
    """The per-channel minimum to take off the pixels first where cv2.kmeans, which sums
    and compares float32, could not resolve a channel as it is: values over
    `FAR_FROM_ZERO` times their spread from 0 (a constant channel other than 0 too); else
    None, and cv2.kmeans gets the values as they are (what a direct call gives). ``lows``
    and ``highs``: each channel's minimum and maximum."""
    low, high = lows.astype(np.float64), highs.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        far = np.maximum(np.abs(low), np.abs(high)) > FAR_FROM_ZERO * (high - low)
    return low if far.any() else None


def _check_float32(sample, values, data, k: int, extremes) -> None:
    """Refuse ``values`` (the pixels, less any `_offset`) that float32 (``data``, what
    cv2.kmeans clusters) cannot keep ``k`` colours of: whole numbers that merge from
    2**24 (0 beside 2e9 + 0..150; int64 2**62 + 0..150), smaller floats that read as 0
    beside far larger ones (0-100 beside 1e80). A tiny value beside others that still
    differ (1e-310 in a 0-1 image) reads as 0 and costs nothing. ``extremes``: the
    sample's smallest and largest value."""
    whole = sample.dtype.kind in "ui"
    if whole:  # (int64 beyond 2**53 merges in float64 too: counted on the integers)
        top = max(abs(int(v)) for v in extremes)
        suspect = top > 2**53 or float(np.abs(values).max()) >= 2**24
    else:
        suspect = np.count_nonzero(data == 0) != np.count_nonzero(values == 0)
    given = sample if whole else values
    if not suspect or len(np.unique(data, axis=0)) >= k or len(np.unique(given, axis=0)) < k:
        return
    if whole:
        span, merged = f"from {int(extremes[0])} to {int(extremes[1])}", "differ read as one"
    else:
        shown = np.abs(sample[np.isfinite(sample)])
        span = f"from {shown[shown > 0].min():g} to {shown.max():g} (absolute)"
        merged = "are smaller read as 0"
    raise ValueError(
        f"image values {span} are too far apart for float32, which cv2.kmeans clusters: "
        f"values that {merged}, leaving fewer than k={k} colours. Clip or rescale the "
        "image, or mask the outliers"
    )


def kmeans(data, k, criteria, attempts, init, seed, report, staged=False, raw=None,
           speed="default"):  # fmt: skip
    """``cv2.kmeans``; with a progress hook, attempts run where the caller can stop waiting.

    ``staged`` (sampled fits): when ``data`` holds more than `attempt_size`
    rows (`core._options.refines`), the attempts run on a seeded subsample of
    that many and are refined on all of ``data`` (`refinement`: exact weighted
    Lloyd over its distinct values): where `core._options.refines_each` (K from
    13 to 32) every attempt, the best refined one kept; else the attempt best on
    the subsample. Its compactness is the one returned. Attempts spend most of their
    iterations finding a good optimum, which a small sample shows nearly as well
    as a large one; the refinement then needs few iterations on the large one
    (`core._options.attempt_size`: fewer with ``speed="fast"``). ``raw`` (rows
    of ``data`` before a colour-space transform) is where the refinement finds
    the distinct values: the pixels' own integer values are ranked at once,
    their L*a*b* floats only by sorting.

    Without a hook the attempts are one call (one call each when each is
    refined). With a hook, a helper thread runs each attempt as its own call,
    and the caller polls ``report`` every `POLL_SECONDS`, so an exception from
    the hook (Cancel) stops the run at once: the helper is abandoned (it starts
    no further call, and nothing it returns is used). OpenCV draws every
    attempt's initial centres from the same per-thread RNG and keeps the first
    attempt with the strictly lowest compactness, and so does the helper
    (seeded in its own thread), so the result is identical to one call (tested).
    """
    flags = INITS[init]
    if len(data) == 1:  # cv2.kmeans would read a single row as one sample per column
        return 0.0, np.zeros((1, 1), np.int32), data
    subset = data
    if staged and refines(len(data), k, speed):
        rng = np.random.default_rng(seed)
        subset = data[np.sort(rng.choice(len(data), attempt_size(k, speed), replace=False))]
    each = subset is not data and refines_each(k, attempts)

    def best(found):  # the first of the lowest compactness, as cv2 keeps
        return min(found, key=lambda attempt: attempt[0])

    def refine(found, stop=None, started=None):
        if subset is data:
            return best(found)
        starts = [attempt[2] for attempt in found] if each else [best(found)[2]]
        return refinement(data, np.stack(starts), criteria, seed, stop, raw, started)

    if report is None:
        cv2.setRNGSeed(seed)  # per thread: it must be set in the thread that fits
        if each:
            return refine(
                [cv2.kmeans(subset, k, None, criteria, 1, flags) for _ in range(attempts)]
            )
        return refine([cv2.kmeans(subset, k, None, criteria, attempts, flags)])
    refinements = 0 if subset is data else attempts if each else 1
    steps = attempts + refinements
    state = {"step": 0, "best": None, "error": None}
    stop, done = threading.Event(), threading.Event()

    def started(i):  # refinement i begins
        state["step"] = attempts + i

    def in_order():
        try:
            cv2.setRNGSeed(seed)
            found = []
            for attempt in range(attempts):
                if stop.is_set():
                    return
                state["step"] = attempt
                found.append(cv2.kmeans(subset, k, None, criteria, 1, flags))
            if not stop.is_set():
                state["best"] = refine(found, stop, started)
        except Exception as e:  # handed to the caller
            state["error"] = e
        finally:
            done.set()

    def message(step):
        if step < attempts:
            return f"K-means attempt {step + 1} of {attempts}"
        if refinements > 1:
            which = f"{step - attempts + 1} of {refinements} "
            return f"K-means refinement {which}on {len(data):,} pixels"
        return f"K-means refinement on {len(data):,} pixels"

    # not a daemon: at exit the interpreter waits for its cv2 call, which would abort the
    # process ("exception not rethrown") if it returned while Python shuts down (napari
    # closed during a run); said, as a thread started from a Qt one would be a daemon
    helper = threading.Thread(target=in_order, name="kquant-kmeans", daemon=False)
    reported = 0
    try:
        report(0.0, message(0))
        helper.start()
        while not done.wait(POLL_SECONDS):
            while reported < state["step"]:  # every step is announced, in order
                reported += 1
                report(reported / steps, message(reported))
            report(reported / steps, message(reported))
        for later in range(reported + 1, state["step"] + 1):
            report(later / steps, message(later))
    except BaseException:
        stop.set()  # abandon the helper: its current cv2 call finishes unseen
        raise
    if state["error"] is not None:
        raise state["error"]
    report(1.0, "fitting done")  # the steps above end at the last one's start
    return state["best"]


def refinement(data, centers, criteria, seed, stop=None, raw=None, started=None):
    """Exact weighted Lloyd from ``centers`` over the distinct rows of ``data``:
    (compactness, labels, centres), or None if ``stop`` is set. ``centers`` (k, d),
    or (starts, k, d): each start refined, the first of the lowest error kept;
    ``started(i)`` is called as start i begins.

    cv2.kmeans would measure every row against every centre in each iteration (seconds
    at K=256 on 256,000 rows). Each distinct row once, with its count
    (`core._lloyd.distinct`: about 110,000 of a photo's 256,000), and bounds per group
    of about GROUP_SIZE nearby centres (`core._lloyd.lloyd`, Yinyang-style) make an
    iteration of a three-channel photo cost a few milliseconds, so the refinement runs
    to convergence within cv2's criteria. With many channels the bounds prune little
    (16 channels at K=256: seconds). Labels are each row's nearest final centre; the
    compactness is measured on the rows. ``raw``: as for `kmeans`.
    """
    from ..core._lloyd import distinct, lloyd

    if stop is not None and stop.is_set():
        return None
    kind, max_iter, epsilon = criteria
    max_iter = max_iter if kind & cv2.TERM_CRITERIA_MAX_ITER else MAX_ITER
    epsilon = epsilon if kind & cv2.TERM_CRITERIA_EPS else 0.0
    values, weights, index = distinct(data if raw is None else raw)
    if raw is not None:  # the rows of one pixel value are equal in data too
        values = np.empty((len(weights), data.shape[1]))
        values[index] = data
    starts = np.asarray(centers).reshape(-1, *np.shape(centers)[-2:])
    kept, lowest = None, np.inf
    for i, start in enumerate(starts):
        if stop is not None and stop.is_set():
            return None
        if started is not None:
            started(i)
        groups = np.zeros(len(start), np.int64)
        if len(start) >= 2 * GROUP_SIZE:
            cv2.setRNGSeed(seed)  # the grouping is reproducible whatever ran before
            room = max(2, BOUNDS_BYTES // (8 * len(values)))
            ngroups = min(MAX_GROUPS, len(start) // GROUP_SIZE, room)
            groups = cv2.kmeans(start, ngroups, None, (3, 10, 0.0), 1,
                                cv2.KMEANS_PP_CENTERS)[1].ravel()  # fmt: skip
        fitted = lloyd(values, weights, start, max_iter, epsilon, groups, stop)
        if fitted is None:  # stopped (Cancel)
            return None
        # (one start: nothing to compare, so no error measured)
        error = weighted_error(values, weights, *fitted[:2]) if len(starts) > 1 else 0.0
        if kept is None or error < lowest:
            kept, lowest = fitted, error
    centers, value_labels, _ = kept
    labels = value_labels[index].reshape(-1, 1)
    centers = centers.astype(np.float32)  # as cv2.kmeans gives them
    diff = data.astype(np.float64) - centers[labels.ravel()]
    return float(np.einsum("ij,ij->", diff, diff)), labels, centers


def weighted_error(values, weights, centers, labels):
    """The sum of squared distances of ``values`` to their centres, each times its weight."""
    diff = values - centers[labels]
    return float(np.einsum("i,ij,ij->", weights, diff, diff))  # no BLAS: its threads spin after


def dark_to_light(centers, ncolour):
    brightness = centers[:, :3] @ _LUMA if ncolour == 3 else centers.mean(axis=1)
    return np.lexsort((*centers.T[::-1], brightness))
