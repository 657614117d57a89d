"""Applying a palette to images larger than memory: dask arrays, zarr-like arrays and
multiscale pyramids.

The assignment is a blockwise map, so results stay lazy and are computed chunk
by chunk when something asks for them (napari drawing a tile, ``to_zarr``, ...).
dask is imported here, and by the lazy sampler in `_sample`, only.
"""

from __future__ import annotations

import math
from functools import partial

import dask
import dask.array as da
import numpy as np

from ..core._layout import layout, pixels, usable
from ..core._options import Finish
from ._apply import assigner, check_channels
from ._result import QuantizeResult
from ._sample import as_dask, block_layout, channels_last, check_levels, lazy_mask

#: Lazy planes up to this many pixels are cleaned whole (a few hundred MB of work
#: arrays), which is always exact; larger ones chunk by chunk with an overlap, where
#: a chunk whose small regions chain beyond the overlap raises (`_clean.clean_lazy`).
WHOLE_PLANE = 2**25


def apply_lazy(palette, image, channel_axis, alpha, mask, progress, done) -> QuantizeResult:
    """`Palette.apply` for a dask (or dask-wrappable) array; results are dask arrays.

    ``quantized`` and ``labels`` keep the input's chunking, except that chunks
    are merged when there are very many tiny ones (`_sample.channels_last`).
    """
    image = as_dask(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    check_channels(palette, lay)
    cl = channels_last(image, lay, merge=True)
    mask = lazy_mask(mask, cl.shape[:-1], cl.chunks[:-1])
    labels, quantized, counts, compactness = assign_lazy(cl, mask, lay, palette, done)
    if progress is not None:
        progress(1.0, "done")
    return QuantizeResult(
        quantized=_restore(quantized, lay),
        labels=labels,
        centers=palette.centers_for(image.dtype),
        counts=counts,
        compactness=compactness,
        seed=palette.seed,
        epsilon=palette.epsilon,
        palette=palette,
        channel_axis=lay.channel_axis,
    )


def apply_levels(palette, levels, channel_axis, alpha, mask, progress, done) -> QuantizeResult:
    """`Palette.apply` for a multiscale pyramid (finest first): lists of results.

    ``counts`` and ``compactness`` describe the finest level. Numpy levels give
    numpy results, computed here. ``min_size`` and ``smooth`` are scaled to each
    level (by its area and its width), so every level shows the same clean-up.
    """
    check_levels(levels, mask, channel_axis, alpha)
    quantized, labels, stats = [], [], []
    width = None
    for level in levels:
        lay = layout(level.shape, level.dtype, channel_axis, alpha)
        check_channels(palette, lay)
        cl = channels_last(as_dask(level), lay, merge=True)
        width = width or cl.shape[-2]  # the finest level's columns
        shrink = cl.shape[-2] / width
        lab, q, *level_stats = assign_lazy(cl, None, lay, palette, _scaled(done, shrink))
        quantized.append(_restore(q, lay))
        labels.append(lab)
        stats.append(level_stats)
    counts, compactness = stats[0]  # the finest level's
    if all(isinstance(level, np.ndarray) for level in levels):  # numpy in, numpy out
        *arrays, counts, compactness = dask.compute(*quantized, *labels, counts, compactness)
        quantized, labels = arrays[: len(levels)], arrays[len(levels) :]
        compactness = float(compactness)
    if progress is not None:
        progress(1.0, "done")
    return QuantizeResult(
        quantized,
        labels,
        palette.centers_for(levels[0].dtype),
        counts,
        compactness,
        palette.seed,
        palette.epsilon,
        palette,
        lay.channel_axis,
    )


def _restore(quantized_cl, lay):
    if lay.channel_axis is None:
        return quantized_cl[..., 0]
    return da.moveaxis(quantized_cl, -1, lay.channel_axis)


def assign_lazy(cl, mask, lay, palette, done: Finish):
    """Lazy labels, quantized pixels (channels last), counts and compactness.

    One task per chunk runs the kernel once and returns all four parts as a
    tuple (held in a dask array of dtype object); each output takes its part,
    so computing several of them together is a single pass over the data.
    Cleaned labels (``min_size``, ``smooth``) need their neighbours: they are
    computed with overlapping chunks (`_clean.clean_lazy`), then a second pass
    repaints and counts.
    """
    asg = assigner(palette, cl.dtype)
    block_lay = block_layout(lay)
    masks = [] if mask is None else [mask[..., None]]
    ndim = cl.ndim
    label_dtype = asg.label_dtype
    block = _assign_block if done.dither is None else partial(_dither_block, done=done)
    parts = da.map_blocks(  # spatial chunks, one tuple each
        block, cl, *masks, asg=asg, lay=block_lay,
        dtype=object, drop_axis=ndim - 1, meta=np.empty((0,) * (ndim - 1), object),
    )  # fmt: skip
    labels = parts.map_blocks(
        _part, 0, dtype=label_dtype, meta=np.empty((0,) * (ndim - 1), label_dtype)
    )
    if done.cleans:
        from ..finish._clean import clean_lazy

        if math.prod(labels.shape[-2:]) <= WHOLE_PLANE:  # exact, whatever the regions
            labels = labels.rechunk(dict.fromkeys(range(max(0, ndim - 3), ndim - 1), -1))
        rows = labels if labels.ndim >= 2 else labels[None]  # a 1-D image is one row
        cleaned = clean_lazy(rows, min_size=done.min_size, smooth=done.smooth)
        cleaned = cleaned if labels.ndim >= 2 else cleaned[0]
        parts = da.map_blocks(
            _repaint_block, cleaned.rechunk(cl.chunks[:-1])[..., None], cl, *masks, asg=asg,
            lay=block_lay, dtype=object, drop_axis=ndim - 1,
            meta=np.empty((0,) * (ndim - 1), object),
        )  # fmt: skip
        labels = parts.map_blocks(
            _part, 0, dtype=label_dtype, meta=np.empty((0,) * (ndim - 1), label_dtype)
        )
    quantized = parts.map_blocks(
        _part, 1, dtype=cl.dtype, new_axis=ndim - 1, chunks=cl.chunks,
        meta=np.empty((0,) * ndim, cl.dtype),
    )  # fmt: skip
    spatial_axes = tuple(range(ndim - 1))
    per_block = tuple((1,) * n for n in parts.numblocks)  # one entry per chunk, summed
    counts = parts.map_blocks(
        _stat, 2, ndim - 1, dtype=np.int64, new_axis=ndim - 1, chunks=(*per_block, (palette.k,)),
        meta=np.empty((0,) * ndim, np.int64),
    ).sum(axis=spatial_axes)  # fmt: skip
    sse = parts.map_blocks(
        _stat, 3, ndim - 1, dtype=np.float64, new_axis=ndim - 1, chunks=(*per_block, (1,)),
        meta=np.empty((0,) * ndim, np.float64),
    ).sum()  # fmt: skip
    return labels, quantized, counts, sse


def _assign_block(block, mask_block=None, *, asg, lay, done=None, origin=None):
    if isinstance(block, np.ma.MaskedArray):
        raise ValueError("masked arrays inside dask arrays are not supported; pass mask=")
    pix, spatial = pixels(block, lay)
    mask = None if mask_block is None else mask_block[..., 0]
    valid = usable(pix, lay.ncolour, spatial, mask)
    labels, out, counts, sse = asg.assign(pix, valid)
    if done is not None:  # dithering (cleaning needs the neighbours: see assign_lazy)
        labels, out, counts, sse = asg.finish(
            pix, valid, spatial, labels, out, counts, sse, done, origin
        )
    return labels.reshape(spatial), out.reshape(block.shape), counts[1:], np.array([sse])


def _dither_block(block, mask_block=None, *, asg, lay, done, block_info=None):
    """`_assign_block`, dithered where the chunk lies in its plane (dask's ``block_info``
    is asked for only here: it costs every task of a large graph memory)."""
    where = block_info[0]["array-location"]  # (start, stop) per axis, channels last
    origin = (where[-3][0] if len(where) >= 3 else 0, where[-2][0])
    return _assign_block(block, mask_block, asg=asg, lay=lay, done=done, origin=origin)


def _repaint_block(label_block, block, mask_block=None, *, asg, lay):
    """A chunk's cleaned labels with its picture, counts and squared distances."""
    pix, _ = pixels(block, lay)
    labels = np.ascontiguousarray(label_block[..., 0]).reshape(-1)
    counts = np.bincount(labels, minlength=len(asg.centers) + 1).astype(np.int64)
    out = asg.paint(labels, pix)
    sse = asg.sse(labels, pix)
    return label_block[..., 0], out.reshape(block.shape), counts[1:], np.array([sse])


def _scaled(done: Finish, shrink: float) -> Finish:
    """A coarser level's clean-up: ``min_size`` by area, ``smooth`` by width."""
    if not done.cleans or shrink >= 1:
        return done
    min_size = None if done.min_size is None else max(1, math.ceil(done.min_size * shrink**2))
    smooth = None if done.smooth is None else round(done.smooth * shrink)
    return Finish(min_size=min_size, smooth=smooth)


def _part(parts, i):
    return parts[i]


def _stat(parts, i, nspatial):
    """A chunk's counts or squared distances, shaped (1, ..., 1, n) for a blockwise sum."""
    return parts[i].reshape((1,) * nspatial + (-1,))
