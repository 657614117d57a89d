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


@numba.njit(parallel=True, nogil=True, cache=True)
def _assign_kernel(features, pixels, ncolour, valid, centers, palette, lut, labels, out):
    """Label every pixel with its nearest centre; write labels and quantized pixels.

    ``features`` (n, f) is what distances are measured on (the pixels' colour
    channels, or their L*a*b* values); ``pixels`` (n, c) is the source, copied
    through where a pixel is left out and for channels past ``ncolour`` (alpha).
    ``lut`` is an empty array, or a 2**24 uint8 cache indexed by 8-bit RGB.
    Returns per-label pixel counts (index 0 = left out) and the sum of squared
    distances of the labelled pixels to their centres.
    """
    n = features.shape[0]
    nfeat = features.shape[1]
    k = centers.shape[0]
    nchan = pixels.shape[1]
    use_valid = valid.size > 0
    use_lut = lut.size > 0
    nblocks = (n + _BLOCK - 1) // _BLOCK
    counts = np.zeros((nblocks, k + 1), np.int64)
    sse = np.zeros(nblocks)
    for b in numba.prange(nblocks):
        total = 0.0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if use_valid and not valid[i]:
                labels[i] = 0
                counts[b, 0] += 1
                for ch in range(nchan):
                    out[i, ch] = pixels[i, ch]
                continue
            best = -1
            code = 0
            if use_lut:
                code = (np.int64(features[i, 0]) << 16) | (np.int64(features[i, 1]) << 8)
                code |= np.int64(features[i, 2])
                cached = lut[code]
                if cached != _LUT_EMPTY:
                    best = np.int64(cached)
            if best >= 0:
                best_d = 0.0
                for ch in range(nfeat):
                    t = np.float64(features[i, ch]) - centers[best, ch]
                    best_d += t * t
            else:
                best_d = np.inf
                for j in range(k):
                    d = 0.0
                    for ch in range(nfeat):
                        t = np.float64(features[i, ch]) - centers[j, ch]
                        d += t * t
                    if d < best_d:
                        best_d = d
                        best = j
                if use_lut:
                    lut[code] = np.uint8(best)
            total += best_d
            label = best + 1
            labels[i] = label
            counts[b, label] += 1
            for ch in range(ncolour):
                out[i, ch] = palette[label, ch]
            for ch in range(ncolour, nchan):
                out[i, ch] = pixels[i, ch]
        sse[b] = total
    return counts.sum(axis=0), sse.sum()


@numba.njit(parallel=True, nogil=True, cache=True)
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


def assign(pixels, ncolour, centers, palette, valid, labels, out, to_features, report):
    """Nearest-centre labels for every pixel, written into ``labels`` and ``out``.

    ``to_features`` maps a block of colour channels to the space the centres
    live in (None: the colour channels themselves). ``report(fraction)`` is
    called after each block. Returns (counts, sse), ``counts`` indexed by label.
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
    counts = np.zeros(len(centers) + 1, np.int64)
    sse = 0.0
    n = len(pixels)
    for s in range(0, n, step):
        e = min(s + step, n)
        colour = pixels[s:e, :ncolour]
        c, d = _assign_kernel(
            colour if to_features is None else to_features(colour),
            pixels[s:e],
            ncolour,
            _empty(np.bool_) if valid is None else valid[s:e],
            centers,
            palette,
            lut,
            labels[s:e],
            out[s:e],
        )
        counts += c
        sse += d
        report(e / n)
    return counts, sse


def paint(labels, pixels, ncolour, palette, out):
    """Fill ``out`` from given labels: the palette colour, or the source where 0."""
    _paint_kernel(labels, pixels, ncolour, palette, out)
