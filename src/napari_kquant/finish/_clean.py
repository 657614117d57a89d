"""Clean label maps: a majority filter, and small regions merged into their neighbours.

Label images are uint8 or uint16 arrays shaped (..., Y, X); the leading axes are
planes (time, z), and every 2-D plane is cleaned on its own. Label 0 means "left
out": its pixels never change, never vote and never take in a region. Clusters
are labels 1..k. Numba kernels do the pixel work; dask is imported by
`clean_lazy` only.

Two cleanings, applied in this order:

``smooth=r``
    A majority (mode) filter over the (2r + 1) x (2r + 1) window, clipped at the
    plane's edges. Labelled pixels vote, label 0 does not. A pixel keeps its label
    when it is one of the most frequent in its window, else it takes the lowest of
    the most frequent labels. One pass, computed from the unfiltered labels.
``min_size=N``
    A region is an 8-connected set of pixels of one label >= 1. Regions of fewer
    than N pixels are merged into a neighbour, in rounds (see `clean_labels`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core._assign import compiled
from ..core._layout import check_known_chunks
from ..core._options import finish
from ._regions import _in_threads, _merge_small

LABEL_DTYPES = (np.uint8, np.uint16)

_ROWS = 64  # rows per parallel work item of the majority filter
_REACH = 2  # the overlap of clean_lazy, in units of min_size (see its Notes)


def check_clean(min_size=None, smooth=None) -> tuple[int | None, int | None]:
    """Check the cleaning options (`_options.finish`); the errors name the parameter and
    the value. ``min_size`` is None or 1 (no change) to 2**31 - 1; ``smooth`` None or 0
    (no change) to 50."""
    done = finish(min_size=min_size, smooth=smooth)
    return done.min_size, done.smooth


def clean_labels(labels, *, min_size=None, smooth=None) -> np.ndarray:
    """Smooth a label image with a majority filter, then merge its small regions away.

    Parameters
    ----------
    labels : numpy.ndarray
        uint8 or uint16 labels shaped (..., Y, X); 0 is "left out". Not modified.
    min_size : int, optional
        Regions of fewer pixels are merged into a neighbour; None or 1: no merging.
    smooth : int, optional
        Radius r of the (2r + 1) x (2r + 1) majority filter; None or 0: no filter.

    Returns
    -------
    numpy.ndarray
        A new array of the same shape and dtype.

    Raises
    ------
    TypeError
        When ``labels`` is not uint8 or uint16, or an option is not an integer.
    ValueError
        When ``labels`` has fewer than 2 axes, an option is out of range, or (with
        ``min_size``) a plane has 2**31 pixels or more.

    Notes
    -----
    Every plane (the last two axes) is cleaned on its own: nothing connects planes.

    The majority filter: see the module docstring.

    The merging of small regions works on regions, the 8-connected components of
    pixels sharing a label >= 1 in the (smoothed) input, and on groups of regions
    that merged; a group starts as one region. Two groups are neighbours when they
    share a border: the number of pairs of 4-neighbouring pixels, one in each (a
    touch at a corner alone is no border). A group of fewer than ``min_size``
    pixels is *small*. Then, in rounds until nothing changes:

    1. Every small group with a neighbour picks, all at the same time, the
       neighbour it shares the longest border with; ties go to the larger
       neighbour, where every group of ``min_size`` pixels or more counts as
       equally large, then to the lower label, then to the neighbour whose first
       shared pixel pair comes first in raster order.
    2. The picks form chains that end in a group that is not small, or in two
       small groups that picked each other: the larger of those two (then the
       lower label, then the one whose first pixel comes first) ends the chain.
       Every group of a chain joins the group that ends it and takes its label.

    Small groups with no labelled neighbour (surrounded by 0, alone in the plane)
    stay as they are. Sizes are capped at ``min_size`` in the tie-break so that
    `clean_lazy` can give the same result from chunks: how large a large region
    is can lie outside a chunk.

    Examples
    --------
    >>> labels = np.ones((5, 6), np.uint8)
    >>> labels[1:3, 1:3] = 2  # a speck of 4 pixels
    >>> labels[:, 5] = 3
    >>> clean_labels(labels, min_size=5)
    array([[1, 1, 1, 1, 1, 3],
           [1, 1, 1, 1, 1, 3],
           [1, 1, 1, 1, 1, 3],
           [1, 1, 1, 1, 1, 3],
           [1, 1, 1, 1, 1, 3]], dtype=uint8)
    """
    if not np.ma.isMaskedArray(labels):  # one is refused: its mask would be dropped
        labels = np.asarray(labels)  # dask or zarr too: computed
    labels = _check_labels(labels, "clean_labels")
    min_size, smooth = check_clean(min_size, smooth)
    out = _smooth(_planes(labels), smooth or 0)
    if (min_size or 1) > 1:
        for p, plane in enumerate(out):
            result, _ = _merge_small(plane, min_size)
            if result is not None:
                out[p] = result
    return out.reshape(labels.shape).astype(labels.dtype, copy=False)


def clean_lazy(labels, *, min_size=None, smooth=None):
    """`clean_labels` for a dask array (..., Y, X): a lazy result, computed chunk-wise.

    Each chunk is cleaned with ``dask.array.map_overlap`` (no overlap across
    planes) and gives exactly what `clean_labels` gives on the whole plane; a
    chunk that cannot be exact raises a ValueError when it is computed (see
    Notes). The result keeps the chunking, except that chunks smaller than the
    overlap depth are first merged along Y and X (up to the whole plane).

    Parameters
    ----------
    labels : dask.array.Array
        uint8 or uint16 labels shaped (..., Y, X); 0 is "left out".
    min_size, smooth : int, optional
        As for `clean_labels`.

    Returns
    -------
    dask.array.Array
        Lazy cleaned labels of the same shape and dtype.

    Raises
    ------
    TypeError, ValueError
        As for `clean_labels`, at once; and a ValueError from the computation of
        a chunk whose result would depend on pixels beyond its overlap.

    Notes
    -----
    The overlap depth is ``d = 2 * min_size + smooth`` (``smooth`` without
    ``min_size``). The majority filter of a pixel reads the pixels within
    ``smooth`` of it, so it is exact in the extended chunk except in its outer
    ``smooth`` pixels, which are dropped; the merging then sees a window reaching
    ``2 * min_size`` pixels beyond the chunk. A region that touches a cut edge of
    that window counts as large: never merged away, as large as any in a tie.

    A small region with a pixel in the chunk lies within ``min_size - 1`` pixels
    of it, so it is seen whole, and a neighbour of it that reaches the window's
    edge spans more than ``min_size`` pixels, so it is large indeed: a small
    region among large ones is cleaned exactly, with one exception: two pieces of
    one region, cut apart by the window, look like two regions, each with a
    shorter border. And merging is not local: small regions merge into small
    neighbours, whose choices depend on their own neighbours, round after round,
    and a field of noise carries that over any distance. So every chunk follows,
    round by round, which choices might differ from the whole plane's (from the
    regions that touch the window's edge with fewer than ``min_size`` pixels
    inside, and from choices that the cut pieces of a label, taken as one region,
    would overturn) and checks that every region with a pixel in the chunk ends
    with a certain label. When that fails, computing the chunk raises a
    ValueError that asks for larger chunks; whole planes
    (``labels.rechunk({-2: -1, -1: -1})``) always work.

    With ``min_size=64`` on a 4096 x 4096 photograph quantized to K=8, every
    chunk of 256 x 256 or more passes. At K=64 its noisy parts form a cluster of
    small regions over 1000 pixels across: 2 of the 16 chunks of 1024 x 1024 fail
    (one still with a 4 times deeper overlap); after ``smooth=1`` all pass.
    """
    import dask.array as da

    labels = da.asarray(labels)
    check_known_chunks(labels, "labels")
    labels = _check_labels(labels, "clean_lazy")
    min_size, smooth = check_clean(min_size, smooth)
    n, r = min_size or 1, smooth or 0
    if n == 1 and r == 0:
        return labels
    depth = r + (_REACH * n if n > 1 else 0)
    nd = labels.ndim
    chunks = list(labels.chunks)
    for ax in (nd - 2, nd - 1):
        if len(chunks[ax]) > 1 and min(chunks[ax]) < depth:
            chunks[ax] = _at_least(labels.shape[ax], max(depth, max(chunks[ax])))
    if tuple(chunks) != labels.chunks:
        labels = labels.rechunk(tuple(chunks))
    depths = dict.fromkeys(range(nd), 0)
    for ax in (nd - 2, nd - 1):
        depths[ax] = depth if len(labels.chunks[ax]) > 1 else 0
    return da.map_overlap(
        _clean_block, labels, depth=depths, boundary="none", trim=True,
        dtype=labels.dtype, meta=np.empty((0,) * nd, labels.dtype), min_size=n, smooth=r,
        depth_yx=(depths[nd - 2], depths[nd - 1]), chunks_yx=labels.chunks[-2:],
    )  # fmt: skip


def _planes(labels):
    """A uint16 copy shaped (planes, Y, X): the kernels are compiled for one type only."""
    return labels.reshape(math.prod(labels.shape[:-2]), *labels.shape[-2:]).astype(np.uint16)


def _at_least(length, size):
    """Near-equal chunks of at least ``size`` along an axis of ``length`` (one if shorter)."""
    nblocks = max(1, length // size)
    base, extra = divmod(length, nblocks)
    return (base + 1,) * extra + (base,) * (nblocks - extra)


def _check_labels(labels, function):
    if np.ma.isMaskedArray(labels):  # its mask would be dropped: label 0 is "left out"
        raise TypeError(f"{function}: labels must not be a masked array; set left-out pixels to 0")
    dtype = getattr(labels, "dtype", None)
    if dtype is not None and dtype.kind == "u" and not dtype.isnative:  # big-endian uint16
        labels = labels.astype(dtype.newbyteorder("="))
        dtype = labels.dtype
    if dtype not in LABEL_DTYPES:
        raise TypeError(f"{function}: labels must be uint8 or uint16, got dtype {dtype}")
    if labels.ndim < 2:
        raise ValueError(
            f"{function}: labels must have axes (..., Y, X), got shape {labels.shape}"
        )
    return labels


def _clean_block(block, *, min_size, smooth, depth_yx, chunks_yx, block_info=None):
    """Clean one extended chunk; only its middle (the chunk itself) is kept."""
    loc = block_info[0]["chunk-location"][-2:]
    ny, nx = block.shape[-2:]
    pad = []  # overlap at the top, bottom, left and right (0 at the plane's edges)
    for axis_chunks, i, d in zip(chunks_yx, loc, depth_yx, strict=True):
        pad += [d if i > 0 else 0, d if i < len(axis_chunks) - 1 else 0]
    out = _smooth(_planes(block), smooth)
    if min_size > 1:
        top, bottom, left, right = (max(p - smooth, 0) for p in pad)  # filtered exactly
        cut = [p > 0 for p in pad]
        for plane in out:
            sub = plane[pad[0] - top : ny - pad[1] + bottom, pad[2] - left : nx - pad[3] + right]
            core = (top, sub.shape[0] - bottom, left, sub.shape[1] - right)
            result, exact = _merge_small(np.ascontiguousarray(sub), min_size, cut, core)
            if not exact:
                y0 = sum(chunks_yx[0][: loc[0]])
                x0 = sum(chunks_yx[1][: loc[1]])
                raise ValueError(
                    f"clean_lazy: the chunk at rows {y0}:{y0 + core[1] - core[0]}, columns "
                    f"{x0}:{x0 + core[3] - core[2]} cannot be cleaned exactly from an overlap "
                    f"of {max(pad)} pixels: regions smaller than min_size={min_size} there "
                    "merge with regions that reach beyond it. Use larger chunks "
                    "(labels.rechunk({-2: -1, -1: -1}) cleans whole planes) or clean_labels"
                )
            if result is not None:
                sub[...] = result
    return out.reshape(block.shape).astype(block.dtype, copy=False)


# --- the majority filter ----------------------------------------------------------------


def _smooth(planes, r):
    """``planes`` (P, Y, X) majority-filtered into a new array; themselves when r is 0."""
    if r == 0 or planes.size == 0:
        return planes
    out = np.empty_like(planes)
    nitems = len(planes) * -(-planes.shape[1] // _ROWS)
    _in_threads(_smooth_kernel, nitems, planes, r, int(planes.max()) + 1, out)
    return out


@numba.njit(inline="always")
def _vote(hist, freq, v, top):
    """Count a vote for ``v``; returns the new highest count."""
    c = hist[v]
    freq[c] -= 1  # freq[0] is a dump: labels with no vote are not tracked
    hist[v] = c + 1
    freq[c + 1] += 1
    return max(top, c + 1)


@numba.njit(inline="always")
def _unvote(hist, freq, v, top):
    c = hist[v]
    freq[c] -= 1
    hist[v] = c - 1
    freq[c - 1] += 1
    if c == top and freq[c] == 0:
        return c - 1
    return top


@compiled
def _smooth_kernel(src, r, nbins, out, start, stop):
    """Huang's sliding histogram along each row: two columns of the window change per
    pixel. ``freq[c]`` counts the labels with c votes, so the highest count is known
    at every step; the lowest label of that count is searched only where a pixel's
    own label is not among the most frequent (in the window, or in the histogram if
    that is shorter). Work item i is rows ``_ROWS`` * (i % n) onwards of plane i // n,
    n being the number of such blocks in a plane."""
    ny, nx = src.shape[1:]
    nblocks = (ny + _ROWS - 1) // _ROWS
    most = min(2 * r + 1, ny) * min(2 * r + 1, nx)
    for item in range(start, stop):
        plane = src[item // nblocks]
        dst = out[item // nblocks]
        y0 = (item % nblocks) * _ROWS
        hist = np.zeros(nbins, np.int32)
        freq = np.zeros(most + 2, np.int32)
        for y in range(y0, min(ny, y0 + _ROWS)):
            ya, yb = max(0, y - r), min(ny, y + r + 1)
            top = 0
            for x in range(min(nx, r)):  # columns 0..r-1; column r enters at x = 0
                for yy in range(ya, yb):
                    if plane[yy, x] != 0:
                        top = _vote(hist, freq, plane[yy, x], top)
            for x in range(nx):
                xo, xn = x - r - 1, x + r  # the columns that leave and enter
                if xo >= 0 and xn < nx:  # out, then in: no count exceeds the window
                    for yy in range(ya, yb):
                        u, w = plane[yy, xo], plane[yy, xn]
                        if u != w:  # equal ones cancel out (most of an image)
                            if u != 0:
                                top = _unvote(hist, freq, u, top)
                            if w != 0:
                                top = _vote(hist, freq, w, top)
                elif xo >= 0:
                    for yy in range(ya, yb):
                        if plane[yy, xo] != 0:
                            top = _unvote(hist, freq, plane[yy, xo], top)
                elif xn < nx:
                    for yy in range(ya, yb):
                        if plane[yy, xn] != 0:
                            top = _vote(hist, freq, plane[yy, xn], top)
                v = plane[y, x]
                if v == 0 or hist[v] == top:
                    dst[y, x] = v
                    continue
                xa, xb = max(0, x - r), min(nx, x + r + 1)
                best = nbins
                if (yb - ya) * (xb - xa) < nbins:
                    for yy in range(ya, yb):
                        for xx in range(xa, xb):
                            u = plane[yy, xx]
                            if u != 0 and u < best and hist[u] == top:
                                best = u
                else:
                    for u in range(1, nbins):
                        if hist[u] == top:
                            best = u
                            break
                dst[y, x] = best
            for x in range(max(0, nx - r - 1), nx):  # empty the histogram for the next row
                for yy in range(ya, yb):
                    if plane[yy, x] != 0:
                        top = _unvote(hist, freq, plane[yy, x], top)
