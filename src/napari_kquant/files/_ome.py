"""Whole slides: OME-Zarr (NGFF 0.4 and 0.5) and pyramidal (OME-)TIFF opened lazily as a
pyramid with its axes and physical pixel sizes (`open_image`), and the pyramid an output
of one level is given (`grown`); results are written by `files._ome_write`.

Reading and writing go through well-kept libraries: ome-zarr-py for OME-Zarr (both
versions, zarr 2 and 3 stores), tifffile's zarr store for TIFF levels (tiles are read on
demand). Nothing here loads a level into memory.
"""

from __future__ import annotations

import math
import os
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

import numpy as np

from ..core._staged import FileError, file_path

#: NGFF's order of axes kinds: time, channel, then space (z, y, x).
_NGFF_ORDER = "tczyx"
#: What a micrometre is called in OME-XML and in NGFF, and other lengths NGFF names.
_UNITS = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter",
          "cm": "centimeter", "m": "meter", "pm": "picometer", "Å": "angstrom",
          "in": "inch", "ft": "foot"}  # fmt: skip
_SHORT = {name: short for short, name in _UNITS.items() if short != "um"}
#: TIFF-based slide files tifffile reads as a pyramid: plain and OME-TIFF, Aperio SVS,
#: Hamamatsu NDPI, Leica SCN, Ventana BIF, PerkinElmer QPTIFF.
TIFF_SLIDES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".bif", ".qptiff")


@dataclass(frozen=True)
class Opened:
    """An image opened lazily: its pyramid and where its pixels are in space.

    ``levels`` are dask arrays, finest first; ``axes`` one letter per axis of every
    level (``t``, ``c``, ``z``, ``y``, ``x``); ``scales`` per level and axis the step
    between pixels in ``units`` (1.0 where unknown; a channel or time axis 1.0);
    ``origin`` per axis where the finest level's first pixel is (its NGFF translation),
    or None for 0.
    """

    levels: list
    axes: str
    scales: list[tuple[float, ...]]
    units: tuple[str | None, ...]
    source: str
    #: closes the file the levels read from (a TIFF): see `close`
    closer: object = field(default=None, repr=False, compare=False)
    origin: tuple[float, ...] | None = None

    def close(self) -> None:
        """Close the file the levels read from in this process (reading them opens it
        again)."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def image(self):
        """What `quantize` takes: the one level, or the pyramid (a list, finest first)."""
        return self.levels[0] if len(self.levels) == 1 else list(self.levels)

    @property
    def channel_axis(self) -> int | None:
        return self.axes.index("c") if "c" in self.axes else None

    @property
    def pixel_size(self) -> tuple[float, ...] | None:
        """The finest level's (y, x) pixel size in `unit`, or None when the file gives none."""
        if self.unit is None:
            return None
        return tuple(self.scales[0][self.axes.index(a)] for a in "yx")

    @property
    def unit(self) -> str | None:
        """The unit of the y and x pixel sizes, short (``"µm"``), when the file names one."""
        found = {self.units[self.axes.index(a)] for a in "yx"}
        unit = found.pop() if len(found) == 1 else None
        return _SHORT.get(unit, unit)


def is_ome_zarr(path: str) -> bool:
    """A .zarr folder whose root group holds NGFF multiscales metadata."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    import zarr

    try:
        attrs = zarr.open_group(path, mode="r").attrs.asdict()
    except Exception:  # not a group (a plain array, or not zarr at all)
        return False
    attrs = attrs.get("ome", attrs)
    return "multiscales" in attrs or "bioformats2raw.layout" in attrs


def is_pyramid_tiff(path: str) -> bool:
    """A TIFF-based slide file whose first series has more than one level."""
    if os.path.splitext(os.fspath(path))[1].lower() not in TIFF_SLIDES:
        return False
    import logging

    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its errors become ours
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series[0].levels) > 1
    except Exception:  # not a TIFF tifffile reads: the plain reader says why
        return False


def open_image(path) -> Opened:
    """Open an OME-Zarr image (NGFF 0.4 or 0.5) or a pyramidal (OME-)TIFF lazily: every
    level as a dask array, with the axes and physical pixel sizes the file gives. A TIFF
    stays open until `Opened.close` (or the end of a ``with`` block).

    >>> with open_image("slide.ome.tif") as opened:  # doctest: +SKIP
    ...     result = quantize(opened.image, 16, channel_axis=opened.channel_axis)
    """
    path = file_path(path)
    if not os.path.exists(path):
        raise FileError(f"cannot read {path!r}: no such file or folder")
    if is_ome_zarr(path):
        return _open_ome_zarr(path)
    if os.path.splitext(path)[1].lower() in TIFF_SLIDES:
        return _open_tiff(path)
    raise FileError(
        f"cannot open {path!r} as a whole slide: give an OME-Zarr folder or a TIFF-based "
        f"slide ({', '.join(TIFF_SLIDES)})"
    )


def _open_ome_zarr(path) -> Opened:
    import logging

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    logging.getLogger("ome_zarr").setLevel(logging.ERROR)  # its notes are not ours to print
    import zarr

    root = path
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    if "bioformats2raw.layout" in attrs.get("ome", attrs):
        root = os.path.join(path, "0")  # bioformats2raw: the first image of the series
    try:
        node = next(iter(Reader(parse_url(root))()))
        levels = list(node.data)
        meta = node.metadata
    except Exception as e:  # the reader raises many kinds for a broken store
        raise FileError(f"cannot read {path!r}: not an OME-Zarr image ({e})") from None
    if not levels:
        raise FileError(f"cannot read {path!r}: its multiscales list no level")
    axes_meta = meta.get("axes") or [{"name": n} for n in "tczyx"[-levels[0].ndim :]]
    names = [a["name"] if isinstance(a, dict) else a for a in axes_meta]
    axes = "".join(n[0].lower() if n.lower() in ("t", "c", "z", "y", "x") else "?" for n in names)
    units = tuple(a.get("unit") if isinstance(a, dict) else None for a in axes_meta)
    if len(axes) != levels[0].ndim or len({level.ndim for level in levels}) != 1:
        raise FileError(
            f"cannot read {path!r}: its axes ({', '.join(names)}) do not match its arrays "
            f"({', '.join(str(level.shape) for level in levels)})"
        )
    transforms = meta.get("coordinateTransformations") or []
    scales = []
    for i, level in enumerate(levels):
        found = transforms[i] if i < len(transforms) else []
        scale = next((t.get("scale") for t in found if t.get("type") == "scale"), None)
        if not scale:  # none given: pixels, each level by its shape
            scale = _ratio(levels[0].shape, level.shape, axes)
        scale = _floats(scale, level.ndim, positive=True)
        if scale is None:
            raise FileError(f"cannot read {path!r}: level {i} has the scale {found!r}")
        scales.append(scale)
    found = transforms[0] if transforms else []
    origin = next((t.get("translation") for t in found if t.get("type") == "translation"), None)
    if origin is not None:
        origin = _floats(origin, levels[0].ndim)
        if origin is None:
            raise FileError(f"cannot read {path!r}: level 0 has the translation {found!r}")
    scales, origin = _whole_image(root, path, scales, origin, levels[0].ndim)
    return _checked(Opened(_read_named(root, path, levels), axes, scales, units, path,
                           origin=origin))  # fmt: skip


def _read_named(root, path, levels) -> list:
    """The levels, each chunk read through `_ZarrLevel`: a damaged chunk is a FileError
    naming the file and the level, not the codec's bare error. Same chunks."""
    import dask.array as da
    import zarr

    attrs = zarr.open_group(root, mode="r").attrs.asdict()
    datasets = attrs.get("ome", attrs)["multiscales"][0]["datasets"]
    named = []
    for i, (dataset, level) in enumerate(zip(datasets, levels, strict=True)):
        array = zarr.open_array(os.path.join(root, dataset["path"]), mode="r")
        named.append(da.from_array(_ZarrLevel(array, path, i), chunks=level.chunks, name=False))
    return named


def _unreadable(path, level, error) -> FileError:
    first = (str(error).strip().splitlines() or [""])[0]
    return FileError(
        f"cannot read {path!r}: part of level {level} could not be read "
        f"({type(error).__name__}: {first})"
    )


class _ZarrLevel:
    """One level of an OME-Zarr image, sliced as an array (a pickled zarr array opens its
    store again: dask.distributed workers read it themselves)."""

    def __init__(self, array, path, level):
        self.array, self.path, self.level = array, path, level
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception as e:  # a damaged chunk: the codec's own error; a signal passes
            raise _unreadable(self.path, self.level, e) from e


def _whole_image(root, path, scales, origin, ndim):
    """The levels' scales and origin with the multiscales' own coordinateTransformations
    (NGFF: applied after each level's) composed in."""
    import zarr

    attrs = zarr.open_group(root, mode="r").attrs.asdict()
    multiscales = attrs.get("ome", attrs).get("multiscales") or [{}]
    found = multiscales[0].get("coordinateTransformations") or []
    if not found:
        return scales, origin
    scale = next((t.get("scale") for t in found if t.get("type") == "scale"), [1.0] * ndim)
    shift = next((t.get("translation") for t in found if t.get("type") == "translation"),
                 [0.0] * ndim)  # fmt: skip
    scale, shift = _floats(scale, ndim, positive=True), _floats(shift, ndim)
    if scale is None or shift is None:
        raise FileError(f"cannot read {path!r}: the multiscales' transformations {found!r}")
    scales = [tuple(a * b for a, b in zip(level, scale, strict=True)) for level in scales]
    origin = origin or (0.0,) * ndim
    origin = tuple(o * a + b for o, a, b in zip(origin, scale, shift, strict=True))
    return scales, origin


def _floats(values, ndim: int, positive: bool = False) -> tuple[float, ...] | None:
    """``values`` (a scale, a translation) as ``ndim`` finite floats, positive ones with
    ``positive``; None when they are not."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    ok = len(out) == ndim and all(math.isfinite(v) and (v > 0 or not positive) for v in out)
    return out if ok else None


def _ratio(finest, shape, axes) -> tuple[float, ...]:
    """How many finest pixels one pixel of a level spans along each axis (1 but in y, x)."""
    return tuple(finest[i] / shape[i] if a in "yx" else 1.0 for i, a in enumerate(axes))


def _checked(opened: Opened) -> Opened:
    """Axes named once each, and levels finest first: a level no smaller than the one
    before it (a copy of the same size) is left out; a larger one is an error."""
    path, axes = opened.source, opened.axes
    if len(set(axes)) != len(axes):
        opened.close()
        raise FileError(f"cannot read {path!r}: an axis is named twice ({axes})")
    keep = [0]
    for i in range(1, len(opened.levels)):
        before, here = opened.levels[keep[-1]].shape, opened.levels[i].shape
        if any(h > b for h, b in zip(here, before, strict=True)):
            opened.close()
            raise FileError(
                f"cannot read {path!r}: level {i} {here} is larger than the one before it "
                f"{before}; levels go finest first"
            )
        if math.prod(here) < math.prod(before):
            keep.append(i)
    if len(keep) == len(opened.levels):
        return opened
    return replace(opened, levels=[opened.levels[i] for i in keep],
                   scales=[opened.scales[i] for i in keep])  # fmt: skip


#: TIFF files open in this process, by path: their levels as zarr arrays (tiles read on
#: demand). A worker process (dask.distributed) opens its own on the first tile it reads.
_OPEN_TIFFS: dict = {}
_TIFF_LOCK = threading.Lock()


def _tiff_levels(path):
    """(TiffFile, zarr arrays of its first series' levels), opened once per process."""
    import logging

    import tifffile
    import zarr

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its errors become ours
    with _TIFF_LOCK:
        if path not in _OPEN_TIFFS:
            tif = tifffile.TiffFile(path)
            try:
                series = tif.series[0]
                arrays = [zarr.open(series.aszarr(level=i), mode="r")
                          for i in range(len(series.levels))]  # fmt: skip
            except BaseException:
                tif.close()
                raise
            _OPEN_TIFFS[path] = (tif, arrays)
        return _OPEN_TIFFS[path]


def _close_tiff(path) -> None:
    with _TIFF_LOCK:
        tif, _ = _OPEN_TIFFS.pop(path, (None, None))
    if tif is not None:
        tif.close()


class _TiffLevel:
    """One level of a TIFF, sliced as an array: pickled by its path (a dask.distributed
    worker opens the file itself), read through this process's open file. ``name``: the
    path as the user gave it, for messages."""

    def __init__(self, path, level, shape, dtype, name=None):
        self.path, self.level, self.name = path, level, path if name is None else name
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)

    def __getitem__(self, key):
        try:
            return _tiff_levels(self.path)[1][self.level][key]
        except Exception as e:  # a damaged tile: tifffile's or the codec's error
            raise _unreadable(self.name, self.level, e) from e

    def __reduce__(self):
        return _TiffLevel, (self.path, self.level, self.shape, self.dtype, self.name)


def _open_tiff(given) -> Opened:
    import dask.array as da

    path = os.path.abspath(given)
    try:
        tif, arrays = _tiff_levels(path)
        series = tif.series[0]
        levels = []
        for i, a in enumerate(arrays):
            level = _TiffLevel(path, i, a.shape, a.dtype, given)
            levels.append(da.from_array(level, chunks=a.chunks, name=False))
    except Exception as e:  # tifffile raises many kinds for a bad file
        _close_tiff(path)
        raise FileError(f"cannot read {given!r}: {e}") from None
    axes = "".join({"S": "c", "C": "c"}.get(a, a.lower()) for a in series.axes)
    if axes.count("c") > 1:
        raise FileError(f"cannot read {given!r}: two channel axes ({series.axes})")
    size, unit = _tiff_pixel_size(tif)
    finest = levels[0].shape
    scales = []
    for level in levels:
        step = list(_ratio(finest, level.shape, axes))
        for a in "yx":
            if a in axes and size is not None:
                step[axes.index(a)] *= size[a]
        scales.append(tuple(step))
    units = tuple(unit if a in "yx" and size is not None else None for a in axes)
    return _checked(Opened(levels, axes, scales, units, path, lambda: _close_tiff(path)))


def _tiff_pixel_size(tif):
    """({"y": size, "x": size}, NGFF unit) from OME-XML, or from resolution tags in
    centimetres or inches; (None, None) when the file gives none."""
    if tif.is_ome:
        try:
            root = ET.fromstring(tif.ome_metadata)
            pixels = root.find(f".//{root.tag.split('}')[0]}}}Pixels")
            x, y = float(pixels.attrib["PhysicalSizeX"]), float(pixels.attrib["PhysicalSizeY"])
            unit = pixels.attrib.get("PhysicalSizeXUnit", "µm")
            if unit != pixels.attrib.get("PhysicalSizeYUnit", "µm"):
                return None, None  # rows and columns in other units: sizes left out
            if all(math.isfinite(s) and s > 0 for s in (x, y)):
                return {"y": y, "x": x}, _UNITS.get(unit, unit)
            return None, None  # no usable size: pixels
        except (ET.ParseError, KeyError, ValueError, AttributeError):
            pass
    page = tif.pages[0]
    per = {2: 25400.0, 3: 10000.0}.get(int(page.resolutionunit or 0))  # µm per inch, per cm
    xres, yres = page.resolution
    if per is None or not (xres > 0 and yres > 0):
        return None, None
    return {"y": per / yres, "x": per / xres}, "micrometer"


#: A pyramid built from one image is halved until its longer side is at most this.
TOP_SIDE = 1024


def pyramid(image, axes: str) -> list:
    """Levels of one image for an OME-Zarr output: the image, then each level halved
    along y and x (the mean of 2 x 2 pixels, rounded for integers) while its longer side
    is over `TOP_SIDE`. Lazy (dask); the image is not changed."""
    import dask.array as da

    level = image if isinstance(image, da.Array) else da.asarray(image)
    levels = [level]
    spatial = [axes.index(a) for a in "yx"]
    while (
        max(level.shape[i] for i in spatial) > TOP_SIDE
        and min(level.shape[i] for i in spatial) >= 2
    ):
        even = tuple(
            slice(0, level.shape[i] // 2 * 2) if i in spatial else slice(None)
            for i in range(level.ndim)
        )
        halved = da.coarsen(np.mean, level[even].astype(np.float64), dict.fromkeys(spatial, 2))
        if np.dtype(image.dtype).kind in "ui":
            halved = da.round(halved)
        level = halved.astype(image.dtype)
        levels.append(level)
    return levels


def grown(opened: Opened) -> Opened:
    """``opened`` with a pyramid built by `pyramid` when it has one level (scales doubled
    along y and x at each level), else as it is."""
    if len(opened.levels) > 1 or not set("yx") <= set(opened.axes):
        return opened
    levels = pyramid(opened.levels[0], opened.axes)
    scales = [tuple(s * 2**i if a in "yx" else s for s, a in zip(opened.scales[0], opened.axes,
                                                                 strict=True))
              for i in range(len(levels))]  # fmt: skip
    return replace(opened, levels=levels, scales=scales)


def level_shapes(opened: Opened) -> list[tuple[int, ...]]:
    return [tuple(level.shape) for level in opened.levels]


def megapixels(opened: Opened) -> float:
    shape = opened.levels[0].shape
    return math.prod(shape[opened.axes.index(a)] for a in "yx") / 1e6
