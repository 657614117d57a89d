"""The public functions `quantize` and `fit`: their keyword signatures, the options
validated once into `core.Settings` and `core.Finish`, and ``k="auto"`` resolved (by
`analysis.auto_k`) before the engine fits. numpy and OpenCV only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .analysis._choose import auto_k
from .core._layout import is_lazy, is_multiscale
from .core._options import (
    DEFAULT_SAMPLE,
    MAX_AUTO_K,
    Settings,
    callback,
    check_names,
    finish,
    settings,
)
from .engine._fit import Fitted, fit_image
from .engine._palette import Palette
from .engine._quantize import as_lazy_result, quantize_fitted, small_lazy
from .engine._result import QuantizeResult


def quantize(
    image,
    k: int = 8,
    *,
    channel_axis: int | None = None,
    alpha: bool | None = None,
    criteria: str = "eps+max_iter",
    max_iter: int | None = None,
    epsilon: float | None = None,
    attempts: int | None = None,
    init: str = "kmeans++",
    seed: int | None = None,
    sample: int | str | None = DEFAULT_SAMPLE,
    color_space: str = "rgb",
    white=None,
    speed: str = "default",
    mask=None,
    target: float | None = None,
    dither: str | bool | None = None,
    dither_strength: float = 1.0,
    min_size: int | None = None,
    smooth: int | None = None,
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
    k : int or "auto"
        Number of clusters (colours). ``"auto"``: the smallest K whose fit of a
        20,000-pixel sample has a mean CIEDE2000 colour difference of at most
        ``target`` (3-channel colour; see `napari_kquant.k_curve`), recorded in
        ``result.palette.fit["auto"]``.
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
    max_iter : int or None
        Iterations per attempt, 2 to 100 (OpenCV's own limits). None: 100 (10
        with ``speed="fast"``). With ``criteria="eps"`` OpenCV runs up to 100
        whatever is given, and the palette records 100.
    epsilon : float or None
        Centre movement below which an attempt has converged, in the units of
        the clustered values. None: 1/1000 of the data's value range.
    attempts : int or None
        Independent K-means runs; the one with the lowest compactness wins.
        None: 3 (1 with ``speed="fast"``).
    init : {"kmeans++", "random"}
        Initial centres: ``cv2.KMEANS_PP_CENTERS`` or
        ``cv2.KMEANS_RANDOM_CENTERS``.
    seed : int or None
        Seed for the pixel sample and for OpenCV's RNG (0 to 2**31 - 1).
        None draws one; it is returned in the result.
    sample : int, "auto" or None
        Fit on at most this many usable pixels drawn at random, then give every
        pixel its nearest centre; "auto": 4,000 per cluster, at least 50,000
        and at most 768,000 (1,000 per cluster from K=768). The attempts run on
        a subsample of 10,000 (40 per cluster above K=250) and are refined by
        exact weighted Lloyd steps over the sample's distinct colours, until no
        colour changes cluster or the criteria stop it: at K=13-32 every attempt
        (the lowest error kept), at other K the attempt best on the subsample. None fits on
        every usable pixel in one ``cv2.kmeans`` call, which is exactly what a
        direct call returns but can take minutes on a large photo.
    color_space : {"rgb", "lab", "od"}
        Cluster the values as they are; or (3 colour channels only) in CIE
        L*a*b*, where distances follow perceived colour differences; or in
        optical density, -log10(value / white) per channel (capped at 3), the
        space colour deconvolution works in, where clusters of a brightfield
        slide follow its stains rather than their brightness. Integer images
        are scaled by their dtype's maximum, float images are taken to be in
        [0, 1]. Centres always come back in the image's units.
    white : float, sequence of float or "auto", optional
        For ``color_space="od"``: the white level (clear glass), one value or
        one per channel, in the image's units. None: the dtype's maximum (1.0
        for floats); "auto": the median of the brightest 1% of the fitted
        pixels (right when the image shows some glass). Kept in the palette.
    speed : {"default", "fast"}
        ``"fast"``: other defaults for a quick fit, as pngquant's users expect of
        a web picture (0.05-0.16 s at K=256 on 0.26-1 MP): the ``"auto"``
        sample is 100 pixels per cluster (at least 25,000), one attempt runs
        on 10 per cluster (at least 2,500), and ``max_iter`` is 10 for it and
        for the refinement. Options given explicitly win. Its mean squared
        error is 0-6% above the default's at K=16-64 and 4-19% at K=256, its
        mean CIEDE2000 about the default's; with ``color_space="lab"`` its
        mean CIEDE2000 is below libimagequant's (the docs' benchmarks page:
        ``bench_web.py``).
    mask : array_like of bool, optional
        The image's spatial shape; only True pixels are clustered.
    target : float, optional
        With ``k="auto"``: the mean CIEDE2000 to meet (default 3.0: a close
        match in colour-matching practice; 1 is a just noticeable difference).
    dither : {None, True, "adaptive", "floyd-steinberg", "ordered"}
        Draw ``quantized`` in palette colours whose patterns keep the
        original's colours when seen from a distance. ``True`` is
        ``"adaptive"``: serpentine error diffusion in flat areas only (none
        across edges and texture, which hide banding; a pixel carries at most
        0.3 of the palette's step), closer to the original and less noisy
        than ``"floyd-steinberg"`` (full error diffusion everywhere);
        ``"ordered"`` is an 8x8 Bayer pattern. Only the
        picture is dithered: ``labels`` stay each pixel's nearest centre (a
        segmentation). Errors and nearest colours are in the image's own units
        (RGB), whatever ``color_space``. Lazy images are dithered chunk by
        chunk (error diffusion restarts at chunk edges; ordered is exact).
    dither_strength : float
        0 to 1: how much of each pixel's error is diffused (adaptive and
        Floyd-Steinberg, like pngquant's ``--floyd``), or the pattern's
        amplitude relative to the palette's spacing (ordered).
    min_size : int, optional
        Clean label maps: connected regions (8-connected, one label) smaller
        than this many pixels join the neighbouring region they share the
        longest border with; ``quantized``, ``counts`` and ``compactness``
        follow. Each 2-D plane of a stack is cleaned on its own.
    smooth : int, optional
        Before ``min_size``: a majority (mode) filter of this radius on the
        labels (a (2r + 1)-pixel square window; left-out pixels neither change
        nor vote). Cannot be combined with ``dither``.
    progress : callable, optional
        Called as ``progress(fraction_done, message)`` in the calling thread,
        at least every 0.1 s while K-means runs and after each block of
        assigned pixels. An exception raised from it stops the run at once and
        propagates; nothing has been modified. With a hook, K-means attempts
        run one by one in a helper thread that the run stops waiting for (the
        same result, slightly slower in exact mode).

    Returns
    -------
    QuantizeResult
        ``quantized``, ``labels``, ``centers``, ``counts``, ``compactness``,
        the ``seed`` and ``epsilon`` used, and the fitted ``palette`` (keep it
        to give other images the same colour classes). For lazy input, ``quantized``,
        ``labels``, ``counts`` and ``compactness`` are dask arrays (the last
        two need a pass over all the data: compute them together with what
        you write); ``centers`` is always computed.

    Raises
    ------
    TypeError
        An unsupported image dtype (bool, complex, object, float16), or an
        option of the wrong type.
    ValueError
        An option out of range, an empty image, a mask of the wrong shape,
        fewer usable pixels than ``k``, or float values too far apart (1e80
        beside 0-100) for float32 to keep ``k`` colours of them.

    Warns
    -----
    UserWarning
        When the clustered pixels have fewer distinct colours than ``k``: the
        result is valid, and some clusters duplicate others.

    Notes
    -----
    ``quantize(image, ...)`` is ``fit(image, ...).apply(image, ...)``, with one
    refinement: with ``sample=None`` the labels are the fit's own partition,
    exactly as a direct ``cv2.kmeans`` call returns it, where ``apply`` gives
    nearest-centre labels, which can differ for a few pixels at cluster
    boundaries (cv2 stops after its last centre update, before relabelling).
    With a sample, every pixel gets its nearest centre (an image no larger than
    the sample keeps the refinement's labels, which are those).

    Left-out pixels (mask False, alpha 0, or any non-finite channel) get label
    0 and keep their values. Labels run dark to light by luminance (Rec. 601
    weights for 3 colour channels, the mean of the channels otherwise), so a
    palette reads the same on every run with the same seed. The caller's array
    is never modified.

    The defaults (3 k-means++ attempts on a subsample, refined on the sample's
    distinct colours to convergence) come close to a converged full-image fit
    in a fraction of its time (the docs' benchmarks page: ``bench_quality.py``,
    ``bench.py``). OpenCV's tutorial settings (10 iterations, epsilon 1.0,
    random centres) stop before convergence.

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
    done = finish(dither, dither_strength, min_size, smooth)
    callback("progress", progress)
    options = {
        "criteria": criteria, "max_iter": max_iter, "epsilon": epsilon, "attempts": attempts,
        "init": init, "seed": seed, "sample": sample, "color_space": color_space,
        "white": white, "speed": speed,
    }  # fmt: skip
    opts = _settings(k, target, options)
    image = _as_image(image)
    if is_lazy(image) and not is_multiscale(image):
        largest = MAX_AUTO_K if isinstance(k, str) else opts.k  # the most K can be
        eager = small_lazy(image, opts.sample_for(largest), channel_axis, alpha)
        if eager is not None:  # no larger than the sample: quantized in memory
            if mask is not None:
                mask = np.asarray(mask)
            result = _quantize(eager, k, target, opts, done, channel_axis, alpha, mask, progress)
            return as_lazy_result(result, image, channel_axis, alpha)
    return _quantize(image, k, target, opts, done, channel_axis, alpha, mask, progress)


def _quantize(image, k, target, opts, done, channel_axis, alpha, mask, progress):
    fit_share = 0.9 if opts.sample is None else 0.5  # rough share of the run the fit takes
    fit_hook = apply_hook = None
    if progress is not None:
        fit_hook = lambda done, msg: progress(fit_share * done, msg)  # noqa: E731
        apply_hook = lambda done, msg: progress(  # noqa: E731
            fit_share + (1 - fit_share) * done, msg
        )
    fitted, drawn = _fit(image, k, target, opts, channel_axis, alpha, mask, fit_hook)
    return quantize_fitted(
        fitted, drawn, image, done, channel_axis, alpha, mask, progress, apply_hook
    )


def fit(
    image,
    k: int = 8,
    *,
    channel_axis=None,
    alpha=None,
    mask=None,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> Palette:
    """Fit a palette of ``k`` colours to an image, to apply to it and to others.

    Takes the same image, layout and fit options as `napari_kquant.quantize`
    (``criteria``, ``max_iter``, ``epsilon``, ``attempts``, ``init``, ``seed``,
    ``sample``, ``color_space``, ``white``, ``speed``) with the same defaults and checks;
    ``quantize(image, ...)`` is ``fit(image, ...).apply(image, ...)``.

    Returns
    -------
    Palette
        Centres dark to light, in the image's units, with the fit's settings,
        seed, epsilon and compactness (on the fitted pixels).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_kquant import fit
    >>> image = np.zeros((4, 6, 3), np.uint8)
    >>> image[:, 3:] = (200, 40, 10)
    >>> palette = fit(image, k=2, channel_axis=-1, seed=0)
    >>> palette.hex
    ['#000000', '#c8280a']
    >>> palette.apply(image[:, ::-1], channel_axis=-1).labels[0]
    array([2, 2, 2, 1, 1, 1], dtype=uint8)
    """
    options = dict(options)
    target = options.pop("target", None)
    check_names("fit", options)
    opts = _settings(k, target, options)
    callback("progress", progress)
    image = _as_image(image)
    return _fit(image, k, target, opts, channel_axis, alpha, mask, progress)[0].palette


def _as_image(image):
    """A nested list (or tuple) that is not a pyramid as an array, or a clear error."""
    if isinstance(image, list | tuple) and not is_multiscale(image):
        try:
            return np.asarray(image)
        except ValueError as e:  # ragged rows, or arrays of other shapes
            if all(hasattr(level, "shape") and hasattr(level, "dtype") for level in image):
                shapes = ", ".join(str(tuple(level.shape)) for level in image)
                raise ValueError(
                    "image: arrays of other shapes in a list are a multiscale pyramid only "
                    "with the same axes, each level smaller than the one before; got "
                    f"shapes {shapes}"
                ) from None
            raise ValueError(
                "image must be an array: a list of rows of equal length, or a multiscale "
                f"list of arrays, finest first ({e})"
            ) from None
    return image


def _settings(k, target, options) -> Settings:
    """The fit options, checked once (for ``k="auto"``: every option but K)."""
    if isinstance(k, str) and k != "auto":
        raise TypeError(f"k must be a whole number or 'auto', got {k!r}")
    if not isinstance(k, str) and target is not None:
        raise ValueError(f"target is the quality k='auto' aims for; it does not go with k={k!r}")
    return settings(1 if isinstance(k, str) else k, **options)


def _fit(image, k, target, opts, channel_axis, alpha, mask, progress) -> tuple[Fitted, object]:
    """The engine's fit, after ``k="auto"`` has chosen K: (fitted, drawn) as
    `engine.fit_image` returns them, the choice recorded in the palette."""
    if not isinstance(k, str):
        return fit_image(image, channel_axis, alpha, mask, progress, opts)
    search = None
    if progress is not None:  # the search is the first half of the fit's progress
        hook = progress
        search = lambda done, message: hook(0.5 * done, message)  # noqa: E731
        progress = lambda done, message: hook(0.5 + 0.5 * done, message)  # noqa: E731
    k, auto = auto_k(image, channel_axis, alpha, mask, target, opts, search)
    opts = replace(opts.with_k(k), seed=auto["seed"])  # the seed drawn for the choice
    fitted, drawn = fit_image(image, channel_axis, alpha, mask, progress, opts)
    palette = replace(fitted.palette, fit={**fitted.palette.fit, "auto": auto})
    return replace(fitted, palette=palette), drawn
