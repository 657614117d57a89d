"""napari's console and scripts: `quantize_layer` (the dock's run in one call) and the
npe2 palette writer (File > Save Layers as .json or .gpl)."""

from __future__ import annotations

import os

import numpy as np

from ..engine._palette import Palette
from ._layers import OUTPUTS, add_or_update, output_layers, palette_of, read_layer, run, viewer_of


def as_palette(palette) -> Palette:
    """A `Palette`, from a palette, a palette file's path, or a result layer of this plugin."""
    if isinstance(palette, Palette):
        return palette
    if isinstance(palette, str | os.PathLike):
        return Palette.load(palette)
    if hasattr(palette, "metadata") and hasattr(palette, "data"):
        return palette_of(palette)
    raise TypeError(
        "palette must be a Palette, a palette file's path or a napari-kquant result layer, "
        f"got {type(palette).__name__}"
    )


#: Options that apply to a kept palette as well as to a new fit.
FINISH_OPTIONS = ("dither", "dither_strength", "min_size", "smooth")


def run_keywords(k, palette, options) -> dict:
    """What `run` needs: fit options for a new palette, or a kept palette; the finishing
    options (dithering, clean-up) with either."""
    taken = sorted({"channel_axis", "alpha"} & set(options))
    if taken:
        raise ValueError(
            f"{taken[0]} is the layer's to decide (RGB layers are clustered on their colours, "
            f"an alpha channel is left out); drop {', '.join(taken)}"
        )
    if palette is None:
        return {"k": k, **options}
    extra = sorted(key for key in options if key not in ("progress", *FINISH_OPTIONS))
    if extra:
        raise ValueError(
            f"palette= applies a kept palette, so fit options do not apply: {', '.join(extra)}"
        )
    finishing = {key: v for key, v in options.items() if key in FINISH_OPTIONS}
    return {"palette": as_palette(palette), **finishing}


def _plain(value):
    """An option as a JSON value for the metadata (numpy scalars and arrays included)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | tuple | list):
        return [_plain(v) for v in np.asarray(value, dtype=object).ravel().tolist()]
    return value


def quantize_layer(
    layer, k: int = 8, *, palette=None, mask=None, outputs=OUTPUTS, viewer=None, **options
):
    """Quantize a napari Image layer and add the results to its viewer.

    The one-line equivalent of the dock widget, for napari's console and
    scripts: it reads the layer, calls `napari_kquant.quantize` (or applies a
    kept palette), and adds (or refreshes) ``"<name> k=<k> quantized"`` and
    ``"<name> k=<k> clusters"`` layers that overlay the source.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer to quantize; RGB(A) layers are clustered on their colours.
    k : int
        Number of colours (ignored with ``palette``).
    palette : Palette, path, or napari layer, optional
        Apply this palette instead of fitting one: a `napari_kquant.Palette`, a
        palette file (.json, .gpl, .csv), or a result layer of an earlier run,
        so that label i means the same colour on both.
    mask : napari.layers.Labels or array_like of bool, optional
        Only pixels where the mask is non-zero (True) are clustered.
    outputs : sequence of {"quantized", "clusters"}
        Which layers to add.
    viewer : napari.Viewer, optional
        Where to add them; by default the viewer that holds ``layer``.
    **options
        Any other `napari_kquant.quantize` keyword (``seed``, ``sample``,
        ``color_space``, ...), when fitting.

    Returns
    -------
    list of napari.layers.Layer
        The added or refreshed layers.
    """
    import napari

    viewer = viewer or viewer_of(layer)
    if viewer not in napari.Viewer._instances:
        raise ValueError("viewer is closed: give an open viewer (or none: the layer's own)")
    if isinstance(outputs, str) or not hasattr(outputs, "__iter__"):
        raise TypeError(f"outputs must be a list of {OUTPUTS}, got {outputs!r}")
    outputs = tuple(outputs)
    if not outputs or not set(outputs) <= set(OUTPUTS):
        raise ValueError(f"outputs must be one or both of {OUTPUTS}, got {outputs!r}")
    keywords = run_keywords(k, palette, options)
    data, layout_keywords = read_layer(layer, mask)
    progress = options.get("progress")
    fit_keywords = {key: v for key, v in keywords.items() if key != "progress"}
    result = run(data, {**fit_keywords, **layout_keywords}, progress)
    params = {key: _plain(v) for key, v in fit_keywords.items() if key != "palette"}
    params["k"] = len(result.centers)
    if palette is not None:
        params["palette_from"] = _describe(palette)
    return add_or_update(viewer, output_layers(layer, result, params, outputs))


def _describe(palette) -> str:
    if isinstance(palette, str | os.PathLike):
        return os.fspath(palette)
    if hasattr(palette, "name") and hasattr(palette, "data"):
        return f"layer {palette.name}"
    return palette.name or "a palette"


def write_palette(path: str, data, meta: dict) -> list[str]:
    """npe2 writer: save the palette of a result layer (.json, .gpl: napari.yaml's writers;
    the dock's Save palette… writes .csv too)."""
    record = meta.get("metadata", {}).get("napari_kquant", {})
    if "palette" not in record:
        raise ValueError(
            f"layer {meta.get('name')!r} was not made by napari-kquant: it has no palette to save"
        )
    Palette.from_dict(record["palette"]).save(path)
    return [path]


# --- edits of a run's clusters ----------------------------------------------------------------
