"""Indexed ("palette") image files: 8-bit indices and a palette of at most 256 colours.

A picture quantized to K <= 256 colours, or a label image with K <= 255 labels,
fits in a palette PNG, GIF or TIFF a few times smaller than its RGB file. Two
kinds of image are written this way:

- the quantized picture: `picture_indices` finds every pixel's palette index
  from its colour (so a dithered picture is written exactly), and makes the
  pixels that were left out of the clustering transparent;
- the labels: the label values are the indices, and `labels_palette` gives
  index ``i`` the colour of label ``i`` (index 0, left out, is transparent), so
  any viewer shows the labels in colour while a program reading the indices
  (Pillow, tifffile) gets the label values back.

`encode_indexed` writes the bytes with Pillow (PNG, GIF) or tifffile (TIFF) and
decodes them again to check that every pixel kept its colour (and, for PNG and
TIFF, its index). A palette holds 8-bit RGB: 16-bit and float colours are
rounded to 8 bits (`rgb8`). Everything here is pure (numpy in, bytes out) and
raises ValueError with what is wrong; the caller names the file.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np

#: Extensions `encode_indexed` writes.
INDEXED_FORMATS = (".png", ".gif", ".tif", ".tiff")
_ABSENT = 256  # "not in the palette": one past the largest index
#: zlib level of PNG and TIFF: zlib's default (level 9 takes 2 s instead of 0.2 s for a
#: 16-megapixel picture, for files 3-12% smaller).
ZLIB_LEVEL = 6


class Indexed(NamedTuple):
    """A picture as palette indices: what `encode_indexed` takes (``encode_indexed(ext,
    *indexed)``)."""

    indices: np.ndarray  # (H, W) uint8
    palette: np.ndarray  # (m, 3) uint8, m <= 256
    transparent: int | None  # the index of the transparent entry, or None


def rgb8(colours, dtype) -> np.ndarray:
    """Colours in the units of an image dtype as 8-bit RGB palette entries.

    Parameters
    ----------
    colours : array_like
        (n, 1) gray or (n, 3) RGB colours (a 1-D array is gray), in the units of
        ``dtype``: any values, e.g. float cluster centres of a uint8 image.
    dtype : dtype
        The image dtype the colours belong to. Integers are scaled by the
        dtype's maximum, which is white (uint8 as is, uint16 / 257; negative
        values of signed integers are black), floats by 255 (white is 1.0).

    Returns
    -------
    ndarray
        (n, 3) uint8, rounded to the nearest 8-bit value and clipped to 0..255;
        gray is repeated in the three channels. A palette PNG or GIF holds 8-bit
        colours only, so 16-bit and float colours lose their finer steps (two
        colours may even round to the same entry).

    Raises
    ------
    ValueError
        A shape other than (n, 1) or (n, 3), a dtype that is not integer or
        float, or a non-finite colour.

    Examples
    --------
    >>> rgb8([[0.0, 0.5, 1.0]], np.float32)
    array([[  0, 128, 255]], dtype=uint8)
    >>> rgb8([[1000], [65535]], np.uint16)
    array([[  4,   4,   4],
           [255, 255, 255]], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    values = _colour_table(colours, "colours")
    if dtype.kind in "ui":
        scale = 255.0 / float(np.iinfo(dtype).max)
    elif dtype.kind == "f":
        scale = 255.0
    else:
        raise ValueError(f"colours of a {dtype} image cannot be palette colours")
    with np.errstate(invalid="ignore"):
        values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("colours must be finite to be palette colours")
    out = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return np.repeat(out, 3, axis=1) if out.shape[1] == 1 else out


def labels_palette(colours, dtype=np.uint8) -> np.ndarray:
    """The palette of a labels file: row 0 black (left out, made transparent), row ``i``
    the colour of label ``i``.

    Parameters
    ----------
    colours : array_like
        (k, 1) or (k, 3) colours of labels 1..k (``result.centers``), 1 <= k <= 255.
    dtype : dtype
        The image dtype whose units the colours are in (see `rgb8`).

    Returns
    -------
    ndarray
        (k + 1, 3) uint8. Write the labels with
        ``encode_indexed(ext, labels, labels_palette(...), transparent=0)``.

    Examples
    --------
    >>> labels_palette([[10, 20, 30], [200, 100, 0]])
    array([[  0,   0,   0],
           [ 10,  20,  30],
           [200, 100,   0]], dtype=uint8)
    """
    palette = rgb8(colours, dtype)
    if not 1 <= len(palette) <= 255:
        raise ValueError(
            f"a labels file holds 1 to 255 labels (index 0 is left out), got {len(palette)}"
        )
    return np.concatenate([np.zeros((1, 3), np.uint8), palette])


def picture_indices(picture, colours, channel_axis, *, left_out=None) -> Indexed:
    """A quantized picture as palette indices, a palette and a transparent index.

    Every pixel whose colour is exactly one of ``colours`` gets that colour's
    index (the first, if a colour repeats); indices follow the order of
    ``colours``. Pixels left out of the clustering become one transparent
    index: pixels with alpha 0, the pixels in ``left_out``, and (when
    ``left_out`` is not given) every pixel whose colour is not in the palette,
    i.e. a masked pixel that kept its own colour. An indexed file cannot hold
    those colours; a pixel left out whose colour happens to be a palette colour
    keeps it unless ``left_out`` names it.

    Parameters
    ----------
    picture : ndarray
        The quantized image: (H, W) gray, or 3-D with the channels on
        ``channel_axis``: 1 or 3 colour channels, optionally followed by an
        alpha channel (2: gray + alpha, 4: RGBA). Integer or float dtype.
    colours : array_like
        (k, colour channels) cluster colours in the picture's dtype, exactly as
        the picture holds them (``output_colours(centers, dtype)[1:]``),
        1 <= k <= 256; (k,) for gray. Their count of columns says whether the
        picture has alpha.
    channel_axis : int or None
        The picture's channel axis; None for a 2-D gray picture.
    left_out : ndarray of bool, optional
        (H, W), True where a pixel was left out (``labels == 0``): those pixels
        are transparent whatever their colour, and every other pixel must have
        a palette colour.

    Returns
    -------
    Indexed
        ``indices`` (H, W) uint8, ``palette`` (m, 3) uint8 and ``transparent``.
        Without transparent pixels: m = k, index j is ``colours[j]`` and
        ``transparent`` is None. With them: index 0 is transparent (black),
        index j + 1 is ``colours[j]`` (the label value, for an undithered
        picture), m = k + 1 and ``transparent`` is 0.

    Raises
    ------
    ValueError
        A shape, axis or dtype the file cannot hold; colours that are not exact
        values of the picture's dtype; more than 256 colours, or 256 and
        transparent pixels; alpha other than 0 and full (an indexed file holds
        one alpha per palette entry); with ``left_out``, a pixel that was not
        left out but has no palette colour.

    Examples
    --------
    >>> picture = np.array([[[9, 9, 9], [200, 0, 0]], [[200, 0, 0], [1, 2, 3]]], np.uint8)
    >>> indexed = picture_indices(picture, [[9, 9, 9], [200, 0, 0]], channel_axis=-1)
    >>> indexed.indices
    array([[1, 2],
           [2, 0]], dtype=uint8)
    >>> indexed.palette
    array([[  0,   0,   0],
           [  9,   9,   9],
           [200,   0,   0]], dtype=uint8)
    >>> indexed.transparent
    0
    """
    picture = np.asarray(picture)
    if picture.dtype.kind not in "uif" or picture.dtype.itemsize > 8:
        raise ValueError(
            f"the picture's dtype {picture.dtype} cannot be written as an indexed file"
        )
    dtype = picture.dtype.newbyteorder("=")  # compared as numbers, never as bytes
    picture = picture.astype(dtype, copy=False)
    pix = _channels_last(picture, channel_axis)
    if pix.shape[0] == 0 or pix.shape[1] == 0:
        raise ValueError(f"the picture is empty (shape {picture.shape})")
    table = _exact_colours(colours, dtype)
    k, ncolour = table.shape
    if not 1 <= k <= 256:
        raise ValueError(f"an indexed file holds 1 to 256 colours, got {k}")
    nchan = pix.shape[2]
    if nchan not in (ncolour, ncolour + 1):
        raise ValueError(
            f"the picture has {nchan} channels but the colours have {ncolour}: expected "
            f"{ncolour} colour channels, optionally followed by alpha"
        )
    if left_out is not None:
        left_out = np.asarray(left_out)
        if left_out.dtype != bool or left_out.shape != pix.shape[:2]:
            raise ValueError(
                f"left_out must be a boolean array of shape {pix.shape[:2]}, got "
                f"{left_out.dtype} {left_out.shape}"
            )
    see_through = _transparent_alpha(pix[..., ncolour]) if nchan > ncolour else None
    found = _match(pix[..., :ncolour], table)  # uint16, _ABSENT where no colour matches
    missing = found == _ABSENT
    clear = missing.copy() if left_out is None else left_out.copy()
    if see_through is not None:
        clear |= see_through
    if left_out is not None and (bad := missing & ~clear).any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{int(bad.sum())} pixels that were not left out have no palette colour (the first "
            f"at row {row}, column {col}): the picture was not quantized with these colours"
        )
    palette = rgb8(table, dtype)
    if not clear.any():
        return Indexed(found.astype(np.uint8), palette, None)
    if k == 256:
        raise ValueError(
            "256 colours and transparent (left-out) pixels do not fit in an indexed file's 256 "
            "entries: use K <= 255, or an RGB(A) file"
        )
    indices = (found + 1).astype(np.uint8)
    indices[clear] = 0
    return Indexed(indices, np.concatenate([np.zeros((1, 3), np.uint8), palette]), 0)


def encode_indexed(ext: str, indices, palette, transparent: int | None = None) -> bytes:
    """An indexed PNG, GIF or TIFF, verified by decoding it again.

    Parameters
    ----------
    ext : {".png", ".gif", ".tif", ".tiff"}
        The format (any letter case).
    indices : ndarray
        (H, W) uint8, each below ``len(palette)``.
    palette : ndarray
        (m, 3) uint8 RGB, 1 <= m <= 256.
    transparent : int or None
        The index shown transparent. PNG stores it in a tRNS chunk, GIF in its
        transparency index. A TIFF palette has no transparency: the index is
        stored as it is and shows its palette colour (black from
        `picture_indices` and `labels_palette`).

    Returns
    -------
    bytes
        PNG: exactly ``m`` palette entries (Pillow picks 1, 2, 4 or 8 bits per
        pixel from m), zlib level `ZLIB_LEVEL`. GIF: Pillow with palette
        optimization off, so entries are neither reordered nor merged (the
        table is padded with black to a power of two). TIFF: 8-bit
        ``photometric="palette"`` with a 256-entry 16-bit colormap (8-bit
        values * 257), deflate at `ZLIB_LEVEL`.

    Raises
    ------
    ValueError
        An unknown extension, indices or palette of the wrong shape or dtype,
        an index past the palette, a transparent index out of range, a GIF
        wider or taller than 65535 pixels, or bytes that do not decode to the
        same colours (and indices, for PNG and TIFF).
    """
    ext = str(ext).lower()
    if ext not in INDEXED_FORMATS:
        raise ValueError(
            f"indexed files are {', '.join(INDEXED_FORMATS)}, not {ext or 'no extension'!r}"
        )
    indices = np.asarray(indices)
    palette = np.asarray(palette)
    if indices.dtype != np.uint8 or indices.ndim != 2 or indices.size == 0:
        raise ValueError(
            f"indices must be a non-empty 2-D uint8 array, got {indices.dtype} {indices.shape}"
        )
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be (m, 3) uint8, got {palette.dtype} {palette.shape}")
    m = len(palette)
    if not 1 <= m <= 256:
        raise ValueError(f"a palette holds 1 to 256 colours, got {m}")
    if int(indices.max()) >= m:
        raise ValueError(f"index {int(indices.max())} is past the palette's {m} colours")
    if transparent is not None:
        if isinstance(transparent, bool) or not isinstance(transparent, int | np.integer):
            raise ValueError(f"transparent must be an index or None, got {transparent!r}")
        if not 0 <= transparent < m:
            raise ValueError(
                f"transparent index {transparent} is outside the palette (0..{m - 1})"
            )
        transparent = int(transparent)
    indices = np.ascontiguousarray(indices)
    palette = np.ascontiguousarray(palette)
    if ext == ".png":
        data = _save_pillow(indices, palette, transparent, format="PNG", compress_level=ZLIB_LEVEL)
        _check_png(data, indices, palette, transparent)
    elif ext == ".gif":
        if max(indices.shape) > 65535:
            raise ValueError(f"a GIF is at most 65535 pixels wide and tall, got {indices.shape}")
        data = _save_pillow(
            indices, palette, transparent, format="GIF", optimize=False, interlace=False
        )
        _check_gif(data, indices, palette, transparent)
    else:
        data = _save_tiff(indices, palette)
        _check_tiff(data, indices, palette)
    return data


# --- matching colours -----------------------------------------------------------------------


def _colour_table(colours, what) -> np.ndarray:
    """(n, 1) or (n, 3) from a 1-D (gray) or 2-D array."""
    values = np.asarray(colours)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] not in (1, 3) or values.dtype.kind not in "uifb":
        raise ValueError(
            f"{what} must be (n, 1) gray or (n, 3) RGB numbers, got {values.dtype} {values.shape}"
        )
    return values


def _exact_colours(colours, dtype) -> np.ndarray:
    """The colours in the picture's dtype, refused unless they are exactly its values."""
    values = _colour_table(colours, "colours")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError("colours must be finite")
    with np.errstate(invalid="ignore", over="ignore"):
        exact = values.astype(dtype)
    if not np.array_equal(exact, values):
        raise ValueError(
            f"colours must be exact {dtype} values, as the picture holds them "
            f"(got {values.dtype}, e.g. {values[0].tolist()}): pass the picture's own colours, "
            "not the float cluster centres"
        )
    return exact


def _channels_last(picture: np.ndarray, channel_axis) -> np.ndarray:
    """(H, W, C) view of a 2-D gray or 3-D picture."""
    if channel_axis is None:
        if picture.ndim != 2:
            raise ValueError(
                f"a picture without channel_axis must be 2-D, got shape {picture.shape}"
            )
        return picture[:, :, None]
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise ValueError(f"channel_axis must be an integer or None, got {channel_axis!r}")
    if picture.ndim != 3:
        raise ValueError(
            f"a picture with channel_axis must be 3-D (one 2-D image), got shape {picture.shape}"
        )
    if not -3 <= channel_axis < 3:
        raise ValueError(f"channel_axis={channel_axis} is out of range for a 3-D picture")
    return np.moveaxis(picture, channel_axis, -1)


def _ranks(values: np.ndarray, unique: np.ndarray) -> np.ndarray:
    """uint16 position of every value among ``unique`` (sorted, distinct, at most 256
    values of the same dtype), _ABSENT where it is not there; exact comparison."""
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 2:  # a table of every value
        unsigned = np.dtype(f"u{values.dtype.itemsize}")
        table = np.full(1 << (8 * values.dtype.itemsize), _ABSENT, np.uint16)
        table[unique.view(unsigned)] = np.arange(len(unique), dtype=np.uint16)
        return table[values.view(unsigned)]
    where = np.searchsorted(unique, values)
    np.minimum(where, len(unique) - 1, out=where)
    ranks = where.astype(np.uint16)
    ranks[unique[where] != values] = _ABSENT  # also NaN (a float compares as it is: 0 == -0)
    return ranks


def _match(pix: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W) uint16: the first row of ``table`` (k, c) equal to each pixel of ``pix``
    (H, W, c), _ABSENT where none is.

    Each channel becomes a rank among the table's values in that channel (< 256),
    and ranks are combined channel by channel through tables of 257 * 257 entries,
    so the work is a few lookups per pixel whatever the dtype.
    """
    codes = None  # per pixel: the id of the table's colour prefix so far
    ids = None  # the same for the table's rows
    for ch in range(table.shape[1]):
        unique = np.unique(table[:, ch])
        pixel_ranks = _ranks(pix[..., ch], unique)
        row_ranks = _ranks(table[:, ch], unique)
        if codes is None:
            codes, ids = pixel_ranks, row_ranks.astype(np.int64)
            continue
        combined = ids * (_ABSENT + 1) + row_ranks
        prefixes, ids = np.unique(combined, return_inverse=True)
        lookup = np.full((_ABSENT + 1) ** 2, _ABSENT, np.uint16)
        lookup[prefixes] = np.arange(len(prefixes), dtype=np.uint16)
        pair = codes.astype(np.uint32)
        pair *= _ABSENT + 1
        pair += pixel_ranks
        codes = lookup[pair]
    firsts = np.full(_ABSENT + 1, _ABSENT, np.uint16)
    seen, first = np.unique(ids, return_index=True)
    firsts[seen] = first
    return firsts[codes]


def _transparent_alpha(alpha: np.ndarray) -> np.ndarray:
    """True where alpha is 0; refuses alpha other than 0 and full (the dtype's maximum,
    1.0 for floats)."""
    full = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
    clear = alpha == 0
    partial = ~(clear | (alpha == full))
    if partial.any():
        row, col = np.argwhere(partial)[0]
        raise ValueError(
            f"{int(partial.sum())} pixels are partly transparent (alpha {alpha[row, col]} at "
            f"row {row}, column {col}; only 0 and {full} fit): an indexed file holds one alpha "
            "per palette colour, write an RGBA file instead"
        )
    return clear


# --- encoding and checking ------------------------------------------------------------------


def _pillow_image(indices: np.ndarray, palette: np.ndarray):
    from PIL import Image

    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
    image.putpalette(palette.tobytes(), "RGB")
    return image


def _save_pillow(indices, palette, transparent, **options) -> bytes:
    image = _pillow_image(indices, palette)
    if transparent is not None:
        options["transparency"] = transparent
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def _same_colours(indices, palette, transparent, back, back_palette, back_transparent) -> bool:
    """Whether decoded indices ``back`` show every pixel as ``indices`` do: the same
    transparency, and the same colour where opaque (a transparent pixel's colour is
    nobody's business). Checked per pair of (written, decoded) index that occurs."""
    if back.shape != indices.shape:
        return False
    m = len(palette)
    if (
        back_transparent == transparent
        and np.array_equal(back_palette[:m], palette)
        and np.array_equal(back, indices)
    ):
        return True  # the usual case, without the pairs' memory
    pairs = indices.astype(np.uint16) << 8
    pairs |= back
    for code in np.flatnonzero(np.bincount(pairs.reshape(-1), minlength=1 << 16)):
        written, read = divmod(int(code), 256)
        if (written == transparent) != (read == back_transparent):
            return False
        if written != transparent and (
            read >= len(back_palette) or not np.array_equal(palette[written], back_palette[read])
        ):
            return False
    return True


def _check_png(data, indices, palette, transparent) -> None:
    from PIL import PngImagePlugin

    # The plugin class itself: no format sniffing, and no decompression-bomb limit
    # (Image.open's) on an image we made ourselves.
    with PngImagePlugin.PngImageFile(io.BytesIO(data)) as image:
        image.load()
        same = (
            image.mode == "P"
            and image.size == (indices.shape[1], indices.shape[0])
            and np.array_equal(_rows(image.getpalette()), palette)
            and image.info.get("transparency") == transparent
            and np.array_equal(np.asarray(image), indices)
        )
    if not same:
        raise ValueError("the indexed PNG does not decode to the same indices and colours")


def _check_gif(data, indices, palette, transparent) -> None:
    from PIL import GifImagePlugin

    with GifImagePlugin.GifImageFile(io.BytesIO(data)) as image:
        image.load()
        same = image.mode in ("P", "L") and getattr(image, "n_frames", 1) == 1
        if same:
            back = np.asarray(image)
            if image.mode == "P":
                back_palette = _rows(image.getpalette())
            else:  # Pillow opens a GIF whose palette is the gray ramp as gray values
                back_palette = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
            back_transparent = image.info.get("transparency")
            same = _same_colours(
                indices, palette, transparent, back, back_palette, back_transparent
            )
    if not same:
        raise ValueError("the GIF does not decode to the same colours")


def _rows(flat) -> np.ndarray:
    """Pillow's flat RGB palette list as (m, 3) uint8."""
    flat = np.asarray(flat or [], np.uint8)
    return flat[: len(flat) // 3 * 3].reshape(-1, 3)


def _save_tiff(indices, palette) -> bytes:
    import tifffile

    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, : len(palette)] = palette.T.astype(np.uint16) * 257
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        indices,
        photometric="palette",
        colormap=colormap,
        compression="zlib",
        compressionargs={"level": ZLIB_LEVEL},
        metadata=None,
    )
    return buffer.getvalue()


def _check_tiff(data, indices, palette) -> None:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        m = len(palette)
        colormap = page.colormap
        same = (
            len(tif.pages) == 1
            and page.photometric == tifffile.PHOTOMETRIC.PALETTE
            and colormap is not None
            and colormap.shape == (3, 256)
            and np.array_equal(colormap[:, :m], palette.T.astype(np.uint16) * 257)
            and np.array_equal(page.asarray(), indices)
        )
    if not same:
        raise ValueError("the indexed TIFF does not decode to the same indices and colours")
