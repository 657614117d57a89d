"""Drawing the fit sample: seeded usable pixels from numpy, lazy and multiscale images,
and pooled across many images.

dask is imported only by the lazy functions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..core._layout import (
    Layout,
    check_dtype,
    check_known_chunks,
    is_lazy,
    layout,
    pixels,
    unmask,
    usable,
)

#: The first round of a lazy sample reads SAMPLE_CHUNKS chunks, picked at random (of an
#: image over LARGE_IMAGE bytes, FIRST_SHARE of its chunks if fewer, but at least
#: MIN_SAMPLE_CHUNKS); later rounds (when too few usable pixels were found) read twice as
#: many each.
SAMPLE_CHUNKS = 64
LARGE_IMAGE = 2**30
FIRST_SHARE = 0.1
MIN_SAMPLE_CHUNKS = 8
#: Candidates drawn per wanted pixel: some may be left out (mask, alpha 0, NaN).
OVERDRAW = 1.25
#: Lazy images of more than MANY_CHUNKS chunks smaller than MIN_CHUNK_PIXELS pixels are
#: rechunked: a graph of tens of thousands of tiny tasks costs more to build than to run.
MANY_CHUNKS = 64
MIN_CHUNK_PIXELS = 1 << 16


def sample_indices(rng, valid, n_usable, size):
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


class Drawn(NamedTuple):
    """A numpy image's sample, and what an exact fit needs to paint cv2's partition back."""

    pixels: np.ndarray  # (n, channels), native byte order
    valid: np.ndarray | None  # usable pixels, None when all are
    image: np.ndarray  # the image (a masked array's data)
    layout: Layout
    spatial: tuple
    sample: np.ndarray  # (m, colours) the pixels to fit on
    exact: bool  # every usable pixel is in the sample
    n_usable: int


def sample_array(image, channel_axis, alpha, mask, opts) -> Drawn:
    """Usable pixels of a numpy image: all of them, or ``opts.sample`` drawn with the seed."""
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    image, mask = unmask(image, lay, mask)
    pix, spatial = pixels(image, lay)
    valid = usable(pix, lay.ncolour, spatial, mask)
    n_usable = len(pix) if valid is None else int(np.count_nonzero(valid))
    exact = opts.sample is None or n_usable <= opts.sample
    if exact:
        sample = pix[:, : lay.ncolour] if valid is None else pix[valid, : lay.ncolour]
    else:
        rng = np.random.default_rng(opts.seed)
        sample = pix[sample_indices(rng, valid, n_usable, opts.sample), : lay.ncolour]
    return Drawn(pix, valid, image, lay, spatial, sample, exact, n_usable)


def pool(parts, counts, size, seed):
    """``size`` pixels from per-image samples, each image in proportion to ``counts``."""
    total = sum(counts)
    if total == 0:
        raise ValueError("the images have no usable pixel (all masked, transparent or non-finite)")
    if size is None or total <= size:
        return np.concatenate(parts)
    shares = np.array(counts, np.float64) * (size / total)
    take = np.floor(shares).astype(np.int64)
    rest = size - int(take.sum())  # the largest remainders get one more
    take[np.argsort(-(shares - take), kind="stable")[:rest]] += 1
    take = np.minimum(take, [len(p) for p in parts])
    rng = np.random.default_rng(seed)
    chosen = [
        part[np.sort(rng.choice(len(part), n, replace=False))]
        for part, n in zip(parts, take, strict=True)
    ]
    return np.concatenate(chosen)


# --- lazy images ------------------------------------------------------------------------------


def as_dask(image):
    """A dask array of the image (zarr, h5py, ... keep their chunking), native byte order."""
    import dask.array as da

    check_dtype(image.dtype)
    if isinstance(image, np.ndarray):
        image = da.asarray(image)
    elif not isinstance(image, da.Array):
        image = da.from_array(image, chunks=image.chunks)
    check_known_chunks(image)
    if isinstance(getattr(image, "_meta", None), np.ma.MaskedArray):
        raise ValueError("masked arrays inside dask arrays are not supported; pass mask=")
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    return image


def channels_last(image, lay: Layout, merge=False):
    """(..., channels), one chunk along channels (an axis of 1 for gray); with ``merge``,
    many tiny chunks merged (for a pass over every chunk; a sample reads few)."""
    import dask.array as da

    cl = image[..., None] if lay.channel_axis is None else da.moveaxis(image, lay.channel_axis, -1)
    cl = cl.rechunk({cl.ndim - 1: -1})
    if not merge:
        return cl
    spatial_blocks = math.prod(cl.numblocks[:-1])
    small = math.prod(cl.shape[:-1]) / spatial_blocks < MIN_CHUNK_PIXELS
    if spatial_blocks > MANY_CHUNKS and small:
        limit = MIN_CHUNK_PIXELS * cl.shape[-1] * cl.dtype.itemsize * 16
        spatial = dict.fromkeys(range(cl.ndim - 1), "auto")
        cl = cl.rechunk({**spatial, cl.ndim - 1: -1}, block_size_limit=limit)
    return cl


def block_layout(lay: Layout) -> Layout:
    return Layout(-1, lay.nchan, lay.has_alpha)


def lazy_mask(mask, spatial, chunks):
    """The mask as a dask array chunked like the image's spatial axes."""
    import dask.array as da

    from ..core._layout import check_mask

    if mask is None:
        return None
    mask = mask if isinstance(mask, da.Array) else da.asarray(mask)
    return check_mask(mask, spatial).rechunk(chunks)


def sample_lazy(image, channel_axis, alpha, mask, opts):
    """(dtype, colours, sample, estimated usable pixels) of a lazy image, reading few chunks.

    Chunks are read in a seeded random order, a batch at a time (`SAMPLE_CHUNKS`, or a
    tenth of a large image's chunks, then twice as many each round), until
    ``opts.sample`` usable pixels are in
    hand or every chunk has been read; within a chunk, pixels are drawn in
    proportion to its size. So the sample reaches ``opts.sample`` whenever the
    image has that many usable pixels, however they are spread.
    """
    image = as_dask(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    if opts.sample is None:
        raise ValueError(
            "sample=None (an exact fit) needs every pixel in memory; give a sample size, "
            "or pass np.asarray(image) if it fits"
        )
    cl = channels_last(image, lay)
    spatial = cl.shape[:-1]
    mask = lazy_mask(mask, spatial, cl.chunks[:-1])
    # one graph for all chunks, optimised once (a dask array per chunk costs one each)
    blocks = cl.to_delayed()
    masks = None if mask is None else mask.to_delayed()
    rng = np.random.default_rng(opts.seed)
    grid = cl.numblocks[:-1]
    order = rng.permutation(math.prod(grid))
    total = math.prod(spatial)
    first = SAMPLE_CHUNKS
    if cl.nbytes > LARGE_IMAGE:  # at most a tenth of its chunks at first
        first = min(first, max(MIN_SAMPLE_CHUNKS, math.ceil(len(order) * FIRST_SHARE)))
    parts, got, drawn, start, batch = [], 0, 0, 0, first
    while got < opts.sample and start < len(order):
        chosen = np.sort(order[start : start + batch])
        start, batch = start + batch, batch * 2
        where = [np.unravel_index(b, grid) for b in chosen]
        sizes = [math.prod(cl.chunks[axis][i] for axis, i in enumerate(idx)) for idx in where]
        rate = got / drawn if drawn else 1.0  # usable share seen so far
        density = (opts.sample - got) * OVERDRAW / max(rate, 1e-3) / sum(sizes)
        picks = [np.sort(rng.choice(size, min(size, math.ceil(density * size)), replace=False))
                 for size in sizes]  # fmt: skip
        found = _read(blocks, masks, lay, where, picks)
        parts += found
        got += sum(len(p) for p in found)
        drawn += sum(len(p) for p in picks)
    if got < opts.sample and drawn < total:
        # usable pixels are sparse: look at every pixel, so that the sample is as large as
        # the image allows (the same as a numpy image would give)
        where = [np.unravel_index(b, grid) for b in range(len(order))]
        parts = _read(blocks, masks, lay, where, [None] * len(where))
        got = drawn = sum(len(p) for p in parts)
        total = drawn
    if got == 0:
        raise ValueError("the image has no usable pixel (all masked, transparent or non-finite)")
    sample = np.concatenate(parts)
    if len(sample) > opts.sample:
        sample = sample[np.sort(rng.choice(len(sample), opts.sample, replace=False))]
    estimate = got if drawn >= total else round(total * got / drawn)
    return image.dtype, lay.ncolour, sample, estimate


def _read(blocks, masks, lay, where, picks):
    """Usable pixels at ``picks`` (None: all) of the chunks at ``where``, computed together
    (``blocks`` and ``masks``: the image's and the mask's chunks as dask delayed objects)."""
    import dask

    tasks = []
    for idx, pick in zip(where, picks, strict=True):
        mask_block = None if masks is None else masks[idx]
        block = blocks[(*idx, 0)]
        tasks.append(dask.delayed(_usable_at)(block, mask_block, pick, block_layout(lay)))
    return [p for p in dask.compute(*tasks) if len(p)]


def _usable_at(block, mask_block, picks, lay):
    if isinstance(block, np.ma.MaskedArray):
        raise ValueError("masked arrays inside dask arrays are not supported; pass mask=")
    pix, _ = pixels(block, lay)
    if picks is None:
        picks = slice(None)
    pix = pix[picks]
    mask = None if mask_block is None else mask_block.reshape(-1)[picks]
    valid = usable(pix, lay.ncolour, (len(pix),), mask)
    colour = pix[:, : lay.ncolour]
    return colour if valid is None else colour[valid]


def check_levels(levels, mask, channel_axis=None, alpha=None):
    """Multiscale input takes no mask, and no masked arrays (whose masks would be lost);
    every level has the same channels and dtype (a palette fitted on one level in its
    units is applied to all of them)."""
    if mask is not None:
        raise ValueError("mask is not supported with multiscale input")
    if any(isinstance(level, np.ma.MaskedArray) for level in levels):
        raise ValueError("masked arrays are not supported as multiscale levels")
    lays = [layout(level.shape, level.dtype, channel_axis, alpha) for level in levels]
    if len({(lay.nchan, lay.has_alpha) for lay in lays}) > 1:
        shapes = ", ".join(str(tuple(level.shape)) for level in levels)
        raise ValueError(
            f"every multiscale level must have the same channels, got levels of shape {shapes}"
        )
    dtypes = [np.dtype(level.dtype) for level in levels]
    if len({(d.kind, d.itemsize) for d in dtypes}) > 1:  # byte order aside
        raise ValueError(
            "every multiscale level must have the same dtype, got "
            + ", ".join(str(d) for d in dtypes)
        )


def fit_level(levels, channel_axis, alpha, mask, opts):
    """The multiscale level to fit on: the coarsest that still has ``opts.sample`` pixels."""
    check_levels(levels, mask, channel_axis, alpha)
    if opts.sample is None:
        raise ValueError("sample=None (an exact fit) is not supported with multiscale input")
    lays = [layout(level.shape, level.dtype, channel_axis, alpha) for level in levels]
    sizes = [math.prod(level.shape) // lay.nchan for level, lay in zip(levels, lays, strict=True)]
    big_enough = [i for i, n in enumerate(sizes) if n >= opts.sample]
    return levels[big_enough[-1] if big_enough else 0]


def sample_pixels(image, channel_axis, alpha, mask, opts):
    """A seeded sample of any one image's usable pixels, numpy or lazy: (dtype, colour
    channels, sample (n, channels), usable pixels). A numpy image's sample is a copy, so
    the image itself is not kept."""
    if is_lazy(image):
        return sample_lazy(image, channel_axis, alpha, mask, opts)
    image = image if isinstance(image, np.ndarray) else np.asarray(image)
    drawn = sample_array(image, channel_axis, alpha, mask, opts)
    return drawn.pixels.dtype, drawn.layout.ncolour, np.array(drawn.sample), drawn.n_usable
