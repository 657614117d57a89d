"""The dock's "Suggest K" and "live", beside K: the error curve of K = 2..32 on the chosen
image, drawn in the Results tab with the knee and the target marked; clicking a point sets K.

The curve is `analysis.k_curve`, run in a worker thread (cancellable, with progress);
nothing is computed here but the drawing. matplotlib is imported when the first curve
is drawn.
"""

from __future__ import annotations

import threading

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..analysis._choose import DEFAULT_KS, DEFAULT_TARGET, k_curve
from ._plots import alive, message, notifying, plot_canvas, start, themed_axes
from ._preview import PREVIEW_PIXELS, PREVIEW_SAMPLE

#: The curve's colours: visible on napari's dark and light themes alike.
LINE, KNEE, TARGET = "#4f9fe0", "#e0607e", "#c8b400"


class Stopped(Exception):
    """Raised from the curve's progress hook to stop it."""


class KView(QWidget):
    """The live tick, a Suggest K button and its progress; the curve once fitted, in
    `plot_box` (which the dock puts in its Results tab)."""

    drawn = Signal()  # a curve was drawn

    def __init__(self, read_image, set_k, viewer=None, parent=None):
        """``read_image()`` gives (data, quantize keywords) of the chosen image or raises
        ValueError; ``set_k(k)`` sets the form's K; ``viewer`` gives the plot its theme."""
        super().__init__(parent)
        self._read_image = read_image
        self._set_k = set_k
        self._viewer = viewer
        self.button = QPushButton("Suggest K")
        self.button.setToolTip(
            "Fit K = 2..32 on a 20,000-pixel sample and plot the error per K: the knee, and "
            f"the smallest K with a mean CIEDE2000 of at most {DEFAULT_TARGET:g}. Click a point "
            "to use that K."
        )
        self.button.clicked.connect(notifying(lambda: self.suggest()))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.live = QCheckBox("live")
        self.live.setToolTip(
            "Live preview: every change of the settings re-quantizes the plane on screen, "
            f"thinned to about {PREVIEW_PIXELS:,} pixels (one attempt on {PREVIEW_SAMPLE:,} of "
            "them), into a preview layer. Run still does the whole image."
        )
        row = QHBoxLayout()
        row.addWidget(self.live)
        row.addWidget(self.button)
        row.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        self.plot_box = QWidget()  # the curve's place in the Results tab, hidden until drawn
        QVBoxLayout(self.plot_box).setContentsMargins(0, 0, 0, 0)
        self.plot_box.setVisible(False)
        self.plot = None  # a matplotlib canvas, made with the first curve
        self.curve = None  # the last KCurve drawn
        self.worker = None
        self._stop = threading.Event()
        self._bridge = _Bridge()
        self._bridge.said.connect(self._progressed)
        if viewer is not None:  # the curve is redrawn in the new theme
            viewer.events.theme.connect(notifying(self._theme_changed))

    def _theme_changed(self, event=None) -> None:
        if alive(self) and self.curve is not None:
            self._draw(self.curve, switch=False)

    def suggest(self):
        """Fit the curve in a worker thread; pressed again while it runs: stop it."""
        if self.worker is not None:
            self._stop.set()
            return None
        try:
            data, keywords = self._read_image()
        except (TypeError, ValueError) as e:
            show_error(str(e))
            return None
        self._stop = stop = threading.Event()
        worker = create_worker(
            _curve, data, keywords, stop, self._bridge, _start_thread=False, _ignore_errors=True
        )
        worker.returned.connect(notifying(self._draw))
        worker.errored.connect(notifying(self._failed))
        worker.finished.connect(notifying(self._finished))
        self.worker = worker
        self.button.setText("Stop")
        self.status.setText("fitting K = 2..32 on a sample")
        start(worker)
        return worker

    def _progressed(self, message):
        if alive(self):
            self.status.setText(message)

    def _failed(self, error):
        if not alive(self):
            return
        if isinstance(error, Stopped):
            self.status.setText("stopped")
            return
        self.status.setText("failed: see the notification")
        show_error(message("Suggest K failed", error))

    def _finished(self):
        self.worker = None
        if alive(self):
            self.button.setText("Suggest K")

    def _draw(self, curve, switch=True):
        if not alive(self):
            return
        self.curve = curve
        if self.plot is None:
            self.plot = plot_canvas()
            self.plot.mpl_connect("pick_event", notifying(self._picked))
            self.plot.setToolTip("Click a point to use its K.")
            self.plot_box.layout().addWidget(self.plot)
        axes, theme = themed_axes(self.plot, self._viewer)
        colour = curve.delta_e is not None
        values = curve.delta_e if colour else curve.mse
        what = "mean CIEDE2000" if colour else "mean squared error"
        axes.plot(curve.ks, values, "-", color=LINE, zorder=1, label=what)
        axes.scatter(curve.ks, values, s=14, color=LINE, picker=True, pickradius=6, zorder=2)
        axes.axvline(curve.knee, color=KNEE, linestyle="--", linewidth=1,
                     label=f"knee K={curve.knee}")  # fmt: skip
        marks = [f"knee K={curve.knee}"]
        if colour and curve.target is not None:
            label = f"target {curve.target:g}"
            if curve.meets_target is not None:
                marks.append(f"ΔE00 ≤ {curve.target:g} from K={curve.meets_target}")
                label += f" (met from K={curve.meets_target})"
            axes.axhline(curve.target, color=TARGET, linestyle=":", linewidth=1, label=label)
        axes.set_xlabel("K", fontsize=8)
        axes.set_ylabel(what, fontsize=8)
        legend = axes.legend(fontsize=7, facecolor=theme["background"],
                             edgecolor=theme["foreground"], labelcolor=theme["text"])  # fmt: skip
        legend.get_frame().set_alpha(0.9)
        self.plot_box.setVisible(True)
        self.plot.draw_idle()
        self.status.setText("; ".join(marks) + ". Click a point (Results tab) to use its K.")
        if switch:
            self.drawn.emit()

    def _picked(self, event):
        if self.curve is None or not len(getattr(event, "ind", [])):
            return
        self.choose(int(self.curve.ks[event.ind[0]]))

    def choose(self, k: int) -> None:
        """Use this K (what clicking its point does)."""
        self._set_k(k)
        self.status.setText(f"K = {k}")


def _curve(data, keywords, stop, bridge):
    """Worker thread: the curve of the chosen image; progress through ``bridge``."""

    def report(fraction, message):
        if stop.is_set():
            raise Stopped
        try:
            bridge.said.emit(message)
        except RuntimeError:  # the dock was closed
            raise Stopped from None

    keywords = dict(keywords)
    colour = keywords.pop("colour")
    target = DEFAULT_TARGET if colour else None
    return k_curve(data, DEFAULT_KS, target=target, progress=report, **keywords)


class _Bridge(QObject):
    """Carries progress messages from the worker thread to the GUI thread."""

    said = Signal(str)
