"""Dithering: the quantized picture drawn in palette colours whose patterns, seen from
a distance, keep the original's colours.

Only the picture is dithered: labels stay each pixel's nearest centre (they are a
segmentation, and a dithered segmentation would be noise). Errors are diffused and
nearest colours found in the image's own units (RGB), whatever space the palette
was fitted in, as Pillow and pngquant do.

- ``"adaptive"`` (the default, ``dither=True``): Floyd-Steinberg where the picture is
  flat, none across edges and texture (`_share`: from each pixel's largest difference
  to a neighbour, in palette steps), each pixel carrying at most `CAP` steps of error and
  diffusing `LEVEL` of it. Edges and texture hide banding, so diffusing there only adds
  noise; libimagequant's dithering is selective the same way. On the web photographs of
  ``benchmarks/bench_web.py`` it is closer to the original (mean CIEDE2000, SSIM) than
  Floyd-Steinberg and than libimagequant's dithering, and keeps most of
  Floyd-Steinberg's smoothing of bands.
- ``"floyd-steinberg"``: serpentine error diffusion (7/16, 3/16, 5/16, 1/16), the
  error scaled by ``strength`` (pngquant's ``--floyd``). Each 2-D plane is one
  sequential pass; planes of a stack run in parallel. Lazy images are dithered
  chunk by chunk, so the diffusion starts afresh at chunk edges.
- ``"ordered"``: an 8x8 Bayer threshold map added to every channel, scaled by the
  palette's typical spacing (the median distance from a colour to its nearest
  other colour, per channel) times ``strength``. It depends on the position only, so it is
  exact chunk by chunk.

Numba is imported here; `_apply` imports this module the first time it dithers.
"""

from __future__ import annotations

from functools import partial

import numba
import numpy as np

from ..core._assign import compiled, in_threads
from ..core._colorspace import safe_scale_64

_LUT_EMPTY = 255  # the uint8 cache's "not yet looked up": k <= 254 fits beside it
LUT_MAX_K = 254
_BITS = 6  # cache levels per channel: 2**6
_SHIFT = 8 - _BITS
_CANDIDATES = 15  # rows kept per cache cell
_FULL = _CANDIDATES + 1  # "more than that: search every row"


def _bayer(n: int) -> np.ndarray:
    """The n x n Bayer index matrix (0 .. n*n - 1), n a power of two."""
    m = np.zeros((1, 1), np.int64)
    while len(m) < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


#: Adaptive dithering: a pixel whose colour differs from a neighbour's by EDGE palette
#: steps or more diffuses no error (edges and texture hide banding; diffusing across them
#: only adds noise); at FLAT steps or less, all of it. A pixel carries at most CAP steps of
#: error per channel (no streaks after a sudden change).
FLAT, EDGE, CAP, LEVEL = 0.3, 1.5, 0.3, 15 / 16

BAYER = _bayer(8)
#: Thresholds in (-0.5, 0.5): what the ordered dither adds, in units of the spacing.
THRESHOLDS = (BAYER + 0.5) / 64.0 - 0.5


@numba.njit(inline="always")
def _nearest(v, nc, colours):
    best, best_d = 1, np.inf
    for j in range(1, colours.shape[0]):
        d = 0.0
        for ch in range(nc):
            t = v[ch] - colours[j, ch]
            d += t * t
        if d < best_d:
            best, best_d = j, d
    return best


@numba.njit(nogil=True, cache=True)  # the cache-miss path: kept out of the hot loop
def _candidates(r, g, b, colours, row):
    """The palette rows that can be nearest to some value of the cache cell (r, g, b):
    those no farther from the cell's box than the nearest row's farthest corner. Written
    to ``row``; returns how many (``_FULL`` when they do not fit: search them all)."""
    bound = np.inf
    for j in range(1, colours.shape[0]):
        far = 0.0
        for ch, cell in enumerate((r, g, b)):
            lo, hi = cell << _SHIFT, (cell << _SHIFT) + (1 << _SHIFT) - 1
            t = max(abs(colours[j, ch] - lo), abs(colours[j, ch] - hi))
            far += t * t
        bound = min(bound, far)
    n = 0
    for j in range(1, colours.shape[0]):
        near = 0.0
        for ch, cell in enumerate((r, g, b)):
            lo, hi = cell << _SHIFT, (cell << _SHIFT) + (1 << _SHIFT) - 1
            t = max(0.0, lo - colours[j, ch], colours[j, ch] - hi)
            near += t * t
        if near <= bound:
            if n == row.shape[0]:
                return _FULL
            row[n] = j
            n += 1
    return n


@numba.njit(inline="always")
def _pick(v, nc, colours, lut, cands):
    """The palette row (1..k) nearest ``v`` (rounded, for 8-bit RGB). 8-bit RGB goes through
    a cache of 64 levels per channel: ``lut`` holds a cell's row when only one can be
    nearest in it, else 0, and then ``cands`` its few candidate rows, their count first
    (Pillow caches one colour per cell, which is not always the nearest; an exact 16 MB
    cache misses the CPU's caches on every dithered pixel and is 2-3x slower)."""
    if lut.size == 0:
        return _nearest(v, nc, colours)
    r, g, b = np.int64(v[0] + 0.5), np.int64(v[1] + 0.5), np.int64(v[2] + 0.5)
    code = ((r >> _SHIFT) << (2 * _BITS)) | ((g >> _SHIFT) << _BITS) | (b >> _SHIFT)
    j = np.int64(lut[code])
    if j == _LUT_EMPTY:
        row = cands[code]
        n = _candidates(r >> _SHIFT, g >> _SHIFT, b >> _SHIFT, colours, row[1:])
        row[0] = n
        j = np.int64(row[1]) if n == 1 else 0
        lut[code] = np.uint8(j)
    if j > 0:
        return j
    n = np.int64(cands[code, 0])
    best, best_d = 1, np.inf
    for i in range(colours.shape[0] - 1 if n == _FULL else n):
        j = i + 1 if n == _FULL else np.int64(cands[code, i + 1])
        dr, dg, db = r - colours[j, 0], g - colours[j, 1], b - colours[j, 2]
        d = dr * dr + dg * dg + db * db
        if d < best_d:
            best, best_d = j, d
    return best


@numba.njit(inline="always")
def _share(pix, p, y, x, nc, inv, step):
    """The share of its error pixel (y, x) diffuses in adaptive dithering: 1 up to FLAT
    palette steps of difference to a 4-neighbour in any channel, 0 from EDGE."""
    height, width = pix.shape[1], pix.shape[2]
    contrast = 0.0
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = y + dy, x + dx
        if 0 <= ny < height and 0 <= nx < width:
            for ch in range(nc):
                d = abs(np.float64(pix[p, y, x, ch]) * inv - np.float64(pix[p, ny, nx, ch]) * inv)
                contrast = max(contrast, d)
    return min(1.0, max(0.0, (EDGE - contrast / step) / (EDGE - FLAT)))


@compiled
def _floyd_steinberg(p0, p1, pix, nc, valid, colours, out_colours, lo, hi, strength, inv, lut,
                     cands, step, cap, out):  # fmt: skip
    """Serpentine Floyd-Steinberg on planes ``p0`` to ``p1`` of (planes, rows, columns,
    channels); writes ``out``'s colour channels where ``valid`` (or everywhere when it is
    empty). ``step`` > 0 (the palette's spacing): adaptive, each pixel diffusing its
    `_share` of the error; ``cap`` bounds the error a pixel carries, per channel."""
    height, width = pix.shape[1], pix.shape[2]
    use_valid = valid.size > 0
    for p in range(p0, p1):
        err = np.zeros((2, width + 2, nc))
        v = np.empty(nc)
        for y in range(height):
            cur, nxt = err[y % 2], err[(y + 1) % 2]
            nxt[:, :] = 0.0
            direction = 1 if y % 2 == 0 else -1
            for i in range(width):
                x = i if direction == 1 else width - 1 - i
                if use_valid and not valid[p, y, x]:
                    continue
                for ch in range(nc):
                    carried = min(max(cur[x + 1, ch], -cap), cap)
                    t = np.float64(pix[p, y, x, ch]) * inv + carried
                    v[ch] = min(max(t, lo[ch]), hi[ch])
                j = _pick(v, nc, colours, lut, cands)
                share = strength
                if step > 0:
                    share *= LEVEL * _share(pix, p, y, x, nc, inv, step)
                for ch in range(nc):
                    out[p, y, x, ch] = out_colours[j, ch]
                    e = (v[ch] - colours[j, ch]) * share
                    cur[x + 1 + direction, ch] += e * (7.0 / 16.0)
                    nxt[x + 1 - direction, ch] += e * (3.0 / 16.0)
                    nxt[x + 1, ch] += e * (5.0 / 16.0)
                    nxt[x + 1 + direction, ch] += e * (1.0 / 16.0)


@compiled
def _ordered(r0, r1, pix, nc, valid, colours, out_colours, lo, hi, offsets, y0, x0, inv, lut,
             cands, out):  # fmt: skip
    """Bayer-ordered dither of rows ``r0`` to ``r1`` (counted over every plane):
    ``offsets`` (8, 8) is added to every channel of the pixel at plane position
    (y0 + y, x0 + x)."""
    height, width = pix.shape[1], pix.shape[2]
    use_valid = valid.size > 0
    for row in range(r0, r1):
        p, y = row // height, row % height
        v = np.empty(nc)
        for x in range(width):
            if use_valid and not valid[p, y, x]:
                continue
            t = offsets[(y0 + y) % 8, (x0 + x) % 8]
            for ch in range(nc):
                v[ch] = min(max(np.float64(pix[p, y, x, ch]) * inv + t, lo[ch]), hi[ch])
            j = _pick(v, nc, colours, lut, cands)
            for ch in range(nc):
                out[p, y, x, ch] = out_colours[j, ch]


def spacing(colours: np.ndarray) -> float:
    """The palette's typical step per channel: the median distance from a colour to its
    nearest other colour, over the square root of the channel count (black to white is
    a step of 255 in each of R, G and B), and 0 for one colour. Above 2048 colours, the
    median of 2048 of them, evenly spaced."""
    if len(colours) < 2:
        return 0.0
    # the median over at most 2048 evenly spaced colours (all of them up to there): k may
    # be 65535, and each row is measured against every colour
    rows = np.unique(np.linspace(0, len(colours) - 1, min(len(colours), 2048)).astype(int))
    nearest = np.empty(len(rows))
    for start in range(0, len(rows), 256):
        chosen = rows[start : start + 256]
        d = ((colours[chosen, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
        d[np.arange(len(chosen)), chosen] = np.inf
        nearest[start : start + len(chosen)] = np.sqrt(d.min(axis=1))
    return float(np.median(nearest)) / np.sqrt(colours.shape[1])


def dither(pix, valid, spatial, ncolour, out_colours, method, strength, out, origin=(0, 0)):
    """Overwrite the colour channels of ``out`` (n, channels) with the dithered picture.

    ``pix`` is the source (n, channels), ``valid`` None or (n,) bool (left-out
    pixels keep what ``out`` holds), ``spatial`` the pixels' spatial shape (the
    last two axes are a plane's rows and columns), ``out_colours`` the (k + 1,
    ncolour) palette in the image dtype (row 0 unused), ``origin`` the (row,
    column) of the first pixel in its plane (for chunks of a larger image).
    """
    shape4 = (-1, spatial[-2] if len(spatial) >= 2 else 1, spatial[-1])
    pix4 = pix.reshape(*shape4, pix.shape[1])
    out4 = out.reshape(*shape4, out.shape[1])
    valid3 = np.empty((0, 0, 0), np.bool_) if valid is None else valid.reshape(shape4)
    colours = np.array(out_colours[:, :ncolour], np.float64)  # a copy: scaled below
    # huge float values: distances in a power-of-two smaller unit, exact and finite
    inv = 1.0 / safe_scale_64(float(np.abs(colours).max()))
    colours *= inv
    body = colours[1:]
    lo, hi = body.min(axis=0), body.max(axis=0)  # float images: the palette's range
    if pix.dtype.kind in "ui":  # integers: the dtype's (as Pillow)
        info = np.iinfo(pix.dtype)
        lo, hi = np.full(ncolour, float(info.min)), np.full(ncolour, float(info.max))
    rgb8 = pix.dtype == np.uint8 and ncolour == 3 and len(body) <= LUT_MAX_K
    cells = 1 << (3 * _BITS) if rgb8 else 0
    lut = np.full(cells, _LUT_EMPTY, np.uint8)
    cands = np.zeros((cells, _CANDIDATES + 1), np.uint8)
    # the kernels run on parts of their planes or rows in threads (`in_threads`): serial
    # kernels compile in a fraction of the time of numba's parallel loops (first use)
    if method in ("floyd-steinberg", "adaptive"):
        step, cap = 0.0, np.inf
        if method == "adaptive":
            step = spacing(body)  # the palette's typical step per channel
            cap = CAP * step if step > 0 else np.inf
        in_threads(pix4.shape[0], partial(
            _floyd_steinberg, pix=pix4, nc=ncolour, valid=valid3, colours=colours,
            out_colours=out_colours, lo=lo, hi=hi, strength=strength, inv=inv, lut=lut,
            cands=cands, step=step, cap=cap, out=out4,
        ))  # fmt: skip
    else:
        offsets = THRESHOLDS * (spacing(body) * strength)
        in_threads(pix4.shape[0] * pix4.shape[1], partial(
            _ordered, pix=pix4, nc=ncolour, valid=valid3, colours=colours,
            out_colours=out_colours, lo=lo, hi=hi, offsets=offsets, y0=int(origin[0]),
            x0=int(origin[1]), inv=inv, lut=lut, cands=cands, out=out4,
        ))  # fmt: skip
