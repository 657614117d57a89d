"""Image files for the command line: checked reads, and writes that lose nothing.

Reads refuse what would be quantized wrongly (truncated files, multi-page or
2-channel TIFFs). Writes are planned and checked before any work (format,
dtype, channels, collisions with inputs and with each other), then made as
temporary files that are verified and renamed into place together: all
outputs land, or none. Nothing is ever deleted that this module did not
create, and no input is ever overwritten.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from ..core._staged import FileError, Transaction, _umask, os_error, stage_texts
from ..finish._indexed import INDEXED_FORMATS

__all__ = ["FileError"]  # re-exported: the CLI and the dock catch it from here
_umask()  # read while this module is imported (the main thread), not by a writing worker


#: extension: (dtypes it holds exactly, channel counts, lossless)
FORMATS = {
    ".png": ({"uint8", "uint16"}, {1, 3, 4}, True),
    ".tif": ({"uint8", "int8", "uint16", "int16", "int32", "float32", "float64"}, {1, 3, 4}, True),
    ".bmp": ({"uint8"}, {1, 3, 4}, True),
    ".pgm": ({"uint8", "uint16"}, {1}, True),
    ".ppm": ({"uint8", "uint16"}, {3}, True),
    ".pnm": ({"uint8", "uint16"}, {1, 3}, True),
    ".jpg": ({"uint8"}, {1, 3}, False),
    ".webp": ({"uint8"}, {3, 4}, False),
}
FORMATS[".tiff"] = FORMATS[".tif"]
#: GIF is always indexed (``indexed=True`` for the others), in 8-bit RGB: any dtype.
FORMATS[".gif"] = ({"uint8", "int8", "uint16", "int16", "int32", "float32", "float64"},
                   {1, 2, 3, 4}, True)  # fmt: skip
FORMATS[".jpeg"] = FORMATS[".jpe"] = FORMATS[".jpg"]
ZARR_MARK = "napari_kquant"  # attribute of the zarr arrays we write: only those we replace


def is_zarr(path: str) -> bool:
    return path.rstrip("/\\").lower().endswith(".zarr")


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


# --- reading --------------------------------------------------------------------------------


def read_image(path: str, indices: bool = False):
    """An image file as RGB(A) or gray in its own bit depth; a .zarr array lazily.

    The file is recognised by its content, not its name; truncated files,
    multi-page or animated files, and channel counts other than 1, 3 and 4
    are refused. JPEGs are turned upright by their EXIF orientation. A palette
    file (indexed PNG, GIF or TIFF) gives its colours, or with ``indices`` (a
    mask, a label image) the values it stores.
    """
    if is_zarr(path):
        return _read_zarr(path)
    if os.path.isdir(path):
        raise FileError(f"cannot read {path!r}: it is a folder, not an image file")
    if not os.path.exists(path):
        raise FileError(f"cannot read {path!r}: no such file")
    if not os.path.isfile(path):
        raise FileError(f"cannot read {path!r}: not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FileError(f"cannot read {path!r}: {e.strerror}") from None
    if not data:
        raise FileError(f"cannot read {path!r}: the file is empty, not an image format")
    jpeg = data[:3] == b"\xff\xd8\xff"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        image = _read_tiff(path, indices)
        if image is not None:
            return image
    else:
        _check_complete(path, data)
        if indices and (data[:8] == b"\x89PNG\r\n\x1a\n" or data[:4] == b"GIF8"):
            image = _palette_indices(data)
            if image is not None:
                return image
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if jpeg else cv2.IMREAD_UNCHANGED
    try:  # a JPEG keeps its EXIF orientation (IMREAD_UNCHANGED would ignore it)
        image, complaints = _decode(data, flags)
    except cv2.error as e:
        reason = "too large for OpenCV" if "validateInputImageSize" in str(e) else "cannot decode"
        raise FileError(f"cannot read {path!r}: {reason}") from None
    if complaints:  # libjpeg/libpng decoded past damage: the image is not the file's
        raise FileError(f"cannot read {path!r}: the file is corrupt ({complaints[0]})")
    if image is None:
        raise FileError(f"cannot read {path!r}: not an image format OpenCV can decode")
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise FileError(f"cannot read {path!r}: {image.shape[2]} channels are not supported")
    return swap_red_blue(image)


def _decode(data: bytes, flags: int):
    """``cv2.imdecode``, with what the codecs print on stderr caught (and not shown)."""
    with tempfile.TemporaryFile() as caught:
        if sys.stderr is not None:  # closed with 2>&-
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode("utf-8", "replace")
    damage = ("Corrupt JPEG data", "Premature end", "libpng error", "Not enough image data")
    return image, [line for line in text.splitlines() if any(d in line for d in damage)]


def swap_red_blue(image: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) for any dtype (OpenCV's cvtColor takes 8, 16 and 32-bit float only)."""
    if image.ndim == 3 and image.shape[2] in (3, 4):
        order = [2, 1, 0, 3][: image.shape[2]]
        return np.ascontiguousarray(image[..., order])
    return image


def _read_zarr(path):
    import dask.array as da

    if not os.path.isdir(path):
        raise FileError(f"cannot read {path!r}: no such zarr folder")
    try:
        return da.from_zarr(path)
    except Exception as e:  # zarr raises several kinds for a path that is not an array
        raise FileError(f"cannot read {path!r}: not a zarr array ({type(e).__name__})") from None


def _check_complete(path, data):
    """Refuse files that decode to something other than the whole, single image.

    OpenCV decodes a truncated JPEG as a half-grey image and reads the first
    frame of an animation; Pillow (decoding, not trusting the end marker, so a
    phone's Motion Photo with a video after the image is fine) says which.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = 1 << 30  # OpenCV's own limit, not Pillow's lower default
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                frames = getattr(image, "n_frames", 1)
                if image.format in ("JPEG", "PNG"):
                    image.load()  # raises on a truncated or corrupt file
    except UnidentifiedImageError:
        return  # not a format Pillow knows: OpenCV decides
    except Image.DecompressionBombError:
        raise FileError(f"cannot read {path!r}: too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FileError(f"cannot read {path!r}: the file is truncated or corrupt ({e})") from None
    if frames > 1:
        raise FileError(
            f"cannot read {path!r}: it holds {frames} frames; kquant reads one image per file"
        )


def _palette_indices(data: bytes):
    """The stored indices of a palette PNG or GIF (Pillow); None for other images."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im) if im.mode == "P" else None


def _read_tiff(path, indices=False):
    """A TIFF as stored (tifffile: tiles, planar data, unassociated alpha, every dtype), after
    checking it holds one gray, RGB or RGBA image; None when tifffile lacks the codec
    (e.g. LZW without imagecodecs) and OpenCV should decode it."""
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its errors become ours
    try:
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            page = tif.pages.first
            shape, samples, axes = page.shape, page.samplesperpixel, page.axes
            if pages > 1:
                raise FileError(
                    f"cannot read {path!r}: a multi-page TIFF ({pages} pages); kquant reads one "
                    "image per file (split it, or use napari_kquant.quantize on the stack)"
                )
            if samples not in (1, 3, 4):
                raise FileError(
                    f"cannot read {path!r}: {samples} samples per pixel (shape {shape}); kquant "
                    "reads gray, RGB or RGBA files (use napari_kquant.quantize with channel_axis)"
                )
            palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE and not indices
            colormap = page.colormap if palette else None
            try:
                image = page.asarray()
            except ValueError as e:
                if "imagecodecs" in str(e):
                    if samples == 4:
                        raise FileError(
                            f"cannot read {path!r}: a compressed RGBA TIFF needs the "
                            "'imagecodecs' package (pip install imagecodecs)"
                        ) from None
                    return None
                raise
    except FileError:
        raise
    except Exception as e:  # tifffile raises many kinds for a bad file
        raise FileError(
            f"cannot read {path!r}: not a readable TIFF ({type(e).__name__})"
        ) from None
    if colormap is not None:  # a palette TIFF (ours, ImageJ's): its colours, not its indices
        image = _palette_colours(path, image, colormap)
    while image.ndim > 2 + (samples > 1) and image.shape[0] == 1:  # not np.squeeze: 1-row images
        image = image[0]
    if samples == 1 and image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and axes.startswith("S"):  # planar: samples first
        image = np.moveaxis(image, 0, -1)
    if image.ndim not in (2, 3):
        raise FileError(f"cannot read {path!r}: shape {shape} is not one image")
    return np.ascontiguousarray(image)


def _palette_colours(path, indices, colormap) -> np.ndarray:
    """A palette TIFF's pixels as RGB: 8-bit when the 16-bit colormap holds 8-bit colours
    (value * 257, or value * 256 as some writers store them)."""
    if indices.ndim != 2 or indices.max(initial=0) >= colormap.shape[1]:
        raise FileError(f"cannot read {path!r}: a palette TIFF whose indices fit no colour")
    table = np.asarray(colormap, np.uint16).T  # (entries, 3)
    if (table % 257 == 0).all():
        table = (table // 257).astype(np.uint8)
    elif (table % 256 == 0).all():
        table = (table // 256).astype(np.uint8)
    return table[indices]


# --- planning writes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """A checked output: where, what it must hold, and how to write it."""

    path: str
    what: str  # "output", "labels", ...
    dtype: np.dtype
    channels: int
    zarr: bool
    indexed: bool = False  # 8-bit indices and a palette (`_indexed`)


def _check_path(path, what, inputs, real_inputs, real_outputs, seen, new_folder) -> None:
    """One output path: not an input, not inside one, not inside another output, not a
    folder (but a zarr store), not shared, in a folder that exists (or will) and is writable."""
    real = _real(path)
    if real in real_inputs or any(
        os.path.exists(path) and os.path.exists(p) and os.path.samefile(path, p) for p in inputs
    ):
        raise FileError(f"refusing to write {what} {path!r}: it is an input")
    for real_in, shown in real_inputs.items():
        if os.path.isdir(real_in) and real.startswith(real_in.rstrip(os.sep) + os.sep):
            raise FileError(f"refusing to write {what} {path!r} inside the input {shown!r}")
    if os.path.isdir(path) and not is_zarr(path):
        raise FileError(f"cannot write {what} {path!r}: it is a folder")
    for real_out, other in real_outputs.items():
        if real != real_out and real.startswith(real_out.rstrip(os.sep) + os.sep):
            raise FileError(f"{what} {path!r} lies inside the {other[1]} {other[0]!r}")
    if real in seen:
        raise FileError(f"the {seen[real]} and the {what} would both be written to {path!r}")
    seen[real] = what
    folder = os.path.dirname(real)
    if not os.path.isdir(folder) and folder != new_folder:
        raise FileError(f"cannot write {what} {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise FileError(f"cannot write {what} {path!r}: folder {folder!r} is not writable")


def plan(outputs, inputs, new_folder=None, texts=(), indexed=False, k=None) -> list[Output]:
    """Check every output before any work; raise FileError naming the path and the problem.

    ``outputs`` are (path, what, dtype, channels); ``inputs`` the paths read;
    ``new_folder`` a folder that does not exist yet and will be made before writing;
    ``texts`` are (path, what) text files (a palette, a table) written beside the
    outputs: they get the same path checks, and are not in the returned plan.
    ``indexed``: write every output as an indexed file (.png, .gif, .tif), as
    .gif files always are; ``k`` is then the number of colours.
    """
    new_folder = None if new_folder is None else _real(new_folder)
    everything = [*outputs, *((path, what, None, 0) for path, what in texts)]
    for path, what, *_ in everything:
        if not path:
            raise FileError(f"the {what} path is empty")
        name = os.fsencode(os.path.basename(os.path.normpath(path)))
        if len(name) > 255:  # what file systems hold: refused before any work, not after
            raise FileError(
                f"cannot write {what} {path!r}: its name is {len(name)} bytes, over 255"
            )
    real_inputs = {_real(p): p for p in inputs}
    real_outputs = {_real(o[0]): o for o in everything}
    seen = {}
    for path, what, *_ in everything:
        _check_path(path, what, inputs, real_inputs, real_outputs, seen, new_folder)
    planned = []
    for path, what, dtype, channels in outputs:
        dtype = np.dtype(dtype)
        real = _real(path)
        ext = os.path.splitext(path)[1].lower()
        if indexed and (is_zarr(path) or ext not in INDEXED_FORMATS):
            raise FileError(
                f"cannot write {what} {path!r} as an indexed file: use .png, .gif or .tif"
            )
        if indexed or ext == ".gif":
            planned.append(_indexed_output(path, what, dtype, channels, k))
            continue
        if is_zarr(path):
            if os.path.isfile(path):
                raise FileError(
                    f"cannot write {what} {path!r}: a file (not a zarr folder) is there"
                )
            for real_in, shown in real_inputs.items():  # replacing a store must spare inputs
                if real_in.startswith(real.rstrip(os.sep) + os.sep):
                    raise FileError(
                        f"refusing to replace {path!r}: the input {shown!r} is inside it"
                    )
            if os.path.islink(path.rstrip("/" + os.sep)):
                raise FileError(f"refusing to replace {path!r}: it is a symbolic link")
            if os.path.exists(path):
                _check_ours(path)
            planned.append(Output(path, what, dtype, channels, True))
            continue
        if os.path.isdir(path):
            raise FileError(f"cannot write {what} {path!r}: it is a folder")
        if ext not in FORMATS:
            known = ", ".join(sorted({*FORMATS, ".zarr"}))
            raise FileError(f"cannot write {what} {path!r}: unknown extension (use {known})")
        dtypes, counts, lossless = FORMATS[ext]
        if dtype.name not in dtypes or channels not in counts:
            fits = sorted(
                e for e, (d, c, ok) in FORMATS.items() if dtype.name in d and channels in c and ok
                and not (e == ".gif" and what == "labels" and dtype.itemsize > 1)  # > 255 labels
            )  # fmt: skip
            raise FileError(
                f"cannot write {what} {path!r}: {ext} cannot hold {channels}-channel "
                f"{dtype.name} values (use {', '.join([*fits, '.zarr'])})"
            )
        if not lossless and what == "labels":
            raise FileError(
                f"cannot write labels {path!r}: {ext} is lossy and would change label values "
                "(use .png or .tif)"
            )
        planned.append(Output(path, what, dtype, channels, False))
    return planned


def _indexed_output(path, what, dtype, channels, k) -> Output:
    """An output written as palette indices: at most 256 colours (255 labels, index 0
    being left out), 1 or 3 colour channels (plus alpha)."""
    most = 255 if what == "labels" else 256
    if k is None or k > most:
        raise FileError(
            f"cannot write {what} {path!r} as an indexed file: it holds at most {most} "
            f"{'labels' if what == 'labels' else 'colours'}, k is {k}"
        )
    if dtype.kind not in "uif" or channels not in (1, 2, 3, 4):
        raise FileError(
            f"cannot write {what} {path!r} as an indexed file: {channels}-channel "
            f"{dtype.name} values (it holds gray or RGB, with alpha)"
        )
    return Output(path, what, dtype, channels, False, True)


#: What a zarr array store holds: metadata, and chunk keys (v2 "0.0", v3 "c/0/0").
_ZARR_ENTRY = re.compile(
    r"(zarr\.json|\.zarray|\.zattrs|\.zgroup|\.zmetadata|c(/\d+)*|\d+([./]\d+)*)"
)


def _check_ours(path) -> None:
    """An existing zarr store may be replaced only if kquant wrote it and it holds nothing else."""
    try:
        import zarr

        ours = ZARR_MARK in zarr.open_array(path, mode="r").attrs
    except Exception:  # not a zarr array at all
        ours = False
    if not ours:
        raise FileError(f"refusing to replace {path!r}: it exists and was not written by kquant")
    for folder, folders, names in os.walk(path):
        for name in folders + names:
            entry = os.path.join(folder, name)
            key = os.path.relpath(entry, path).replace(os.sep, "/")
            if os.path.islink(entry) or not _ZARR_ENTRY.fullmatch(key):
                raise FileError(f"refusing to replace {path!r}: it holds {key!r}, not kquant's")


# --- writing --------------------------------------------------------------------------------


def encode(output: Output, data: np.ndarray, colours=None, labels=None) -> bytes:
    """The file's bytes, verified to decode to ``data`` for lossless formats (indexed
    files: to the same colours, and labels to the same values). ``colours`` are the
    (k, channels) cluster colours in the image's dtype, for indexed files; ``labels``
    the result's labels, whose 0s (left out) an indexed picture makes transparent."""
    ext = os.path.splitext(output.path)[1].lower()
    if output.indexed:
        from ..finish._indexed import encode_indexed, labels_palette, picture_indices

        try:
            if output.what == "labels":
                palette = labels_palette(colours, colours.dtype)
                return encode_indexed(ext, data.astype(np.uint8), palette, transparent=0)
            axis = -1 if data.ndim == 3 else None
            left_out = None if labels is None else np.asarray(labels) == 0
            return encode_indexed(ext, *picture_indices(data, colours, axis, left_out=left_out))
        except ValueError as e:
            raise FileError(f"cannot write {output.what} {output.path!r}: {e}") from None
    if ext in (".tif", ".tiff"):
        return _tiff(output, data)
    bgr = swap_red_blue(data)
    try:
        ok, buf = cv2.imencode(ext, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise FileError(f"cannot write {output.what} {output.path!r}: OpenCV cannot encode it")
    if FORMATS[ext][2]:
        back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        same = (
            back is not None
            and back.dtype == bgr.dtype
            and back.size == bgr.size
            and np.array_equal(back.reshape(bgr.shape), bgr, equal_nan=bgr.dtype.kind == "f")
        )
        if not same:
            raise FileError(
                f"cannot write {output.what} {output.path!r}: {ext} would not hold the values "
                "exactly"
            )
    return buf.tobytes()


def _tiff(output: Output, data: np.ndarray) -> bytes:
    """A TIFF by tifffile, verified to decode to ``data``: deflate (zlib) compressed, which
    every TIFF reader decodes (tifffile without imagecodecs too, unlike OpenCV's LZW), and
    an RGBA picture's alpha declared as such (OpenCV's has no ExtraSamples tag)."""
    import io

    import tifffile

    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 3:
        alpha = ["unassalpha"] if data.shape[-1] == 4 else None
        options = {"photometric": "rgb", "extrasamples": alpha}
    else:
        options = {"photometric": "minisblack"}
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, compression="zlib", **options)
    back = tifffile.imread(io.BytesIO(buf.getvalue()))
    if back.shape != data.shape or not np.array_equal(
        back, data, equal_nan=data.dtype.kind == "f"
    ):
        raise FileError(f"cannot write {output.what} {output.path!r}: the TIFF would not hold "
                        "the values exactly")  # fmt: skip
    return buf.getvalue()


def write_all(planned: list[Output], arrays, extra=(), texts=(), colours=None, labels=None):
    """Write every planned output in one pass: all land, or none.

    ``arrays`` are numpy or dask arrays; ``extra`` are values (numpy or dask) to
    return, computed in the same pass as the lazy outputs; ``texts`` are (path,
    text) files (a palette, a table) that land with the rest, or a function that
    makes them from the computed ``extra``; ``colours`` the cluster colours in the
    image's dtype and ``labels`` the labels, for indexed outputs. dask is imported
    only when something is lazy or goes to zarr.
    """
    transaction = Transaction()
    try:
        lazy = any(hasattr(a, "dask") for a in (*arrays, *extra))
        if lazy or any(o.zarr for o in planned):
            arrays, extra = _compute(transaction, planned, arrays, extra)
        stage_texts(transaction, texts(list(extra)) if callable(texts) else texts)
        for output, data in zip(planned, arrays, strict=True):
            if not output.zarr:
                data = encode(output, np.asarray(data), colours, labels)
                transaction.stage_bytes(output.path, data)
        transaction.commit()
        return list(extra)
    except OSError as e:
        raise os_error(e) from None
    finally:
        transaction.abort()


def _compute(transaction, planned, arrays, extra):
    """Zarr stores written and lazy arrays computed together, in one pass over the data."""
    import dask
    import dask.array as da
    import zarr

    stores, temps = [], {}
    for i, (output, data) in enumerate(zip(planned, arrays, strict=True)):
        if output.zarr:
            temps[i] = transaction.stage_folder(output.path)
            data = da.asarray(data)
            usual = np.dtype(data.dtype.str)  # int64 as 'l': zarr knows no 'q' (tifffile's)
            if data.dtype.char != usual.char:
                data = data.map_blocks(np.ndarray.view, usual, dtype=usual)
            stores.append(da.to_zarr(data, temps[i], overwrite=True, compute=False))
    files = [a for o, a in zip(planned, arrays, strict=True) if not o.zarr]
    computed = dask.compute(*stores, *files, *extra)[len(stores) :]
    files, extra = iter(computed[: len(files)]), computed[len(files) :]
    for tmp in temps.values():
        zarr.open_array(tmp, mode="r+").attrs[ZARR_MARK] = {"written_by": "kquant"}
    return [None if o.zarr else next(files) for o in planned], extra
