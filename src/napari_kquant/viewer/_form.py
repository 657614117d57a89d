"""The dock's form: its fields (the signature of `options`, read by magicgui) and how
their values become `quantize` keywords.

No ``from __future__ import annotations`` here: magicgui reads the form from the
annotations of `options`, which must be real objects, not strings.
"""

from pathlib import Path
from typing import Annotated, Literal

import napari

from ..core._options import (
    COLOR_SPACES,
    CRITERIA,
    DEFAULT_ATTEMPTS,
    DEFAULT_SAMPLE,
    DITHERS,
    INITS,
    MAX_SMOOTH,
    finish,
)

SCOPES = ("whole stack, one palette", "current slice only")
NEW_PALETTE, FILE_PALETTE = "fit a new palette", "load a palette file"
#: The form fields that only matter when a new palette is fitted.
FIT_FIELDS = ("k", "criteria", "max_iter", "epsilon", "attempts", "init", "seed", "sample",
              "exact", "color_space", "white")  # fmt: skip
NO_DITHER = "none"
OUTPUT_CHOICES = {
    "quantized image + cluster labels": ("quantized", "clusters"),
    "quantized image": ("quantized",),
    "cluster labels": ("clusters",),
}


def options(
    image: napari.layers.Image,
    palette: Annotated[
        str,
        {
            "choices": [NEW_PALETTE, FILE_PALETTE],
            "tooltip": "Fit a new palette, or apply a kept one (of an earlier result layer, "
            "or from a file) so that label i means the same colour everywhere.",
        },
    ] = NEW_PALETTE,
    palette_file: Annotated[
        Path,
        {
            "mode": "r",
            "filter": "Palettes (*.json *.gpl *.csv)",
            "tooltip": "A palette saved by napari-kquant (.json, .csv) or a GIMP palette (.gpl).",
            "visible": False,
        },
    ] = Path(),
    k: Annotated[int, {"min": 1, "max": 1024, "tooltip": "Number of colours (clusters)."}] = 8,
    criteria: Annotated[
        str,
        {
            "choices": list(CRITERIA),
            "tooltip": "Stop an attempt when centres move less than epsilon, after max "
            "iterations, or whichever comes first.",
        },
    ] = "eps+max_iter",
    max_iter: Annotated[
        int, {"min": 2, "max": 100, "tooltip": "Iterations per attempt (OpenCV: 2 to 100)."}
    ] = 100,
    epsilon: Annotated[
        str,
        {
            "tooltip": "Convergence tolerance in the image's units; 'auto' = 1/1000 of "
            "the value range."
        },
    ] = "auto",
    attempts: Annotated[
        int, {"min": 1, "max": 100, "tooltip": "Independent runs; the most compact wins."}
    ] = DEFAULT_ATTEMPTS,
    init: Annotated[
        str, {"choices": list(INITS), "tooltip": "How initial centres are chosen."}
    ] = "kmeans++",
    seed: Annotated[
        str, {"tooltip": "Blank for a random seed (recorded in the result's metadata)."}
    ] = "",
    sample: Annotated[
        str,
        {
            "tooltip": "Fit on this many random pixels, then give every pixel its nearest "
            "centre; 'auto' = 50,000, or 1,000 per cluster above K=50."
        },
    ] = DEFAULT_SAMPLE,
    exact: Annotated[
        bool,
        {
            "label": "all pixels (exact)",
            "tooltip": "Fit on every pixel in one cv2.kmeans run: exact, but slow on "
            "large images.",
        },
    ] = False,
    color_space: Annotated[
        str,
        {
            "choices": list(COLOR_SPACES),
            "tooltip": "Cluster RGB values, CIE L*a*b* (perceptual; RGB images only), or "
            "optical density (od: brightfield slides, clusters follow the stain amounts).",
        },
    ] = "rgb",
    white: Annotated[
        str,
        {
            "tooltip": "od only: the white level of clear glass. 'max' = the dtype's "
            "maximum, 'auto' = the brightest 1% of pixels, or a value (or R,G,B).",
        },
    ] = "max",
    dither: Annotated[
        str,
        {
            "choices": [NO_DITHER, *DITHERS],
            "tooltip": "Dither the quantized image (the labels stay each pixel's nearest "
            "colour): error diffusion, or an 8x8 Bayer pattern.",
        },
    ] = NO_DITHER,
    dither_strength: Annotated[
        float,
        {"min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "How much of the error is diffused."},
    ] = 1.0,
    min_size: Annotated[
        int,
        {
            "min": 0,
            "max": 10_000_000,
            "label": "min region (px)",
            "tooltip": "Clean labels: connected regions smaller than this join the "
            "neighbour they share the longest border with (0: off).",
        },
    ] = 0,
    smooth: Annotated[
        int,
        {
            "min": 0,
            "max": MAX_SMOOTH,
            "tooltip": "Clean labels first with a majority filter of this radius (0: off).",
        },
    ] = 0,
    mask: Annotated[
        napari.layers.Labels | None,
        {"tooltip": "Only pixels where this Labels layer is non-zero are clustered."},
    ] = None,
    scope: Annotated[
        Literal[SCOPES],
        {"tooltip": "For stacks: one palette over all planes, or the plane on screen."},
    ] = SCOPES[0],
    outputs: Annotated[
        Literal[tuple(OUTPUT_CHOICES)], {"tooltip": "Which layers a run adds."}
    ] = "quantized image + cluster labels",
):
    """The form's fields: this signature is the single source of the widget's inputs."""


def fit_params(values) -> dict:
    """The fit options the form holds (the `quantize` keywords), text fields parsed."""
    return {
        "k": values["k"],
        "criteria": values["criteria"],
        "max_iter": values["max_iter"],
        "epsilon": parse_number("epsilon", values["epsilon"], float, "auto"),
        "attempts": values["attempts"],
        "init": values["init"],
        "seed": parse_number("seed", values["seed"], int, ""),
        "sample": None if values["exact"] else parse_sample(values["sample"]),
        "color_space": values["color_space"],
        "white": parse_white(values["white"]) if values["color_space"] == "od" else None,
    }


def parse_white(text: str):
    """The white field: 'max' (None), 'auto', a value or R,G,B."""
    text = text.strip()
    if text in ("max", ""):
        return None
    if text == "auto":
        return "auto"
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise ValueError(f"white must be 'max', 'auto', a value or R,G,B, got {text!r}") from None
    return values[0] if len(values) == 1 else tuple(values)


def finish_params(values) -> dict:
    """Dithering and clean-up as `quantize` keywords (only those that do something),
    checked."""
    params = {
        "dither": None if values["dither"] == NO_DITHER else values["dither"],
        "dither_strength": values["dither_strength"],
        "min_size": values["min_size"] or None,
        "smooth": values["smooth"] or None,
    }
    done = finish(**params)
    return {key: v for key, v in done.record().items() if v is not None}


def parse_sample(text) -> int | str:
    """The sample field: 'auto', or a whole number (checked with the other fit options)."""
    text = str(text).strip()
    return "auto" if text == "auto" else parse_number("sample", text, int, "auto")


def parse_number(name, text, kind, blank):
    text = text.strip()
    if text == blank:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a number" if kind is float else "a whole number"
        hint = f"'{blank}'" if blank else "blank"
        raise ValueError(f"{name} must be {what} or {hint}, got {text!r}") from None
