"""Small Qt helpers shared by the dock's parts: plots in napari's theme, callbacks whose
errors become notifications, whether a widget still exists, and when it is undocked."""

from __future__ import annotations

import functools
import inspect
import logging

from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFrame, QScrollArea

#: Lines whose colour is closer than this to the plot's background (0-1 RGB distance)
#: get an outline in the foreground colour, so that a near-white cluster shows on white.
CLOSE = 0.25


def plot_canvas():
    """A small matplotlib canvas for the dock (matplotlib imported here, when first used)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    canvas = FigureCanvasQTAgg(Figure(figsize=(3.2, 2.2), layout="constrained"))
    canvas.setMinimumHeight(150)
    return canvas


def theme_colours(viewer) -> dict[str, str]:
    """napari's current theme as matplotlib colours: background, foreground, text."""
    from napari.utils.theme import get_theme

    theme = get_theme(viewer.theme if viewer is not None else "dark")
    return {
        "background": theme.background.as_hex(),
        "foreground": theme.foreground.as_hex(),
        "text": theme.text.as_hex(),
    }


def themed_axes(canvas, viewer):
    """Clear the canvas and give it one axes in napari's theme; returns (axes, colours)."""
    colours = theme_colours(viewer)
    figure = canvas.figure
    figure.clear()
    figure.set_facecolor(colours["background"])
    axes = figure.subplots()
    axes.set_facecolor(colours["background"])
    for spine in axes.spines.values():
        spine.set_color(colours["text"])
    axes.tick_params(colors=colours["text"], labelsize=7)
    axes.xaxis.label.set_color(colours["text"])
    axes.yaxis.label.set_color(colours["text"])
    axes.title.set_color(colours["text"])
    return axes, colours


def outline(colour: str, colours: dict[str, str]) -> list:
    """matplotlib path effects that keep a line of ``colour`` visible on the background."""
    from matplotlib import patheffects

    def rgb(hexa):
        return [int(hexa[i : i + 2], 16) / 255 for i in (1, 3, 5)]

    distance = (
        sum((a - b) ** 2 for a, b in zip(rgb(colour), rgb(colours["background"]), strict=True))
        ** 0.5
    )
    if distance >= CLOSE:
        return []
    return [patheffects.Stroke(linewidth=3, foreground=colours["text"]), patheffects.Normal()]


#: Workers still running, kept referenced until they finish: a dock (or viewer) closed
#: mid-run must not let Python delete a worker whose thread still reports to it.
_RUNNING: set = set()


def start(worker) -> None:
    """Start a napari worker, and keep it alive until its thread is done."""
    _RUNNING.add(worker)
    worker.finished.connect(lambda: _RUNNING.discard(worker))
    worker.start()


def alive(widget) -> bool:
    """False once a Qt widget was deleted (its dock or viewer closed): late signals from
    worker threads must then touch nothing."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def notifying(callback):
    """``callback`` for a Qt signal: an exception it raises becomes an error notification
    (short first line, the rest on expanding), never an abort of the Qt event loop."""

    takes = _positional(callback)

    @functools.wraps(callback)
    def call(*args):
        try:  # Qt signals may send more than the callback takes (clicked sends "checked")
            return callback(*args[:takes])
        except Exception as e:  # shown to the user, logged with its traceback
            logging.getLogger("napari_kquant").exception("in %s", callback.__name__)
            show_error(message("K-means quantization: something went wrong", e))
            return None

    return call


def warnings_shown(dock, worker):
    """A slot for ``worker.warned``: its ``UserWarning``s (K above the distinct colours,
    ...) as napari notifications, each once, while it is ``dock.worker`` (not cancelled);
    napari's worker only collects them."""
    said = set()

    def show(warning: tuple) -> None:
        text = str(warning[0])
        if worker is dock.worker and warning[1] is UserWarning and text not in said:
            said.add(text)
            show_warning(f"K-means quantization: {text}")

    return show


def _positional(callback) -> int:
    """How many positional arguments ``callback`` takes (any number: a large one)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return 1 << 16
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return 1 << 16
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def message(headline: str, error) -> str:
    """A notification: a short first line, then the whole error (shown on expanding)."""
    return f"{headline}\n{error}"


def swatches(layer, palette) -> list[str]:
    """``#rrggbb`` per cluster: the clusters layer's own colours, else the palette's."""
    colormap = getattr(layer, "colormap", None)
    if hasattr(colormap, "color_dict"):
        colours = [colormap.color_dict[i][:3] for i in range(1, palette.k + 1)]
        return ["#{:02x}{:02x}{:02x}".format(*(round(255 * float(c)) for c in rgb))
                for rgb in colours]  # fmt: skip
    return palette.hex or ["#808080"] * palette.k


class _Scroll(QScrollArea):
    """A vertical scroll area at least as wide as its page needs, scroll bar included (a
    plain one let the dock's default width clip the page's right side under the bar)."""

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        if self.widget() is not None:
            bar = self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
            hint.setWidth(max(hint.width(), self.widget().minimumSizeHint().width() + bar))
        return hint

    def eventFilter(self, watched, event):
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the page's needs changed (a plot, a table): ask again
        return super().eventFilter(watched, event)


def scrolling(page) -> QScrollArea:
    """``page`` in a vertical scroll area that takes the dock's width."""
    scroll = _Scroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(page)
    return scroll


class _Undocked(QObject):
    def __init__(self, widget, callback):
        super().__init__(widget)  # lives as long as the widget
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self._callback()
        return False


def when_undocked(widget, callback) -> None:
    """``callback()`` when ``widget`` is taken out of its window: napari's dock "x" gives
    it no parent (it is not destroyed, so ``destroyed`` never comes)."""
    _Undocked(widget, notifying(callback))
