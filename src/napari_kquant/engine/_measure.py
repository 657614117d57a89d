"""Numbers per cluster: pixel counts, shares, foreground shares and physical areas, for
the whole image and per plane of a stack.

numpy only (dask for lazy labels): the functions here return plain columns;
`QuantizeResult.table` and `plane_table` turn them into pandas DataFrames
(pandas is imported only then).
"""

from __future__ import annotations

import math

import numpy as np

from ..core._colorspace import rgb_scale, to_lab
from ..core._layout import is_lazy
from ..core._options import not_items, scalar, zero_d

#: A cluster is suggested as background (glass, empty slide) when it is the lightest one
#: and near-white: CIE L* at least this ...
BACKGROUND_MIN_L = 85.0
#: ... and chroma (the distance from gray in a*b*) at most this.
BACKGROUND_MAX_CHROMA = 12.0


def channel_names(n: int) -> list[str]:
    return ["red", "green", "blue"] if n == 3 else [f"channel_{c}" for c in range(n)]


def od_names(n: int) -> list[str]:
    """The optical density columns of an "od" palette's table."""
    return [f"od_{name}" for name in channel_names(n)]


def plane_axes(labels) -> int:
    """How many leading axes of a label image are plane indices (time, z, ...): all but
    the last two."""
    return max(len(labels.shape) - 2, 0)


def plane_counts(labels, k: int, counts=None):
    """Pixels per label 0..k in every plane: shape (*labels.shape[:-2], k + 1), int64.

    ``labels`` is a numpy or dask label image (the finest level of a list);
    lazy labels give a lazy result: a blockwise count that shares the labels'
    tasks, so computing it together with the labels (or what is written from
    them) is one pass. ``counts`` (labels 1..k over the whole image), when
    known, saves the count of a single plane.
    """
    if isinstance(labels, list):
        labels = labels[0]
    if is_lazy(labels):
        return _lazy_plane_counts(labels, k)
    labels = np.asarray(labels)
    if plane_axes(labels) == 0 and counts is not None:
        counts = np.asarray(counts, np.int64)
        return np.concatenate([[labels.size - counts.sum()], counts])
    return _count_planes(labels, k)


def totals(plane_counts) -> np.ndarray:
    """Per-plane counts (*planes, k + 1) summed over the planes: (k + 1,)."""
    counts = np.asarray(plane_counts)
    return counts.reshape(-1, counts.shape[-1]).sum(axis=0)


def _count_planes(labels: np.ndarray, k: int) -> np.ndarray:
    lead = labels.shape[: plane_axes(labels)]
    planes = labels.reshape(math.prod(lead), -1)
    out = np.empty((len(planes), k + 1), np.int64)
    for i, plane in enumerate(planes):  # one plane at a time: bounded temporary memory
        out[i] = np.bincount(plane, minlength=k + 1)
    return out.reshape(*lead, k + 1)


def _lazy_plane_counts(labels, k):
    import dask.array as da

    labels = da.asarray(labels)
    nlead, ndim = plane_axes(labels), labels.ndim

    def block(chunk):
        counts = _count_planes(np.asarray(chunk), k)
        return counts.reshape(chunk.shape[:nlead] + (1,) * (ndim - nlead) + (k + 1,))

    chunks = (
        *labels.chunks[:nlead],
        *(((1,) * len(c)) for c in labels.chunks[nlead:]),
        (k + 1,),
    )
    per_chunk = labels.map_blocks(
        block, dtype=np.int64, new_axis=ndim, chunks=chunks, meta=np.empty((0,) * (ndim + 1))
    )
    return per_chunk.sum(axis=tuple(range(nlead, ndim)))


def lab_of(palette) -> np.ndarray | None:
    """(k, 3) CIE L*a*b* of a 3-channel palette's centres; None for other palettes."""
    if palette.nchannels != 3 or palette.dtype is None:
        return None
    if palette.lab_centers is not None:
        return np.asarray(palette.lab_centers, np.float64)
    return to_lab(palette.centers, rgb_scale(palette.dtype))


def suggest_background(palette) -> int | None:
    """The label of the lightest cluster when it is near-white (glass around a tissue
    section, an empty slide): L* >= 85 and chroma <= 12. None otherwise, and for
    palettes that are not 3-channel colour. A suggestion only: nothing is marked."""
    palette = getattr(palette, "palette", palette)  # a result: its palette
    if not all(hasattr(palette, name) for name in ("nchannels", "color_space", "centers")):
        raise TypeError(f"suggest_background takes a Palette (or a result), got {palette!r}")
    lab = lab_of(palette)
    if lab is None:
        return None
    lightest = int(np.argmax(lab[:, 0]))
    chroma = math.hypot(lab[lightest, 1], lab[lightest, 2])
    if lab[lightest, 0] >= BACKGROUND_MIN_L and chroma <= BACKGROUND_MAX_CHROMA:
        return lightest + 1
    return None


def check_background(background, k: int) -> list[int]:
    background = scalar(background)
    if isinstance(background, int | np.integer) and not isinstance(background, bool | np.bool_):
        background = [background]
    if not isinstance(background, list | tuple | set | frozenset | range | np.ndarray) or zero_d(
        background
    ):
        raise TypeError(f"background must be labels (whole numbers 1..{k}), got {background!r}")
    try:
        marked = sorted({_label(b) for b in background})
    except (TypeError, ValueError):
        raise TypeError(
            f"background must be labels (whole numbers 1..{k}), got {background!r}"
        ) from None
    bad = [b for b in marked if not 1 <= b <= k]
    if bad:
        raise ValueError(f"background labels must be between 1 and {k}, got {bad}")
    return marked


def _label(value) -> int:
    value = scalar(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError
    return int(value)


def pixel_area(pixel_size, ndim: int) -> float:
    """The area of one pixel: the product of its sizes along the last two axes (the one
    axis of a 1-D image). ``pixel_size`` is one size for every axis, or one per spatial
    axis (a napari layer's ``scale``), or one per each of the last two."""
    pixel_size = scalar(pixel_size)
    if pixel_size is None:
        return 1.0
    last = min(ndim, 2)
    if _is_size(pixel_size):
        sizes = [_float(pixel_size)] * last
    elif not_items(pixel_size):
        raise TypeError(
            f"pixel_size must be a number or one number per spatial axis, got {pixel_size!r}"
        )
    else:
        given = [scalar(s) for s in pixel_size]
        if not all(_is_size(s) for s in given):
            raise TypeError(f"pixel_size must hold numbers, got {pixel_size!r}")
        sizes = [_float(s) for s in given]
        if len(sizes) not in (ndim, last):
            raise ValueError(
                f"pixel_size must hold {ndim} sizes (one per spatial axis) or the last {last}, "
                f"got {len(sizes)}: {tuple(pixel_size)}"
            )
    if not all(math.isfinite(s) and s > 0 for s in sizes):
        raise ValueError(f"pixel_size must hold positive sizes, got {pixel_size!r}")
    area = math.prod(sizes[-last:])
    if not (math.isfinite(area) and area > 0):
        raise ValueError(
            f"pixel_size {pixel_size!r} gives a pixel area of {area}: not a positive number "
            "a float can hold"
        )
    return area


def _float(size) -> float:
    try:
        return float(size)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"pixel_size {size!r} is larger than a float can hold") from None


def _is_size(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


#: The table's own columns (besides the centre's channels); plane axes may not take them.
COLUMNS = ("label", "hex", "red", "green", "blue", "L*", "a*", "b*", "count", "share",
           "background", "foreground_share", "area", "area_unit", "volume",
           "volume_unit")  # fmt: skip


def check_axes(axes, nlead: int, nchannels: int) -> list[str]:
    """Names of the plane axis columns: strings, one per plane axis, all different and none
    a column of the table."""
    if axes is None:
        return [f"axis_{i}" for i in range(nlead)]
    if not_items(axes):
        raise TypeError(f"axes must be a list of names, got {axes!r}")
    axes = list(axes)
    if not all(isinstance(a, str) and a for a in axes):
        raise TypeError(f"axes must be non-empty strings, got {axes!r}")
    if len(axes) != nlead:
        raise ValueError(f"axes must name the {nlead} plane axes, got {axes!r}")
    taken = {*COLUMNS, *channel_names(nchannels), *od_names(nchannels)}
    if len(set(axes)) != len(axes) or taken & set(axes):
        raise ValueError(
            f"axes must be different names that are not columns of the table, got {axes!r}"
        )
    return axes


def cluster_table(
    palette, counts, *, background=(), pixel_size=None, unit=None, ndim=2, axes=None,
    planes=None,
) -> dict:  # fmt: skip
    """The table's columns, one row per label (row 0: the left-out pixels).

    ``counts`` holds pixels per label 0..k: shape (k + 1,) for one table, or
    (*planes, k + 1) for the long per-plane table, whose leading columns are
    then the plane indices, named by ``axes`` (default ``axis_0``, ...).
    ``ndim`` is the label image's (for the pixel size check). ``planes``: for
    the whole-stack table of a stack, `check_planes` of its plane axes: the
    area is then the mean per plane, and stacks with an axis in space get a
    ``volume`` (mean per plane of the axes that are not space, e.g. per time).
    """
    counts = np.asarray(counts, np.int64)
    k = palette.k
    if counts.shape[-1] != k + 1:
        raise ValueError(f"counts are for {counts.shape[-1] - 1} labels, the palette has {k}")
    marked = check_background(background, k)
    area = pixel_area(pixel_size, ndim)
    if unit is not None and not isinstance(unit, str):
        raise TypeError(f"unit must be a string such as 'µm', got {unit!r}")
    if unit is not None and pixel_size is None:
        raise ValueError(f"unit={unit!r} is the unit of pixel_size: give pixel_size too")
    lead = counts.shape[:-1]
    axes = check_axes(axes, len(lead), palette.nchannels)
    rows = counts.reshape(-1, k + 1)  # one block of k + 1 rows per plane
    nplanes = len(rows)
    is_background = np.zeros(k + 1, bool)
    is_background[marked] = True
    keep = ~is_background
    keep[0] = False
    clustered = rows[:, 1:].sum(axis=1, keepdims=True)
    foreground = rows[:, keep].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(clustered > 0, rows / np.maximum(clustered, 1), np.nan)
        fg_share = np.where(foreground > 0, rows / np.maximum(foreground, 1), np.nan)
    share[:, 0] = np.nan
    fg_share[:, ~keep] = np.nan
    centers = np.vstack([np.full((1, palette.nchannels), np.nan), palette.centers])
    table = {}
    if lead:
        index = np.indices(lead).reshape(len(lead), -1)
        table.update({name: np.repeat(index[i], k + 1) for i, name in enumerate(axes)})
    table["label"] = np.tile(np.arange(k + 1), nplanes)
    table["hex"] = ["", *(palette.hex or [""] * k)] * nplanes
    for c, name in enumerate(channel_names(palette.nchannels)):
        table[name] = np.tile(centers[:, c], nplanes)
    lab = lab_of(palette)
    if lab is not None:
        lab = np.vstack([np.full((1, 3), np.nan), lab])
        for i, name in enumerate(("L*", "a*", "b*")):
            table[name] = np.tile(lab[:, i], nplanes)
    if palette.od_centers is not None:  # the mean optical density of the fitted pixels
        od = np.vstack([np.full((1, palette.nchannels), np.nan), palette.od_centers])
        for c, name in enumerate(od_names(palette.nchannels)):
            table[name] = np.tile(od[:, c], nplanes)
    area_unit = "px²" if pixel_size is None else (f"{unit}²" if unit else "")
    volume = None
    if planes:
        stacked = math.prod(n for _, n in planes)  # planes the whole-stack counts cover
        space = [size for size, _ in planes if size is not None]
        elsewhere = math.prod(n for size, n in planes if size is None)  # time points, ...
        if space:
            voxel = area * math.prod(space) / elsewhere
            if not (math.isfinite(voxel) and voxel > 0):
                raise ValueError(
                    f"plane_spacing {[s for s, _ in planes]!r} with a pixel area of {area} gives "
                    f"a voxel volume of {voxel}: not a positive number a float can hold"
                )
            volume = rows.ravel() * voxel
        area /= stacked
    table.update(
        {
            "count": rows.ravel(),
            "share": share.ravel(),
            "background": np.tile(is_background, nplanes),
            "foreground_share": fg_share.ravel(),
            "area": rows.ravel() * area,
            "area_unit": [area_unit] * (nplanes * (k + 1)),
        }
    )
    if volume is not None:
        table["volume"] = volume
        table["volume_unit"] = [area_unit.replace("²", "³")] * len(volume)
    return table


def check_planes(plane_spacing, lead) -> list[tuple[float | None, int]] | None:
    """(spacing or None, number of planes) per plane axis of a stack whose plane axes have
    the sizes ``lead``; ``plane_spacing`` holds one entry per plane axis: a positive, finite
    spacing (in the unit of the pixel size) where the axis is space, None where it is not
    (time, channel). None: no plane axes are described."""
    if plane_spacing is None:
        return None
    shown = f"plane_spacing must be a list of one size or None per plane axis ({len(lead)})"
    if isinstance(plane_spacing, str | bytes | dict | set) or np.ndim(plane_spacing) != 1:
        raise TypeError(f"{shown}, got {plane_spacing!r}")
    spacing = list(plane_spacing)
    if len(spacing) != len(lead):
        raise ValueError(f"{shown}, got {plane_spacing!r}")
    checked = []
    for size in spacing:
        if size is not None and not _is_size(size):
            raise TypeError(f"{shown}, got {plane_spacing!r}")
        try:
            value = None if size is None else float(size)
        except OverflowError:
            value = math.inf
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"plane_spacing must hold positive, finite sizes, got {size!r}")
        checked.append(value)
    return [(s, int(n)) for s, n in zip(checked, lead, strict=True)]


def share_curves(counts, background=()) -> np.ndarray:
    """Each cluster's share per index of the first plane axis (time, say): (n, k).

    ``counts`` are per-plane counts (*planes, k + 1); further plane axes are
    summed. Shares are of the clustered pixels, or of the foreground when
    ``background`` clusters are given (their columns are then NaN); a plane
    with nothing to share gets NaN.
    """
    counts = np.asarray(counts, np.int64)
    if counts.ndim < 2:
        raise ValueError("share curves need per-plane counts of a stack")
    counts = counts.reshape(counts.shape[0], -1, counts.shape[-1]).sum(axis=1)[:, 1:]
    keep = np.ones(counts.shape[1], bool)
    keep[[b - 1 for b in check_background(background, counts.shape[1])]] = False
    total = counts[:, keep].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, counts / np.maximum(total, 1), np.nan)
    shares[:, ~keep] = np.nan
    return shares
