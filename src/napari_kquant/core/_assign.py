"""Compiled kernels that turn centres into labels and a quantized image.

Numba is imported here and only here; `engine._apply` imports this module the first
time it needs it, so ``import napari_kquant`` stays numpy + cv2.

All kernels work on flat pixel arrays of shape (n, channels). Label 0 means
"left out" (masked, transparent or non-finite); clusters are labels 1..k and
``palette[j]`` is the output colour of label j (row 0 is unused).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import numba
import numpy as np

_BLOCK = 16384  # pixels per parallel work item
#: Three-channel pixels (8-bit RGB, 16-bit, floats, L*a*b*, optical density) are searched
#: through a grid of 32 x 32 x 32 cells over a box of the distance space (see `grid`):
#: each cell lists the centres that can be nearest somewhere in it (see `cells`); from
#: `CELL_MIN_K` centres and `CELL_MIN_PIXELS` pixels.
_CELL_BITS = 5
_SIDE = 1 << _CELL_BITS
_NCELLS = 1 << (3 * _CELL_BITS)
#: Below this many pixels a search of every centre costs less than building the grid
#: (which measures each of the 32,768 cells against every centre, in numpy: 0.08 s at
#: K=256, where 16.7 MP are then assigned in 0.2 s).
CELL_MIN_PIXELS = 1 << 18
#: Below this many centres, measuring every one (three channels written out) costs less
#: than the grid, even once it is built (16.7 MP: K=8 0.115 s against 0.129 s, K=16
#: 0.172 s against 0.155 s + 0.019 s to build; 4 MP, K=16: 0.041 s against 0.045 + 0.017 s).
CELL_MIN_K = 17
#: A grid of more entries than this (a palette crowded far from most cells) is not built.
CELL_MAX_ENTRIES = 1 << 22
#: Cell-centre pairs measured at once while building the grid (bounds its memory at any K).
_CELL_BATCH = 1 << 21


@numba.njit(inline="always")
def _sqdist(features, i, nfeat, centers, j):
    d = 0.0
    for ch in range(nfeat):
        t = np.float64(features[i, ch]) - centers[j, ch]
        d += t * t
    return d


@numba.njit(inline="always")
def _nearest(features, i, nfeat, centers):
    best, best_d = 0, np.inf
    for j in range(centers.shape[0]):
        d = _sqdist(features, i, nfeat, centers, j)
        if d < best_d:
            best, best_d = j, d
    return best, best_d


@numba.njit(inline="always")
def _emit(i, label, pixels, ncolour, palette, labels, out):
    labels[i] = label
    for ch in range(ncolour):
        out[i, ch] = palette[label, ch]
    if pixels.shape[1] > ncolour:  # alpha, or every channel of a left-out pixel
        for ch in range(ncolour, pixels.shape[1]):
            out[i, ch] = pixels[i, ch]


def compiled(function):
    """``numba.njit`` of a kernel without numba's parallel loops (which compile in three
    times the time: the first use after install), run on parts of its range by
    `in_threads`; the compiled code is cached on disk, or, where numba finds no writable
    cache folder (a read-only install and home), kept for the session."""
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


_POOL = None
_POOL_LOCK = threading.Lock()


def workers() -> int:
    return max(1, min(numba.config.NUMBA_NUM_THREADS, len(os.sched_getaffinity(0))))


def in_threads(nblocks, call):
    """``call(b0, b1)`` on parts of ``range(nblocks)``, one per core, in threads (the
    kernels release the GIL); exceptions reach the caller."""
    global _POOL
    parts = min(workers(), nblocks)
    if parts <= 1:
        call(0, nblocks)
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(workers(), thread_name_prefix="kquant-assign")
    edges = [nblocks * i // parts for i in range(parts + 1)]
    futures = [_POOL.submit(call, edges[i], edges[i + 1]) for i in range(parts)]
    for future in futures:
        future.result()


class Grid(NamedTuple):
    """A search grid: cell ``c`` lists ``rows[starts[c]:starts[c + 1]]``, ordered by
    ``nears``; ``lo`` and ``inv`` map a value to its cell along each channel."""

    lo: np.ndarray  # (3,) float64: where cell 0 starts
    inv: np.ndarray  # (3,) float64: cells per unit (1 / a cell's width)
    starts: np.ndarray
    rows: np.ndarray
    nears: np.ndarray


#: The box a grid covers, per channel, is the centres' range widened by this share of it
#: on each side (and kept inside the space's own limits): pixels outside it, more extreme
#: than every centre, are measured against every centre instead.
BOX_MARGIN = 0.125


def box(centers, limits, integer):
    """(lo, width) per channel of a grid around ``centers`` (k, 3).

    ``limits`` (2, 3): the values the space can hold (-inf/inf: no limit).
    ``integer``: the pixels are whole numbers; cells are then a power of two
    wide and start on a whole number, so that a pixel's cell is found exactly.
    """
    centers = np.asarray(centers, np.float64)
    low, high = centers.min(axis=0), centers.max(axis=0)
    spread = high - low
    low = np.maximum(limits[0], low - BOX_MARGIN * spread)
    high = np.minimum(limits[1], high + BOX_MARGIN * spread)
    width = (high - low) / _SIDE
    if integer:  # the whole range of the dtype when its cells are no wider
        whole = _power_of_two((limits[1] - limits[0] + 1) / _SIDE)
        width = _power_of_two((np.floor(high) - np.floor(low) + 1) / _SIDE)
        width = np.where(width >= whole, whole, width)
        low = np.where(width >= whole, limits[0], low)
        return np.floor(low / width) * width, width
    width = np.where(width > 0, width, np.maximum(np.abs(high), 1.0) / _SIDE)
    return low, width * (1 + 2.0**-20)  # the highest value lands in the last cell


def _power_of_two(x):
    return 2.0 ** np.ceil(np.log2(np.maximum(x, 1.0)))


def cells(centers, lo=(0.0,) * 3, width=(8.0,) * 3, integer=True):
    """The search `Grid` of (k, 3) centres over the box of ``_SIDE`` cells a side from
    ``lo``, ``width`` wide (by default the 8-bit cube), or None when it would hold
    more than `CELL_MAX_ENTRIES` entries.

    Every centre that can be the nearest to some value of a cell is listed (its
    nearest point of the cell is no farther than the farthest point of the cell
    from the centre closest to it), ordered by that nearest-point distance
    ``nears``, ties in index order. A search stops at the first entry whose
    ``nears`` exceeds the best distance found, so it visits a few centres
    whatever k is, and finds exactly what a search of all would. ``integer``
    cells hold whole numbers ``lo + i * width`` to ``lo + (i + 1) * width - 1``;
    other cells are closed and widened by a millionth of their width, so that
    a value rounded into a neighbouring cell still lies in its box. Built with
    numpy (no compile on first use): squared distances are sums of one term
    per channel, each a (32, k) table.
    """
    centers = np.ascontiguousarray(centers, np.float64)
    lo, width = np.asarray(lo, np.float64), np.asarray(width, np.float64)
    index = np.arange(_SIDE, dtype=np.float64)[:, None, None]
    start = lo + index * width  # (32, 1, 3)
    if integer:
        first, last = start, start + (width - 1)
    else:
        first, last = start - width * 1e-6, start + width * (1 + 1e-6)
    gap = np.maximum(0.0, np.maximum(first - centers[None], centers[None] - last))
    reach = np.maximum(np.abs(centers[None] - first), np.abs(centers[None] - last))
    near = [(gap[..., ch] ** 2) for ch in range(3)]  # (32, k) per channel
    far = [(reach[..., ch] ** 2) for ch in range(3)]
    cell, row, dist, entries = [], [], [], 0
    step = max(1, _CELL_BATCH // (_SIDE * len(centers)))  # rows of cells at a time
    for r in range(_SIDE):
        for g0 in range(0, _SIDE, step):
            g1 = min(_SIDE, g0 + step)
            part_near = near[0][r] + near[1][g0:g1, None, :] + near[2][None, :, :]
            part_far = far[0][r] + far[1][g0:g1, None, :] + far[2][None, :, :]
            bound = part_far.min(axis=2, keepdims=True)
            g, b, j = np.nonzero(part_near <= bound)  # cells in order, centres in index order
            cell.append((r << (2 * _CELL_BITS)) | ((g + g0) << _CELL_BITS) | b)
            row.append(j)
            dist.append(part_near[g, b, j])
            entries += len(j)
            if entries > CELL_MAX_ENTRIES:
                return None
    cell, row, dist = np.concatenate(cell), np.concatenate(row), np.concatenate(dist)
    order = np.lexsort((dist, cell))  # stable: equal distances keep the index order
    starts = np.zeros(_NCELLS + 1, np.int64)
    np.cumsum(np.bincount(cell, minlength=_NCELLS), out=starts[1:])
    return Grid(lo, 1.0 / width, starts, row[order].astype(np.int64), dist[order])


@compiled
def _assign_kernel(
    b0, b1, features, nfeat, pixels, ncolour, valid, centers, palette, lo, inv, starts, rows,
    nears, labels, out, counts, sse,
):  # fmt: skip
    """Label every pixel with its nearest centre; write labels and quantized pixels.

    Distances are measured on the first ``nfeat`` columns of ``features`` (the
    pixels themselves, or their L*a*b* values); ``pixels`` (n, c) is the source,
    copied through where a pixel is left out and for channels past ``ncolour``.
    ``lo``, ``inv``, ``starts``, ``rows`` and ``nears`` are empty, or the
    `cells` grid of three-channel centres, searched through it; both
    searches keep the lowest index among equally near centres.
    Works on the work items (blocks of `_BLOCK` pixels) ``b0`` to ``b1``, and
    adds each one's per-label pixel counts (index 0 = left out) to row b
    of ``counts`` and the squared distances of its labelled pixels to their
    centres to ``sse[b]``: the caller runs parts of the range in threads and sums.
    """
    n = features.shape[0]
    use_valid = valid.size > 0
    use_cells = starts.size > 0
    three = nfeat == 3
    rgb = ncolour == 3 and pixels.shape[1] == 3
    for b in range(b0, b1):
        total = 0.0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if use_valid and not valid[i]:
                _emit(i, 0, pixels, 0, palette, labels, out)
                counts[b, 0] += 1
                continue
            if not three:
                j, d = _nearest(features, i, nfeat, centers)
                _emit(i, j + 1, pixels, ncolour, palette, labels, out)
                total += d
                counts[b, j + 1] += 1
                continue
            # three channels, written out (each read once, no loop over channels): 1.5x
            # faster than loops in inline helpers (16.7 MP, K=8 and 16, through the grid)
            p0 = np.float64(features[i, 0])
            p1 = np.float64(features[i, 1])
            p2 = np.float64(features[i, 2])
            j, d = 0, np.inf
            t0, t1, t2 = -1.0, -1.0, -1.0
            if use_cells:
                t0 = (p0 - lo[0]) * inv[0]
                t1 = (p1 - lo[1]) * inv[1]
                t2 = (p2 - lo[2]) * inv[2]
            if 0.0 <= t0 < _SIDE and 0.0 <= t1 < _SIDE and 0.0 <= t2 < _SIDE:  # not NaN
                code = (np.int64(t0) << 2 * _CELL_BITS) | (np.int64(t1) << _CELL_BITS)
                code |= np.int64(t2)
                for t in range(starts[code], starts[code + 1]):
                    if nears[t] > d:
                        break
                    row = rows[t]
                    x, y, z = p0 - centers[row, 0], p1 - centers[row, 1], p2 - centers[row, 2]
                    e = x * x + y * y + z * z
                    if e < d or (e == d and row < j):
                        j, d = row, e
            else:  # no grid, or outside its box: every centre
                for row in range(centers.shape[0]):
                    x, y, z = p0 - centers[row, 0], p1 - centers[row, 1], p2 - centers[row, 2]
                    e = x * x + y * y + z * z
                    if e < d:
                        j, d = row, e
            labels[i] = j + 1
            if rgb:
                out[i, 0] = palette[j + 1, 0]
                out[i, 1] = palette[j + 1, 1]
                out[i, 2] = palette[j + 1, 2]
            else:
                _emit(i, j + 1, pixels, ncolour, palette, labels, out)
            total += d
            counts[b, j + 1] += 1
        sse[b] = total


def _no_grid() -> Grid:
    return Grid(_empty(float), _empty(float), _empty(np.int64), _empty(np.int64), _empty(float))


@compiled
def _paint_kernel(b0, b1, labels, pixels, ncolour, palette, out):
    """Write ``palette[label]`` for labelled pixels, the source pixel elsewhere (blocks
    ``b0`` to ``b1``)."""
    n = labels.shape[0]
    nchan = pixels.shape[1]
    for b in range(b0, b1):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            label = labels[i]
            first = ncolour if label > 0 else 0
            for ch in range(first):
                out[i, ch] = palette[label, ch]
            for ch in range(first, nchan):
                out[i, ch] = pixels[i, ch]


def _empty(dtype):
    return np.empty(0, dtype)


def uses_cells(nfeat, k, npixels, built) -> bool:
    """Whether pixels of ``nfeat`` channels in the distance space are searched through
    a `cells` grid of ``k`` centres: three channels, `CELL_MIN_K` centres or more, where
    building it pays (enough pixels) or it is already ``built``."""
    return nfeat == 3 and k >= CELL_MIN_K and (built or npixels >= CELL_MIN_PIXELS)


def grid(centers, limits, integer) -> Grid | None:
    """The `cells` grid of (k, 3) centres over their `box`."""
    return cells(centers, *box(centers, limits, integer), integer)


def assign(pixels, ncolour, centers, palette, valid, labels, out, to_features, report, lock,
           grid=None):  # fmt: skip
    """Nearest-centre labels for every pixel, written into ``labels`` and ``out``.

    ``to_features`` maps a block of colour channels to the space the centres
    live in (None: the colour channels themselves). ``grid`` is None or the
    centres' `cells` (three channels). ``report(fraction)`` is
    called after each block, outside ``lock``, which is held around each kernel
    call. Returns (counts, sse), ``counts`` indexed by label.
    """
    # a writable copy: numba compiles read-only arrays (a palette's) as another signature
    centers = np.array(centers, np.float64, order="C")
    if grid is None:
        grid = _no_grid()
    # blocks keep a run stoppable and bound the L*a*b* buffer (12 MB a block)
    step = 1 << 22 if to_features is None else 1 << 20
    n = len(pixels)
    nblocks = (min(step, n) + _BLOCK - 1) // _BLOCK
    block_counts = np.zeros((nblocks, len(centers) + 1), np.int64)  # per work item, summed
    block_sse = np.zeros(nblocks)  # afterwards: no shared counters between threads
    counts = np.zeros(len(centers) + 1, np.int64)
    sse = 0.0
    for s in range(0, n, step):
        e = min(s + step, n)
        block = pixels[s:e]  # C-contiguous, so numba compiles its fast layout
        features = block if to_features is None else to_features(block[:, :ncolour])
        nblocks_here = (e - s + _BLOCK - 1) // _BLOCK
        block_counts[:] = 0
        block_sse[:] = 0
        with lock:
            in_threads(
                nblocks_here,
                partial(
                    _assign_kernel,
                    features=features,
                    nfeat=features.shape[1] if to_features is not None else ncolour,
                    pixels=block,
                    ncolour=ncolour,
                    valid=_empty(np.bool_) if valid is None else valid[s:e],
                    centers=centers,
                    palette=palette,
                    lo=grid.lo,
                    inv=grid.inv,
                    starts=grid.starts,
                    rows=grid.rows,
                    nears=grid.nears,
                    labels=labels[s:e],
                    out=out[s:e],
                    counts=block_counts,
                    sse=block_sse,
                ),
            )
        counts += block_counts.sum(axis=0)
        sse += float(block_sse.sum())
        report(e / n)
    return counts, sse


def paint(labels, pixels, ncolour, palette, out):
    """Fill ``out`` from given labels: the palette colour, or the source where 0."""
    nblocks = (len(labels) + _BLOCK - 1) // _BLOCK
    in_threads(nblocks, partial(_paint_kernel, labels=labels, pixels=pixels, ncolour=ncolour,
                                palette=palette, out=out))  # fmt: skip


@compiled
def _sse_kernel(b0, b1, features, nfeat, labels, centers, sse):
    """Squared distances of labelled pixels to their labels' centres, summed per work item
    (blocks ``b0`` to ``b1``)."""
    n = features.shape[0]
    for b in range(b0, b1):
        total = 0.0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            label = labels[i]
            if label > 0:
                total += _sqdist(features, i, nfeat, centers, label - 1)
        sse[b] = total


def sse(pixels, ncolour, centers, labels, to_features, lock):
    """Summed squared distances of labelled pixels to their centres (in the centres' space)."""
    centers = np.ascontiguousarray(centers, np.float64)
    step = 1 << 20
    total = 0.0
    for s in range(0, len(pixels), step):
        block = pixels[s : s + step]
        features = block if to_features is None else to_features(block[:, :ncolour])
        nfeat = ncolour if to_features is None else features.shape[1]
        sums = np.zeros((len(block) + _BLOCK - 1) // _BLOCK)
        with lock:
            in_threads(len(sums), partial(_sse_kernel, features=features, nfeat=nfeat,
                                          labels=labels[s : s + step], centers=centers,
                                          sse=sums))  # fmt: skip
        total += float(sums.sum())
    return total
