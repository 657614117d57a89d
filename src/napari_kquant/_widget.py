"""The dock widget: a form over `quantize`, run in a worker thread.

No ``from __future__ import annotations`` here: magicgui reads the form from the
annotations of `options`, which must be real objects, not strings.
"""

import html
import threading
from typing import Annotated, Literal

import napari
from magicgui import magicgui
from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from ._layers import add_or_update, cluster_colours, current_slice, output_layers, read_layer
from ._layout import is_lazy
from ._options import (
    COLOR_SPACES,
    CRITERIA,
    DEFAULT_ATTEMPTS,
    DEFAULT_SAMPLE,
    INITS,
)
from ._quantize import quantize

SCOPES = ("whole stack, one palette", "current slice only")
OUTPUT_CHOICES = {
    "quantized image + cluster labels": ("quantized", "clusters"),
    "quantized image": ("quantized",),
    "cluster labels": ("clusters",),
}


def options(
    image: napari.layers.Image,
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
        int,
        {
            "min": 1,
            "max": 100_000_000,
            "step": 1000,
            "tooltip": "Fit on this many random pixels, then give every pixel its nearest centre.",
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
            "tooltip": "Cluster RGB values, or CIE L*a*b* (perceptual; RGB images only).",
        },
    ] = "rgb",
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


class Cancelled(Exception):
    """Raised from the progress hook to stop a run."""


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued signal)."""

    progressed = Signal(float, str)


class KQuantWidget(Container):
    """K-means quantization of an Image layer; results as Image and Labels layers."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.form = magicgui(options, call_button=False, persist=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=1000, value=0)
        self.status = Label(value="")
        self.palette = Label(value="")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal")
        buttons.margins = (0, 0, 0, 0)
        super().__init__(
            widgets=[self.form, buttons, self.progress, self.status, self.palette], labels=False
        )
        self.palette.native.setWordWrap(True)
        self.worker = None
        self._stop = threading.Event()
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        viewer.layers.selection.events.active.connect(self._follow_active)
        self.reset_choices()
        self._follow_active()

    def _follow_active(self, event=None):
        """Quantize the active layer, unless it is one of our own results."""
        active = self._viewer.layers.selection.active
        ours = active is not None and "napari_kquant" in active.metadata
        if active is not None and not ours and active in self.form.image.choices:
            self.form.image.value = active

    # --- running ------------------------------------------------------------------------------

    def run(self):
        """Start a run with the form's values (ignored while one is going)."""
        if self.worker is not None:
            return
        try:
            job = self._prepare()
        except (TypeError, ValueError) as e:
            show_error(str(e))
            return
        self._stop.clear()
        self.worker = create_worker(
            self._compute, *job, _start_thread=False, _ignore_errors=True
        )  # errors arrive at _on_errored
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.status.value = "starting"
        self.worker.start()

    def cancel(self):
        """Stop the current run at the next step; nothing is added."""
        if self.worker is not None:
            self._stop.set()
            self.status.value = "cancelling"

    def _prepare(self):
        """Read the form and the layers in the GUI thread; raise on bad input."""
        values = self.form.asdict()
        layer = values["image"]
        if layer is None:
            raise ValueError("There is no image layer to quantize: open or select an image.")
        fixed = None
        if values["scope"] == SCOPES[1]:
            fixed = current_slice(self._viewer, layer)
        data, keywords = read_layer(layer, values["mask"], fixed)
        params = {
            "k": values["k"],
            "criteria": values["criteria"],
            "max_iter": values["max_iter"],
            "epsilon": _number("epsilon", values["epsilon"], float, "auto"),
            "attempts": values["attempts"],
            "init": values["init"],
            "seed": _number("seed", values["seed"], int, ""),
            "sample": None if values["exact"] else values["sample"],
            "color_space": values["color_space"],
        }
        record = {
            **params,
            "mask": values["mask"].name if values["mask"] is not None else None,
            "scope": values["scope"],
            "slice": fixed,
        }
        return layer, data, keywords, params, record, OUTPUT_CHOICES[values["outputs"]]

    def _compute(self, layer, data, keywords, params, record, outputs):
        """Worker thread: the same `quantize` a script calls; nothing napari here."""

        def report(fraction, message):
            if self._stop.is_set():
                raise Cancelled
            self._bridge.progressed.emit(fraction, message)

        result = quantize(data, **params, **keywords, progress=report)
        return layer, result, record, outputs

    def _on_progress(self, fraction, message):
        self.progress.value = int(1000 * fraction)
        self.status.value = message

    def _on_returned(self, value):
        layer, result, record, outputs = value
        add_or_update(self._viewer, output_layers(layer, result, record, outputs))
        self._show_palette(layer, result)
        self.status.value = f"done: seed {result.seed}"

    def _on_errored(self, error):
        if isinstance(error, Cancelled):
            self.status.value = "cancelled: nothing was added"
            show_info("K-means quantization cancelled; no layer was changed.")
            return
        self.status.value = "failed: nothing was added"
        show_error(f"K-means quantization failed: {error}")

    def _on_finished(self):
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _show_palette(self, layer, result):
        colours = cluster_colours(layer, result.centers)
        k = len(result.centers)
        if is_lazy(result.counts):  # lazy data: shares would need a pass over everything
            shares = [""] * k
            summary = "lazy result (counts and compactness are computed on request)"
        else:
            total = max(int(result.counts.sum()), 1)
            shares = [f"{100 * count / total:.1f}%" for count in result.counts]
            summary = f"compactness {result.compactness:.4g}"
        rows = []
        for i, share in enumerate(shares, start=1):
            r, g, b = (round(255 * float(c)) for c in colours.color_dict[i][:3])
            rows.append(
                f'<tr><td style="background-color:#{r:02x}{g:02x}{b:02x}">'
                f"&nbsp;&nbsp;&nbsp;&nbsp;</td><td>&nbsp;{i}</td>"
                f'<td align="right">&nbsp;{share}</td></tr>'
            )
        self.palette.value = (
            f"<b>{html.escape(layer.name)}</b>, k={k}: {summary}<table>{''.join(rows)}</table>"
        )


def _number(name, text, kind, blank):
    text = text.strip()
    if text == blank:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a number" if kind is float else "a whole number"
        hint = f"'{blank}'" if blank else "blank"
        raise ValueError(f"{name} must be {what} or {hint}, got {text!r}") from None
