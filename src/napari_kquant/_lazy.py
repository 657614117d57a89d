"""Images larger than memory: dask arrays, zarr-like arrays and multiscale pyramids.

The fit reads a seeded sample of pixels from a random subset of chunks; the
assignment is a blockwise map, so results stay lazy and are computed chunk by
chunk when something asks for them (napari drawing a tile, ``to_zarr``, ...).
dask is imported here only.
"""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np

from ._quantize import (
    Layout,
    QuantizeResult,
    _pixels,
    _quantize_array,
    _usable,
    apply_model,
    check_mask,
    fit_model,
    layout,
)

#: The fit sample is drawn from at most this many chunks, picked at random.
SAMPLE_CHUNKS = 64
#: Candidates drawn per wanted pixel: some may be left out (mask, alpha 0, NaN).
OVERDRAW = 1.25


def quantize_lazy(image, settings, channel_axis, alpha, mask, report):
    """`quantize` for a dask (or dask-wrappable) array; results are dask arrays."""
    if not isinstance(image, da.Array):  # zarr, h5py, ...: keep their own chunking
        image = da.from_array(image, chunks=image.chunks)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    if settings.sample is None:
        raise ValueError(
            "sample=None (an exact fit) needs every pixel in memory; give a sample size, "
            "or pass np.asarray(image) if it fits"
        )
    pixels_cl = _channels_last(image, lay)
    spatial_shape = pixels_cl.shape[:-1]
    if math.prod(spatial_shape) <= settings.sample:  # small: the eager path, exactly
        return _small(image, settings, channel_axis, alpha, mask, report)
    mask = _as_lazy_mask(mask, spatial_shape, pixels_cl.chunks[:-1])
    fit_pixels = draw_sample(pixels_cl, mask, lay, settings)
    model, _, _ = fit_model(fit_pixels, lay.ncolour, image.dtype, settings, report, 5)
    labels, quantized, counts, compactness = assign_lazy(pixels_cl, mask, lay, model)
    if report is not None:
        report(1.0, "done")
    return QuantizeResult(
        quantized=_restore(quantized, lay),
        labels=labels,
        centers=model.centers,
        counts=counts,
        compactness=compactness,
        seed=settings.seed,
        epsilon=model.epsilon,
    )


def quantize_levels(levels, settings, channel_axis, alpha, mask, report):
    """`quantize` for a multiscale pyramid (finest first): one palette for every level.

    The fit samples the coarsest level that still has ``sample`` pixels; every
    level is then assigned with the same centres. ``counts`` and
    ``compactness`` describe the finest level.
    """
    if mask is not None:
        raise ValueError("mask is not supported with multiscale input")
    if settings.sample is None:
        raise ValueError("sample=None (an exact fit) is not supported with multiscale input")
    lays = [layout(level.shape, level.dtype, channel_axis, alpha) for level in levels]
    lazy = [
        _channels_last(da.asarray(level), lay) for level, lay in zip(levels, lays, strict=True)
    ]
    sizes = [math.prod(level.shape[:-1]) for level in lazy]
    big_enough = [i for i, n in enumerate(sizes) if n >= settings.sample]
    fit_level = big_enough[-1] if big_enough else 0
    fit_pixels = draw_sample(lazy[fit_level], None, lays[fit_level], settings)
    model, _, _ = fit_model(fit_pixels, lays[0].ncolour, levels[0].dtype, settings, report, 5)
    quantized, labels, stats = [], [], []
    for pixels_cl, lay in zip(lazy, lays, strict=True):
        lab, q, *level_stats = assign_lazy(pixels_cl, None, lay, model)
        quantized.append(_restore(q, lay))
        labels.append(lab)
        stats.append(level_stats)
    counts, compactness = stats[0]  # the finest level's
    if all(isinstance(level, np.ndarray) for level in levels):  # numpy in, numpy out
        *arrays, counts, compactness = dask.compute(*quantized, *labels, counts, compactness)
        quantized, labels = arrays[: len(levels)], arrays[len(levels) :]
        compactness = float(compactness)
    if report is not None:
        report(1.0, "done")
    return QuantizeResult(
        quantized, labels, model.centers, counts, compactness, settings.seed, model.epsilon
    )


def _channels_last(image, lay):
    """(..., channels) with one chunk along channels; a trailing axis of 1 for gray."""
    if lay.channel_axis is None:
        return image[..., None]
    return da.moveaxis(image, lay.channel_axis, -1).rechunk({-1: -1})


def _restore(quantized_cl, lay):
    if lay.channel_axis is None:
        return quantized_cl[..., 0]
    return da.moveaxis(quantized_cl, -1, lay.channel_axis)


def _block_layout(lay):
    return Layout(-1, lay.nchan, lay.has_alpha)


def _as_lazy_mask(mask, spatial_shape, chunks):
    if mask is None:
        return None
    mask = mask if isinstance(mask, da.Array) else da.asarray(mask)
    return check_mask(mask, spatial_shape).rechunk(chunks)


def _small(image, settings, channel_axis, alpha, mask, report):
    """Fit and assign in memory; hand the results back as dask arrays like the input's."""
    mask = None if mask is None else np.asarray(mask)
    result = _quantize_array(np.asarray(image), settings, channel_axis, alpha, mask, report)
    channel = None if channel_axis is None else channel_axis % image.ndim
    spatial_chunks = tuple(c for axis, c in enumerate(image.chunks) if axis != channel)
    return QuantizeResult(
        quantized=da.from_array(result.quantized, chunks=image.chunks),
        labels=da.from_array(result.labels, chunks=spatial_chunks),
        centers=result.centers,
        counts=da.from_array(result.counts),
        compactness=da.from_array(np.asarray(result.compactness)),
        seed=result.seed,
        epsilon=result.epsilon,
    )


def draw_sample(pixels_cl, mask, lay, settings):
    """(n, colours) usable pixels from a seeded random subset of chunks, computing only those.

    Chunks are picked uniformly; within each, pixels are drawn in proportion
    to the chunk's size, ``OVERDRAW`` times more than needed, then thinned to
    ``settings.sample``.
    """
    rng = np.random.default_rng(settings.seed)
    grid = pixels_cl.numblocks[:-1]
    nblocks = math.prod(grid)
    chosen = np.sort(rng.choice(nblocks, min(nblocks, SAMPLE_CHUNKS), replace=False))
    where = [np.unravel_index(b, grid) for b in chosen]
    sizes = [math.prod(pixels_cl.chunks[axis][i] for axis, i in enumerate(idx)) for idx in where]
    want = settings.sample * OVERDRAW / sum(sizes)
    tasks = []
    for idx, size in zip(where, sizes, strict=True):
        picks = np.sort(rng.choice(size, min(size, math.ceil(want * size)), replace=False))
        block = pixels_cl.blocks[(*idx, 0)]
        mask_block = None if mask is None else mask.blocks[idx]
        tasks.append(dask.delayed(_usable_at)(block, mask_block, picks, _block_layout(lay)))
    pixels = np.concatenate(dask.compute(*tasks))
    if len(pixels) == 0:
        raise ValueError("the sample has no usable pixel (all masked, transparent or non-finite)")
    if len(pixels) > settings.sample:
        pixels = pixels[np.sort(rng.choice(len(pixels), settings.sample, replace=False))]
    return pixels


def _usable_at(block, mask_block, picks, lay):
    pixels, _ = _pixels(block, lay)
    pixels = pixels[picks]
    mask = None if mask_block is None else mask_block.reshape(-1)[picks]
    valid = _usable(pixels, lay.ncolour, (len(picks),), mask)
    colour = pixels[:, : lay.ncolour]
    return colour if valid is None else colour[valid]


def assign_lazy(pixels_cl, mask, lay, model):
    """Lazy labels, quantized pixels (channels last), counts and compactness.

    One task per chunk runs the kernel once and returns all four parts as a
    tuple (held in a dask array of dtype object); each output takes its part,
    so computing several of them together is a single pass over the data.
    """
    block_lay = _block_layout(lay)
    masks = [] if mask is None else [mask[..., None]]
    ndim = pixels_cl.ndim
    parts = da.map_blocks(  # spatial chunks, one tuple each
        _assign_block, pixels_cl, *masks, model=model, lay=block_lay,
        dtype=object, drop_axis=ndim - 1, meta=np.empty((0,) * (ndim - 1), object),
    )  # fmt: skip
    label_dtype = model.rank.dtype
    labels = parts.map_blocks(
        _part, 0, dtype=label_dtype, meta=np.empty((0,) * (ndim - 1), label_dtype)
    )
    quantized = parts.map_blocks(
        _part, 1, dtype=pixels_cl.dtype, new_axis=ndim - 1, chunks=pixels_cl.chunks,
        meta=np.empty((0,) * ndim, pixels_cl.dtype),
    )  # fmt: skip
    blocks = parts.to_delayed().ravel()
    counts = dask.delayed(np.sum)([dask.delayed(_part)(b, 2) for b in blocks], axis=0)
    sse = dask.delayed(sum)([dask.delayed(_part)(b, 3) for b in blocks])
    k = len(model.centers)
    return (
        labels,
        quantized,
        da.from_delayed(counts, shape=(k,), dtype=np.int64),
        da.from_delayed(sse, shape=(), dtype=np.float64),
    )


def _assign_block(block, mask_block=None, *, model, lay):
    pixels, spatial = _pixels(block, lay)
    mask = None if mask_block is None else mask_block[..., 0]
    valid = _usable(pixels, lay.ncolour, spatial, mask)
    labels, out, counts, sse = apply_model(model, pixels, valid)
    return labels.reshape(spatial), out.reshape(block.shape), counts[1:], sse


def _part(parts, i):
    return parts[i]
