"""napari at the edges: layers in, `quantize` keywords out; results in, layers out.

Shared by the dock widget and by `quantize_layer` for napari's console.
Nothing numerical happens here.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from .._api import quantize
from ..core._layout import check_image, is_lazy, is_multiscale
from ..engine._measure import check_axes, check_planes, cluster_table, totals
from ..engine._palette import Palette
from ..engine._result import QuantizeResult

if TYPE_CHECKING:
    import napari

#: What a run adds: the quantized image, the cluster labels, or both.
OUTPUTS = ("quantized", "clusters")
#: Layer attributes copied to the outputs so that they overlay the source exactly.
GEOMETRY = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")
TRANSPARENT = np.zeros(4, np.float32)


#: Masks of more elements are compared and combined in the run's worker, not in the GUI
#: thread (a 40 x 4000 x 4000 Labels mask took 1.6-3 s there).
LAZY_MASK = 2**24
#: The metadata key of the live preview layer (not a result: no palette to keep).
PREVIEW = "napari_kquant_preview"


def spatial_shape(layer: Image) -> tuple[int, ...]:
    shape = tuple((layer.data[0] if layer.multiscale else layer.data).shape)
    return shape[:-1] if layer.rgb else shape


def layer_data(layer):
    """The layer's data as it is: an array (numpy, dask, zarr, ...) or a list of levels
    (a multiscale layer of one level, or of levels that do not shrink, gives its first).

    Nothing is loaded: lazy data stays lazy.
    """
    if not layer.multiscale:
        return layer.data
    levels = list(layer.data)
    return levels if is_multiscale(levels) else levels[0]


def draw_preview(viewer, layer, quantized, factor, used) -> bool:
    """Show a live preview of ``layer`` (``factor``: its pixels' size over the layer's)
    as the one preview layer, refreshed in place where it can be; True when a layer was
    added (napari selected it)."""
    scale = np.asarray(layer.scale[-2:], float) * factor
    kwargs = {
        "name": f"{layer.name} preview",
        "scale": scale,
        "translate": np.asarray(layer.translate[-2:], float),
        "metadata": {PREVIEW: used},
    }
    if not layer.rgb:
        kwargs.update(colormap=layer.colormap, contrast_limits=layer.contrast_limits)
    old = next((other for other in viewer.layers if other.name == kwargs["name"]
                and PREVIEW in other.metadata), None)  # fmt: skip
    if old is not None and old.data.shape == quantized.shape:
        old.data = quantized
        old.metadata = kwargs["metadata"]
        old.scale, old.translate = scale, kwargs["translate"]
        return False
    for other in [o for o in viewer.layers if PREVIEW in o.metadata]:  # one at a time
        viewer.layers.remove(other)
    viewer.add_image(quantized, rgb=bool(layer.rgb), **kwargs)
    return True


def read_layer(layer, mask=None, fixed: dict[int, int] | None = None, k=None):
    """The layer's data and the `quantize` keywords that describe it, checked as a run
    checks them before any work (`check_image`; with ``k``, a new fit's K too).

    ``mask`` is a Labels layer (non-zero = use) or a boolean array; ``fixed``
    maps layer axes to the index they are held at (the current slice), so that
    only that plane is clustered. Lazy data stays lazy.
    """
    if not isinstance(layer, Image):
        kind = type(layer).__name__
        raise TypeError(f"{layer.name!r} is a {kind} layer; choose an Image layer to quantize")
    shape = spatial_shape(layer)
    if layer.multiscale and (mask is not None or fixed):
        raise ValueError(
            f"{layer.name!r} is multiscale: quantize it whole, without a mask or slice"
        )
    data = layer_data(layer)
    lazy = is_lazy(data)
    if isinstance(mask, Labels):
        mask_name, mask = f"mask layer {mask.name!r}", _nonzero(mask.data)
    else:
        mask_name = "mask"
        if mask is not None and not hasattr(mask, "shape"):  # array_like: a nested list
            mask = np.asarray(mask)
    if mask is not None and tuple(mask.shape) != shape:
        raise ValueError(
            f"{mask_name} has shape {tuple(mask.shape)}, but image {layer.name!r} has "
            f"spatial shape {shape}"
        )
    if fixed:
        chunks = data.chunks[: len(shape)] if lazy else None
        if chunks is None and (is_lazy(mask) or math.prod(shape) > LAZY_MASK):
            chunks = mask.chunks if is_lazy(mask) else "auto"  # made in the worker
        plane = _zeros(shape, chunks)
        plane[tuple(fixed.get(axis, slice(None)) for axis in range(len(shape)))] = True
        mask = plane if mask is None else mask & plane
    keywords = {"channel_axis": -1 if layer.rgb else None, "mask": mask}
    check_image(data, **keywords, k=k)
    return data, keywords


def _nonzero(data):
    """Where a mask layer's labels are not 0: lazily (in the worker, when the run reads it)
    for lazy data and for arrays over `LAZY_MASK` elements."""
    if not is_lazy(data) and np.size(data) <= LAZY_MASK:
        return np.asarray(data) != 0
    import dask.array as da

    if not is_lazy(data):  # neither copied nor hashed here, in the GUI thread
        return da.from_array(_Uncopied(np.asarray(data)), chunks="auto", name=False) != 0
    return da.asarray(data) != 0


class _Uncopied:
    """A numpy array that dask reads in chunks without copying it first (it copies the
    arrays it is given: 1.5 s for a 640 MB mask)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return self.array[key]


def _zeros(shape, chunks):
    if chunks is None:
        return np.zeros(shape, bool)
    import dask.array as da

    return da.zeros(shape, dtype=bool, chunks=chunks)


def current_slice(viewer: napari.Viewer, layer: Image) -> dict[int, int]:
    """Layer axes that are not displayed, mapped to the index the viewer shows."""
    ndim = len(spatial_shape(layer))
    offset = viewer.dims.ndim - ndim  # a layer's axes are the viewer's last ones
    displayed = {axis - offset for axis in viewer.dims.displayed}
    point = layer.world_to_data(viewer.dims.point)
    shape = spatial_shape(layer)
    return {
        axis: int(np.clip(np.round(point[axis]), 0, shape[axis] - 1))
        for axis in range(ndim)
        if axis not in displayed
    }


def warm_label_colormaps() -> None:
    """Compile napari's numba label-colormap code now, in the calling (worker) thread.

    napari maps Labels through numba-compiled code (typed dicts) when numba is
    installed, and compiles it, uncached, the first time a Labels layer is
    drawn: about 2-3 s that would freeze the viewer on the first run of a
    session. Compiled once here (uint8 and uint16 labels, 8- and 16-bit
    textures), later calls in any thread are fast. Idempotent.
    """
    for dtype, n in ((np.uint8, 3), (np.uint16, 3), (np.uint16, 300)):
        colours = {None: TRANSPARENT, 0: TRANSPARENT}
        colours.update({i: np.ones(4, np.float32) * (i % 7) / 7 for i in range(1, n)})
        DirectLabelColormap(color_dict=colours).map(np.arange(n, dtype=dtype))


def cluster_colours(layer: Image, centers: np.ndarray) -> DirectLabelColormap:
    """Label i drawn in the colour cluster i has in the source layer's display."""
    lo, hi = layer.contrast_limits
    shown = np.clip((centers - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    if layer.rgb:
        rgba = np.column_stack([shown[:, :3], np.ones(len(centers))])
    else:
        rgba = layer.colormap.map(shown[:, 0])
    colours = {None: TRANSPARENT, 0: TRANSPARENT}
    colours.update({i + 1: np.asarray(c, np.float32) for i, c in enumerate(rgba)})
    return DirectLabelColormap(color_dict=colours)


def _unit(unit) -> str:
    """A unit's short form (µm for micrometer)."""
    try:
        return format(unit, "~P")
    except (TypeError, ValueError):
        return str(unit)


def _pixel_size(layer) -> dict:
    """The table's pixel size and unit from the layer's scale and units (the last two axes);
    in px² when those two axes differ in unit."""
    units = [_unit(u) for u in (getattr(layer, "units", None) or ())][-2:]
    if len(set(units)) > 1:
        return {}
    unit = units[0] if units and units[0] not in ("pixel", "") else "px"
    return {"pixel_size": tuple(abs(float(s)) for s in layer.scale), "unit": unit}  # flips


def plane_spacing(layer) -> list[float | None]:
    """Per plane axis of a layer (all spatial axes but the last two): its step in the unit
    of the last two axes where its unit is a length (z), None where it is not (time, a
    channel, or no unit given)."""
    units = list(getattr(layer, "units", None) or ())
    nlead = len(spatial_shape(layer)) - 2 if isinstance(layer, Image) else layer.ndim - 2
    spacing = []
    for axis in range(max(nlead, 0)):
        unit = units[axis] if axis < len(units) else None
        try:
            length = dict(unit.dimensionality) == {"[length]": 1}
            factor = float((1 * unit).to(units[-1]).magnitude) if length else None
        except Exception:  # no pint unit, or not convertible: not a length we can use
            factor = None
        size = None if factor is None else abs(float(layer.scale[axis])) * factor
        spacing.append(size if size is not None and 0 < size < float("inf") else None)
    return spacing


def output_layers(
    layer: Image, result: QuantizeResult, params: dict[str, Any], outputs=OUTPUTS
) -> list[tuple]:
    """Layer data tuples for the quantized image and the cluster labels."""
    k = len(result.centers)
    lazy = is_lazy(result.counts)  # the numbers would need a pass over all the data
    record = {
        **params,
        "run": uuid.uuid4().hex,  # the layers of one run share it
        "source": layer.name,
        "seed": result.seed,
        "epsilon": result.epsilon,
        "centers": result.centers.tolist(),
        "counts": None if lazy else result.counts.tolist(),
        "compactness": None if lazy else result.compactness,
        # pixels per label 0..k per plane ((k + 1) list for a 2-D image): the table's source
        "plane_counts": None if lazy else kept_counts(result.plane_counts),
        "background": [],
        "palette": result.palette.to_dict(),
    }
    common = {attr: getattr(layer, attr) for attr in GEOMETRY}
    common["metadata"] = {"napari_kquant": record}
    tuples = []
    if "quantized" in outputs:
        look = {"rgb": layer.rgb}  # said: napari would guess RGB from a last axis of 3 or 4
        if not layer.rgb:
            look |= {"colormap": layer.colormap, "contrast_limits": layer.contrast_limits}
        kwargs = {**common, **look, "name": f"{run_title(layer, params, k)} quantized"}
        tuples.append((result.quantized, kwargs, "image"))
    if "clusters" in outputs:
        kwargs = {
            **common,
            "name": f"{run_title(layer, params, k)} clusters",
            "colormap": cluster_colours(layer, result.centers),
        }
        if not lazy:
            kwargs["features"] = _features(record, layer)
        tuples.append((result.labels, kwargs, "labels"))
    return tuples


def run_title(layer, params: dict, k: int) -> str:
    """What a run's layers are called before " quantized" or " clusters": the source's
    name, the plane for a current-slice run (``z=20``, or ``plane 20`` for unnamed axes),
    and K. A slice's result never takes the name of the whole stack's."""
    fixed = params.get("slice") or {}
    where = ""
    if fixed:
        labels = [str(a) for a in getattr(layer, "axis_labels", ())]
        named = all(axis < len(labels) and not labels[axis].lstrip("-").isdigit()
                    for axis in fixed)  # fmt: skip
        if named:
            where = " " + " ".join(f"{labels[axis]}={i}" for axis, i in sorted(fixed.items()))
        else:
            where = " plane " + ",".join(str(i) for _, i in sorted(fixed.items()))
    return f"{layer.name}{where} k={k}"


#: A run's layer names end in this: its K, then what the layer is (renamed by edits).
_K_SUFFIX = re.compile(r" k=\d+ (quantized|clusters)$")


#: Per-plane counts larger than this (planes x (k + 1)) are kept summed over the planes: a
#: layer's metadata is copied around by napari, and holds Python lists.
MAX_KEPT_COUNTS = 200_000


def kept_counts(plane_counts) -> list:
    counts = np.asarray(plane_counts)
    return (totals(counts) if counts.size > MAX_KEPT_COUNTS else counts).tolist()


def plane_axis_names(record, layer) -> list[str]:
    """Names of the plane axes (time, z, ...) of a result: the layer's axis labels."""
    nlead = np.asarray(record["plane_counts"]).ndim - 1
    names = [str(a) for a in (getattr(layer, "axis_labels", None) or ())]
    names = names[: len(names) - 2][-nlead:] if nlead else []
    default = all(name.lstrip("-").isdigit() for name in names)  # napari's '-3', '-2', ...
    try:
        return check_axes(None if default else names, nlead, len(record["centers"][0]))
    except (TypeError, ValueError):  # e.g. an axis called "count": the plain names
        return check_axes(None, nlead, 0)


def measured(layer) -> bool:
    """Whether a result layer carries its counts (lazy results need a pass first)."""
    return is_result(layer) and layer.metadata["napari_kquant"].get("plane_counts") is not None


def layer_table(layer, per_plane: bool = False, record=None):
    """The measurement table of a result layer, from its metadata, as a DataFrame: per
    cluster (``per_plane=False``) or the long per-plane table of a stack. Areas in the
    layer's scale and units; background clusters as marked on the layer."""
    import pandas as pd

    record = record or layer.metadata["napari_kquant"]
    if record.get("plane_counts") is None:
        raise ValueError(f"{layer.name!r} is a lazy result: measure it first (one pass)")
    counts = np.asarray(record["plane_counts"], np.int64)
    data = layer.data[0] if layer.multiscale else layer.data
    shape = spatial_shape(layer) if isinstance(layer, Image) else tuple(data.shape)
    planes = None
    if not per_plane:
        counts = totals(counts)
        if len(shape) > 2 and not record.get("slice"):  # a stack: mean areas, volumes
            size = _pixel_size(layer)
            spacing = plane_spacing(layer) if size else [None] * (len(shape) - 2)
            planes = check_planes(spacing, shape[:-2])
    columns = cluster_table(
        Palette.from_dict(record["palette"]), counts, background=record.get("background", ()),
        ndim=len(shape), axes=plane_axis_names(record, layer) if per_plane else None,
        planes=planes, **_pixel_size(layer),
    )  # fmt: skip
    return pd.DataFrame(columns)


def _features(record, layer):
    """The clusters layer's features: the per-cluster table, row i for label i."""
    return layer_table(layer, record=record)


def run_layers(viewer, layer) -> list:
    """The result layers of the run that made ``layer`` (itself included)."""
    run_id = layer.metadata["napari_kquant"].get("run")
    return [
        other for other in viewer.layers
        if other is layer or (run_id and is_result(other)
                              and other.metadata["napari_kquant"].get("run") == run_id)
    ]  # fmt: skip


def update_record(viewer, layer, **changes) -> None:
    """Change a run's record (background, counts) on all its layers; features follow."""
    for other in run_layers(viewer, layer):
        record = {**other.metadata["napari_kquant"], **changes}
        other.metadata = {**other.metadata, "napari_kquant": record}
        if isinstance(other, Labels) and record.get("plane_counts") is not None:
            other.features = _features(record, other)


def add_or_update(viewer: napari.Viewer, tuples: list[tuple]) -> list:
    """Add the layers, or refresh the ones a previous run with the same name made."""
    layers = []
    for data, kwargs, kind in tuples:
        name = kwargs["name"]
        old = next((lay for lay in viewer.layers if lay.name == name), None)
        if _can_refresh(old, data, kwargs, kind):
            old.data = data
            for key, value in kwargs.items():
                if key not in ("name", "rgb"):
                    setattr(old, key, value)
            layers.append(old)
        else:
            add = viewer.add_image if kind == "image" else viewer.add_labels
            layers.append(add(data, **kwargs))
    return layers


def _can_refresh(old, data, kwargs, kind) -> bool:
    if old is None or "napari_kquant" not in old.metadata:
        return False  # never overwrite a layer this plugin did not make
    if not isinstance(old, Image if kind == "image" else Labels):
        return False  # (the result layers renamed crosswise, say)
    same_rgb = kind != "image" or old.rgb == kwargs.get("rgb", False)
    multiscale = isinstance(data, list)
    if old.multiscale != multiscale:
        return False
    old_ndim = (old.data[0] if multiscale else old.data).ndim
    return same_rgb and old_ndim == (data[0] if multiscale else data).ndim


def viewer_of(layer) -> napari.Viewer:
    """The viewer whose layer list holds ``layer`` (the current viewer first)."""
    import napari

    candidates = [napari.current_viewer(), *napari.Viewer._instances]
    for viewer in candidates:
        if viewer is not None and layer in viewer.layers:
            return viewer
    raise ValueError(f"layer {getattr(layer, 'name', layer)!r} is not in any open viewer")


def is_result(layer) -> bool:
    """A layer this plugin made (its metadata carries the run's record and palette)."""
    return isinstance(getattr(layer, "metadata", None), dict) and "napari_kquant" in layer.metadata


def palette_of(layer) -> Palette:
    """The palette a result layer of this plugin was made with."""
    if not is_result(layer) or "palette" not in layer.metadata["napari_kquant"]:
        name = getattr(layer, "name", layer)
        raise ValueError(f"layer {name!r} was not made by napari-kquant: it has no palette")
    return Palette.from_dict(layer.metadata["napari_kquant"]["palette"])


def run(data, keywords: dict, progress=None) -> QuantizeResult:
    """Fit and apply (``k`` and fit options), or apply a kept ``palette``: the same call
    for the widget's worker and the console."""
    if "palette" in keywords:
        rest = {key: v for key, v in keywords.items() if key != "palette"}
        return keywords["palette"].apply(data, progress=progress, **rest)
    return quantize(data, progress=progress, **keywords)


def run_parts(viewer, layer) -> tuple:
    """What a run's layers hold for an edit (cheap: references and the record), checked
    in the GUI thread; `result_of_parts` makes the result from them in a worker."""
    layers = run_layers(viewer, layer)
    clusters = next((other for other in layers if isinstance(other, Labels)), None)
    if clusters is None:
        raise ValueError(f"{layer.name!r}: editing clusters needs the run's clusters layer")
    quantized = next((other for other in layers if isinstance(other, Image)), None)
    arrays = [clusters.data, None if quantized is None else quantized.data]
    if is_lazy_result(viewer, layer):
        raise ValueError(f"{layer.name!r} is a lazy result: its clusters cannot be edited")
    rgb = quantized is not None and quantized.rgb
    return arrays[0], arrays[1], rgb, dict(clusters.metadata["napari_kquant"])


def is_lazy_result(viewer, layer) -> bool:
    """Whether a run's layers hold dask arrays or pyramids (which edits cannot change)."""
    layers = run_layers(viewer, layer)
    return any(is_lazy(other.data) or other.multiscale for other in layers)


def result_of_parts(labels, quantized, rgb, record) -> QuantizeResult:
    """The computed result a run's layers hold (worker thread: counts the labels)."""
    palette = Palette.from_dict(record["palette"])
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel(), minlength=palette.k + 1)[1:]
    compactness = record.get("compactness")
    return QuantizeResult(
        quantized=None if quantized is None else np.asarray(quantized),
        labels=labels,
        centers=np.asarray(record["centers"], np.float64),
        counts=counts.astype(np.int64),
        compactness=float("nan") if compactness is None else float(compactness),
        seed=record.get("seed"),
        epsilon=record.get("epsilon"),
        palette=palette,
        channel_axis=-1 if rgb else None,
    )


def source_of(viewer, layer):
    """The Image layer a run was made from, when it is still in the viewer."""
    name = layer.metadata["napari_kquant"].get("source")
    return next(
        (other for other in viewer.layers
         if other.name == name and isinstance(other, Image) and not is_result(other)),
        None,
    )  # fmt: skip


def layer_state(viewer, layer) -> list[tuple]:
    """What an edit changes on a run's layers, to put back (one step of undo)."""
    return [
        (other, other.data, dict(other.metadata), getattr(other, "colormap", None), other.name)
        for other in run_layers(viewer, layer)
    ]


def restore_state(state) -> None:
    for other, data, metadata, colormap, name in state:
        other.data = data
        other.metadata = metadata
        other.name = name
        if isinstance(other, Labels):
            other.colormap = colormap
            record = metadata["napari_kquant"]
            if record.get("plane_counts") is not None:
                other.features = _features(record, other)


def show_edit(viewer, layer, result: QuantizeResult, edit: str) -> None:
    """Put an edited result on the run's layers: data, colours, metadata, features. The
    background marks are cleared (the labels were renumbered)."""
    source = source_of(viewer, layer)
    counts = np.asarray(result.plane_counts)
    for other in run_layers(viewer, layer):
        record = {
            **other.metadata["napari_kquant"],
            "k": result.palette.k,
            "centers": result.centers.tolist(),
            "counts": result.counts.tolist(),
            "compactness": result.compactness if np.isfinite(result.compactness) else None,
            "plane_counts": kept_counts(counts),
            "background": [],
            "palette": result.palette.to_dict(),
            "edited": [*other.metadata["napari_kquant"].get("edited", []), edit],
        }
        if isinstance(other, Labels):
            other.data = result.labels
            colormap = (
                cluster_colours(source, result.centers)
                if source is not None
                else _hex_colours(result.palette)
            )
            other.colormap = _with_display(colormap, result.palette)
        elif result.quantized is not None:
            other.data = result.quantized
        other.metadata = {**other.metadata, "napari_kquant": record}
        if isinstance(other, Labels):
            other.features = _features(record, other)
        match = _K_SUFFIX.search(other.name)
        if match:  # the names say the K the layers now have
            other.name = f"{other.name[: match.start()]} k={result.palette.k} {match.group(1)}"


def _with_display(colormap, palette) -> DirectLabelColormap:
    """The colours a user picked for clusters (``fit["display"]``) over the computed ones."""
    picked = (palette.fit or {}).get("display", {})
    if not picked:
        return colormap
    colours = dict(colormap.color_dict)
    for label, hexa in picked.items():
        if isinstance(hexa, str):
            colours[int(label)] = np.array([*_rgb(hexa), 1.0], np.float32)
    return DirectLabelColormap(color_dict=colours)


def _rgb(hexa: str) -> list[float]:
    return [int(hexa[j : j + 2], 16) / 255 for j in (1, 3, 5)]


def _hex_colours(palette) -> DirectLabelColormap:
    colours = {None: TRANSPARENT, 0: TRANSPARENT}
    for i, hexa in enumerate(palette.hex or ["#808080"] * palette.k, start=1):
        colours[i] = np.array([*_rgb(hexa), 1.0], np.float32)
    return DirectLabelColormap(color_dict=colours)


def run_name(layer) -> str:
    """A result layer's name without its " quantized" or " clusters" ending: the run's."""
    for ending in (" quantized", " clusters"):
        if layer.name.endswith(ending):
            return layer.name[: -len(ending)]
    return layer.name
