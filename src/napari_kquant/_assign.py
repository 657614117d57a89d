"""Compiled kernels that turn centres into labels and a quantized image.

Numba is imported here and only here; `_quantize` imports this module the first
time it needs it, so ``import napari_kquant`` stays numpy + cv2.

All kernels work on flat pixel arrays of shape (n, channels). Label 0 means
"left out" (masked, transparent or non-finite); clusters are labels 1..k and
``palette[j]`` is the output colour of label j (row 0 is unused).
"""

from __future__ import annotations

import numba
import numpy as np

_BLOCK = 16384  # pixels per parallel work item
_LUT_EMPTY = 255  # sentinel of the uint8 colour cache: k <= 254 fits beside it
LUT_MAX_K = 254


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


def _compiled(function):
    """``numba.njit`` with the compiled code cached on disk, or, where numba finds no
    writable cache folder (a read-only install and home), compiled once per session."""
    try:
        return numba.njit(parallel=True, nogil=True, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(parallel=True, nogil=True)(function)


@_compiled
def _assign_kernel(
    features, nfeat, pixels, ncolour, valid, centers, palette, lut, labels, out, counts, sse
):
    """Label every pixel with its nearest centre; write labels and quantized pixels.

    Distances are measured on the first ``nfeat`` columns of ``features`` (the
    pixels themselves, or their L*a*b* values); ``pixels`` (n, c) is the source,
    copied through where a pixel is left out and for channels past ``ncolour``.
    ``lut`` is an empty array, or a 2**24 uint8 cache of labels indexed by 8-bit
    RGB: that path spells out its 3 channels so that the compiler unrolls them.
    Adds each work item's per-label pixel counts (index 0 = left out) to row b
    of ``counts`` and the squared distances of its labelled pixels to their
    centres to ``sse[b]``: the caller sums them, because reductions inside the
    parallel loop tripled numba's compile time.
    """
    n = features.shape[0]
    use_valid = valid.size > 0
    use_lut = lut.size > 0
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        total = 0.0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if use_valid and not valid[i]:
                _emit(i, 0, pixels, 0, palette, labels, out)
                counts[b, 0] += 1
                continue
            if use_lut:
                code = (np.int64(features[i, 0]) << 16) | (np.int64(features[i, 1]) << 8)
                code |= np.int64(features[i, 2])
                j = np.int64(lut[code])
                if j == _LUT_EMPTY:
                    j, d = _nearest(features, i, 3, centers)
                    lut[code] = np.uint8(j)
                else:
                    d = _sqdist(features, i, 3, centers, j)
                _emit(i, j + 1, pixels, 3, palette, labels, out)
            else:
                j, d = _nearest(features, i, nfeat, centers)
                _emit(i, j + 1, pixels, ncolour, palette, labels, out)
            total += d
            counts[b, j + 1] += 1
        sse[b] = total


@_compiled
def _paint_kernel(labels, pixels, ncolour, palette, out):
    """Write ``palette[label]`` for labelled pixels, the source pixel elsewhere."""
    n = labels.shape[0]
    nchan = pixels.shape[1]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            label = labels[i]
            first = ncolour if label > 0 else 0
            for ch in range(first):
                out[i, ch] = palette[label, ch]
            for ch in range(first, nchan):
                out[i, ch] = pixels[i, ch]


def _empty(dtype):
    return np.empty(0, dtype)


def assign(pixels, ncolour, centers, palette, valid, labels, out, to_features, report, lock):
    """Nearest-centre labels for every pixel, written into ``labels`` and ``out``.

    ``to_features`` maps a block of colour channels to the space the centres
    live in (None: the colour channels themselves). ``report(fraction)`` is
    called after each block, outside ``lock``, which is held around each kernel
    call. Returns (counts, sse), ``counts`` indexed by label.
    """
    centers = np.ascontiguousarray(centers, np.float64)
    rgb8 = (
        to_features is None
        and pixels.dtype == np.uint8
        and ncolour == 3
        and len(centers) <= LUT_MAX_K
    )
    lut = np.full(1 << 24, _LUT_EMPTY, np.uint8) if rgb8 else _empty(np.uint8)
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
        block_counts[:] = 0
        block_sse[:] = 0
        with lock:
            _assign_kernel(
                features,
                features.shape[1] if to_features is not None else ncolour,
                block,
                ncolour,
                _empty(np.bool_) if valid is None else valid[s:e],
                centers,
                palette,
                lut,
                labels[s:e],
                out[s:e],
                block_counts,
                block_sse,
            )
        counts += block_counts.sum(axis=0)
        sse += float(block_sse.sum())
        report(e / n)
    return counts, sse


def paint(labels, pixels, ncolour, palette, out):
    """Fill ``out`` from given labels: the palette colour, or the source where 0."""
    _paint_kernel(labels, pixels, ncolour, palette, out)


@_compiled
def _sse_kernel(features, nfeat, labels, centers, sse):
    """Squared distances of labelled pixels to their labels' centres, summed per work item."""
    n = features.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(nblocks):
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
            _sse_kernel(features, nfeat, labels[s : s + step], centers, sums)
        total += float(sums.sum())
    return total
