"""Results written as an NGFF (OME-Zarr 0.5) image with its cluster labels inside
(`write_ome_zarr`), through ome-zarr-py; the input's axes, pixel sizes and place come from
`files._ome.Opened`."""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ..core._staged import FileError, Transaction, file_path
from ._ome import _NGFF_ORDER, _UNITS, Opened


def _ngff_order(axes: str) -> list[int]:
    """The permutation that puts ``axes`` in NGFF's order (t, c, z, y, x)."""
    return sorted(range(len(axes)), key=lambda i: _NGFF_ORDER.index(axes[i]))


def writer():
    """ome-zarr-py's two writers. Its module makes a deprecated object when imported (a
    default argument): that warning is the library's, not the user's."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscale, write_multiscale_labels
    return write_multiscale, write_multiscale_labels


def _colours(palette) -> list[dict]:
    """NGFF image-label colours: the palette's own, as 8-bit RGBA."""
    if palette.hex:
        rgb = [[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette.hex]
    else:  # not RGB: a gray ramp, dark to light as the labels are
        k = palette.k
        rgb = [[round(255 * i / max(1, k - 1))] * 3 for i in range(k)]
    return [{"label-value": i + 1, "rgba": [*c, 255]} for i, c in enumerate(rgb)]


def write_ome_zarr(path, result, opened: Opened | None = None, properties=None):
    """Write ``result`` as an NGFF (OME-Zarr 0.5) image at ``path``: the quantized
    pyramid, and its labels as ``labels/clusters`` (every level, with the palette's
    colours). Returns the finest level's pixel count per label (1..K), counted in the
    same pass as the writes.

    ``opened``: the input's axes and scales (else ``y, x`` and a channel axis where the
    result has one, in pixels). ``properties(counts)``: one dict per label 1..K (the
    measurement table's rows), kept as image-label properties. Written beside ``path``
    and renamed into place: a failed write leaves nothing; an existing ``path`` is
    refused.
    """
    import dask
    import dask.array as da
    import zarr

    write_multiscale, write_multiscale_labels = writer()

    path = file_path(path)
    if os.path.lexists(path):
        raise FileError(f"{path!r} exists: choose a new path for the OME-Zarr image")
    if not hasattr(result, "quantized") or not hasattr(result, "palette"):
        raise TypeError(f"result must be a QuantizeResult, got {type(result).__name__}")
    quantized = result.quantized if isinstance(result.quantized, list) else [result.quantized]
    labels = result.labels if isinstance(result.labels, list) else [result.labels]
    if opened is None:
        ndim = quantized[0].ndim
        axes = "yx"
        if result.channel_axis is not None:  # where the result has it (3-D: else refused)
            at = result.channel_axis % ndim if ndim == 3 else 2
            axes = axes[:at] + "c" + axes[at:]
        if ndim != len(axes):
            raise FileError(f"cannot write {path!r}: give the axes of a {ndim}-D image")
        scales = [tuple(quantized[0].shape[i] / q.shape[i] if a in "yx" else 1.0
                        for i, a in enumerate(axes)) for q in quantized]  # fmt: skip
        units = (None,) * len(axes)
    else:
        axes, scales, units = opened.axes, opened.scales, opened.units
        if tuple(quantized[0].shape) != tuple(opened.levels[0].shape):
            raise ValueError(
                f"opened: the result {tuple(quantized[0].shape)} is not of the opened image "
                f"{tuple(opened.levels[0].shape)} (axes {axes})"
            )
    origin = (0.0,) * len(axes) if opened is None or opened.origin is None else opened.origin
    if "?" in axes:
        raise FileError(f"cannot write {path!r}: an axis NGFF has no name for ({axes})")
    order = _ngff_order(axes)
    ngff_axes = [_axis(axes[i], units[i]) for i in order]
    image = [da.transpose(da.asarray(q), order) for q in quantized]
    # the finest level's pixel size; ome-zarr-py scales each level by its shape
    step = {axes[i]: float(scales[0][i]) for i in order}
    spatial = [i for i in order if axes[i] != "c"]
    label_order = [i - (axes.index("c") < i if "c" in axes else 0) for i in spatial]
    label_axes = [a for a in ngff_axes if a["name"] != "c"]
    label_levels = [da.transpose(da.asarray(lab), label_order) for lab in labels]
    label_step = {axes[i]: step[axes[i]] for i in spatial}
    transaction = Transaction()
    try:
        tmp = transaction.stage_folder(path, new=True)
        root = zarr.open_group(tmp, mode="w")
        writes = write_multiscale(image, root, axes=ngff_axes, name=os.path.basename(path),
                                  scale=step, compute=False)  # fmt: skip
        writes += write_multiscale_labels(
            label_levels, root, name="clusters", axes=label_axes, compute=False,
            scale=label_step, label_metadata={"colors": _colours(result.palette)},
        )  # fmt: skip
        *_, counts = dask.compute(*writes, result.counts)  # one pass: shared chunk tasks
        counts = np.asarray(counts, np.int64)
        _place(root, [origin[i] for i in order])
        _place(zarr.open_group(os.path.join(tmp, "labels", "clusters"), mode="r+"),
               [origin[i] for i in spatial])  # fmt: skip
        group = zarr.open_group(os.path.join(tmp, "labels"), mode="r+")
        ome = dict(group.attrs.get("ome", {}))
        ome.setdefault("version", root.attrs["ome"]["version"])  # NGFF asks for it here too
        group.attrs["ome"] = ome
        if properties is not None:
            clusters = zarr.open_group(os.path.join(tmp, "labels", "clusters"), mode="r+")
            ome = dict(clusters.attrs["ome"])
            rows = _properties(properties(counts), result.palette.k)
            ome["image-label"] = {**ome["image-label"], "properties": [
                {"label-value": i + 1, **row} for i, row in enumerate(rows)]}  # fmt: skip
            clusters.attrs["ome"] = ome
        root.attrs["napari_kquant"] = {"written_by": "kquant", "k": result.palette.k}
        transaction.commit()
    except OSError as e:
        raise FileError(f"cannot write {path!r}: {e.strerror or e}") from None
    finally:
        transaction.abort()
    return counts


def _place(group, origin) -> None:
    """Each level's NGFF translation: ``origin`` (the finest level's, per axis in the
    group's order) plus half of how much larger the level's pixels are than the finest
    (pixel centres). In place of ome-zarr-py's, which leaves the origin out and gives
    the half-pixel offsets in finest pixels whatever their size."""
    ome = json.loads(json.dumps(group.attrs["ome"]))
    datasets = ome["multiscales"][0]["datasets"]
    finest = None
    for dataset in datasets:
        scale = next(t["scale"] for t in dataset["coordinateTransformations"]
                     if t["type"] == "scale")  # fmt: skip
        finest = finest or scale
        shift = [o + (s - f) / 2 for o, s, f in zip(origin, scale, finest, strict=True)]
        if not all(math.isfinite(v) for v in shift):  # JSON has no Infinity
            raise FileError(f"the levels' positions overflow a float: {shift}")
        dataset["coordinateTransformations"] = [{"type": "scale", "scale": scale}]
        if any(shift):
            dataset["coordinateTransformations"].append(
                {"type": "translation", "translation": shift}
            )
    group.attrs["ome"] = ome


def _properties(rows, k) -> list[dict]:
    """``properties(counts)``' rows: K dicts of JSON values (no NaN: JSON has none)."""
    try:
        rows = list(rows)
        json.dumps(rows, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"properties must return {k} dicts of JSON values (no NaN): {e}"
        ) from None
    if len(rows) != k or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"properties must return {k} dicts, one per label, got {rows!r:.80}")
    if any("label-value" in row for row in rows):
        raise ValueError("properties: 'label-value' is written by write_ome_zarr (1..K)")
    return rows


def _axis(name: str, unit: str | None) -> dict:
    kind = {"t": "time", "c": "channel"}.get(name, "space")
    axis = {"name": name, "type": kind}
    if unit is not None and kind == "space":
        axis["unit"] = _UNITS.get(unit, unit)
    return axis
