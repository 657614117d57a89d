"""The dock's form: its fields, in groups (each group the signature of one function, read by
magicgui), which fields apply to which image, and how their values become `quantize`
keywords.

No ``from __future__ import annotations`` here: magicgui reads the form from the
annotations of the group functions, which must be real objects, not strings.
"""

from pathlib import Path
from typing import Annotated, Literal

import napari
from magicgui import magicgui
from psygnal import Signal

from ..core._options import (
    AUTO_SAMPLE_TEXT,
    COLOR_SPACES,
    CRITERIA,
    DEFAULT_ATTEMPTS,
    DEFAULT_SAMPLE,
    DITHERS,
    FAST_ATTEMPTS,
    FAST_MAX_ITER,
    FAST_SAMPLE_TEXT,
    INITS,
    MAX_SMOOTH,
    SPEEDS,
    finish,
)

SCOPES = ("whole stack, one palette", "current slice only")
NEW_PALETTE, FILE_PALETTE = "fit a new palette", "load a palette file"
#: The form fields that only matter when a new palette is fitted.
FIT_FIELDS = ("k", "speed", "criteria", "max_iter", "epsilon", "attempts", "init", "seed",
              "sample", "exact", "color_space", "white")  # fmt: skip
NO_DITHER = "none"
OUTPUT_CHOICES = {
    "quantized image + cluster labels": ("quantized", "clusters"),
    "quantized image": ("quantized",),
    "cluster labels": ("clusters",),
}


def essentials(
    image: Annotated[
        napari.layers.Image,
        {"tooltip": "The Image layer to quantize (RGB layers are clustered on their colours)."},
    ],
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
):
    """The essentials, always shown: the image, where the palette comes from, K."""


def fit_group(
    speed: Annotated[
        str,
        {
            "choices": list(SPEEDS),
            "tooltip": f"fast: a quick fit for web pictures (sample auto: {FAST_SAMPLE_TEXT}; "
            f"{FAST_ATTEMPTS} attempt; {FAST_MAX_ITER} iterations); choosing it sets max "
            "iter and attempts.",
        },
    ] = "default",
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
            f"centre; 'auto' = {AUTO_SAMPLE_TEXT} (fast: {FAST_SAMPLE_TEXT})."
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
):
    """How the palette is fitted (the Fit section)."""


def colour_group(
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
):
    """Where colours are compared (the Colour section; colour images only)."""


def output_group(
    outputs: Annotated[
        Literal[tuple(OUTPUT_CHOICES)], {"tooltip": "Which layers a run adds."}
    ] = "quantized image + cluster labels",
    dither: Annotated[
        str,
        {
            "choices": [NO_DITHER, *DITHERS],
            "tooltip": "Dither the quantized image (the labels stay each pixel's nearest "
            "colour): adaptive (error diffusion in flat areas only: the best looking), "
            "Floyd-Steinberg (everywhere), or an 8x8 Bayer pattern.",
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
):
    """What a run adds (the Outputs section): layers, dithering, clean-up."""


def where_group(
    mask: Annotated[
        napari.layers.Labels | None,
        {"tooltip": "Only pixels where this Labels layer is non-zero are clustered."},
    ] = None,
    scope: Annotated[
        Literal[SCOPES],
        {"tooltip": "For stacks: one palette over all planes, or the plane on screen."},
    ] = SCOPES[0],
):
    """Which pixels (the Mask and scope section)."""


#: The foldable sections under the essentials: (title, fields), folded when the dock opens.
SECTIONS = {
    "Fit": fit_group,
    "Colour space": colour_group,
    "Outputs": output_group,
    "Mask and scope": where_group,
}


SECTION_TIPS = {
    "Fit": "How K-means runs: speed, stopping criteria, attempts, initial centres, seed, sample.",
    "Colour space": "Where colours are compared: RGB, CIE L*a*b*, or optical density.",
    "Outputs": "Which layers a run adds, dithering of the picture, clean-up of the labels.",
    "Mask and scope": "Cluster only the pixels of a mask; for stacks, the plane on screen.",
}


class Form:
    """Every field of the dock, in groups: ``form.k``, ``form.dither`` ... whatever group
    holds it, `asdict` of all of them, one `changed` signal.

    The group forms are made by magicgui from the signatures above (persisted values
    off); the dock lays them out, the essentials first and the rest in foldable sections.
    """

    changed = Signal(object)

    def __init__(self):
        self.essentials = magicgui(essentials, call_button=False, persist=False)
        self.sections = {
            title: magicgui(group, call_button=False, persist=False)
            for title, group in SECTIONS.items()
        }
        for container in self.containers:
            container.changed.connect(self.changed.emit)

    @property
    def containers(self) -> list:
        return [self.essentials, *self.sections.values()]

    def __getattr__(self, name):
        if name.startswith("_") or name in ("essentials", "sections"):
            raise AttributeError(name)
        for container in self.containers:
            if name in container.asdict():
                return getattr(container, name)
        raise AttributeError(f"the dock has no field {name!r}")

    def asdict(self) -> dict:
        values = {}
        for container in self.containers:
            values.update(container.asdict())
        return values

    def reset_choices(self) -> None:
        for container in self.containers:
            container.reset_choices()


def applies(values: dict, layer) -> dict[str, bool]:
    """Which fields apply, for these form values and this image layer (None: none chosen):
    the dock shows only those. A field that does not apply is not used either (`fit_params`
    reads the colour space as "rgb" where it is hidden)."""
    fitting = values["palette"] == NEW_PALETTE
    colour = layer is not None and colour_channels(layer) == 3
    stack = layer is not None and spatial_ndim(layer) > 2
    return {
        "palette_file": values["palette"] == FILE_PALETTE,
        "k": fitting,
        "Fit": fitting,
        "Colour space": fitting and colour,
        "white": values["color_space"] == "od",
        "sample": not values["exact"],
        "epsilon": values["criteria"] != "max_iter",
        "dither_strength": values["dither"] != NO_DITHER,
        "scope": stack,
    }


def colour_channels(layer) -> int:
    """The colour channels of an Image layer: 3 for RGB and RGBA, 1 otherwise."""
    if not layer.rgb:
        return 1
    shape = (layer.data[0] if layer.multiscale else layer.data).shape
    return shape[-1] - (shape[-1] == 4)


def spatial_ndim(layer) -> int:
    """The layer's spatial dimensions (2 for a picture, 3 or more for a stack)."""
    return layer.ndim


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
        "speed": values["speed"],
    }


def run_params(values, layer) -> dict:
    """`fit_params` of the fields that apply to ``layer``: a hidden field is not read (the
    colour space of a gray image is "rgb", epsilon does not matter to max_iter alone, the
    white level only to od), so what it holds cannot block a run."""
    values = dict(values)
    if layer is not None and colour_channels(layer) != 3:
        values.update(color_space="rgb")
    if values["criteria"] == "max_iter":
        values.update(epsilon="auto")
    return fit_params(values)


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
