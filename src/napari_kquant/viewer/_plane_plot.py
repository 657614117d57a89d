"""The per-plane plot of a stack's result: each cluster's share per plane in the cluster
colours, with a legend and a marker at the plane on screen that follows napari's dims
slider, in napari's theme. Drawn a turn of the event loop after it is asked for."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..engine._measure import share_curves
from ._layers import palette_of, plane_axis_names
from ._plots import alive, notifying, outline, plot_canvas, swatches, themed_axes

#: The plot shows at most this many clusters (the largest).
MAX_LINES = 24
_NOTHING = object()


class PlanePlot(QWidget):
    """The plot's place in the Results tab; hidden when the shown result is no stack."""

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self._viewer = viewer
        QVBoxLayout(self).setContentsMargins(0, 0, 0, 0)
        self.setVisible(False)
        self.layer = None  # the result layer plotted
        self.plot = None  # a matplotlib canvas, made when a stack is first shown
        self._marker = None  # the line at the plane on screen
        self._plane_axis = None  # the viewer axis the plot's x is
        self._pending = _NOTHING  # the record whose plot is to be drawn next turn
        self._record = None  # the record drawn last (redrawn when napari's theme changes)
        viewer.dims.events.current_step.connect(notifying(self._follow_plane))
        viewer.events.theme.connect(notifying(self._theme_changed))

    def _theme_changed(self, event=None) -> None:
        if alive(self) and self.plot is not None and self._record is not None:
            self.later(self.layer, self._record)

    def later(self, layer, record) -> None:
        """Plot ``layer``'s ``record`` (None: nothing) in a later turn of the event loop
        (the first one costs a layout and a matplotlib draw: not in the same turn as new
        layers); the latest wins."""
        self.layer = layer
        first = self._pending is _NOTHING
        self._pending = record
        if first:
            QTimer.singleShot(0, self._plot_pending)

    def _plot_pending(self) -> None:
        if not alive(self):
            return
        record, self._pending = self._pending, _NOTHING
        if record is not _NOTHING:
            self._record = record if self.layer is not None else None
            self._draw(self._record)

    def _draw(self, record) -> None:
        counts = None if record is None else np.asarray(record["plane_counts"])
        one_plane = record is not None and bool(record.get("slice"))  # a current-slice run
        if counts is None or counts.ndim < 2 or counts.shape[0] < 2 or one_plane:  # no plot
            self.setVisible(False)
            self._marker = self._plane_axis = None
            return
        from matplotlib.ticker import MaxNLocator

        if self.plot is None:
            self.plot = plot_canvas()
            self.layout().addWidget(self.plot)
        self.setVisible(True)
        background = record.get("background", ())
        shares = share_curves(counts, background)
        colours = swatches(self.layer, palette_of(self.layer))
        axes, theme = themed_axes(self.plot, self._viewer)
        shown = [label for label in range(1, shares.shape[1] + 1) if label not in background]
        if len(shown) > MAX_LINES:  # the largest clusters only: a readable plot, drawn fast
            total = np.nansum(shares, axis=0)
            shown = sorted(sorted(shown, key=lambda label: -total[label - 1])[:MAX_LINES])
            axes.set_title(f"the {MAX_LINES} largest clusters", fontsize=8)
        for label in shown:
            colour = colours[label - 1]
            axes.plot(100 * shares[:, label - 1], color=colour, label=str(label),
                      marker="." if len(shares) < 30 else None,
                      path_effects=outline(colour, theme))  # fmt: skip
        self._plane_axis = self._first_plane_axis()
        step = (
            self._viewer.dims.current_step[self._plane_axis] if self._plane_axis is not None else 0
        )
        self._marker = axes.axvline(step, color=theme["text"], linestyle=":", linewidth=1)
        axis = self._plane_axis  # named as napari's dims slider names it
        xlabel = self._viewer.dims.axis_labels[axis] if axis is not None else None
        if xlabel is not None and str(xlabel).lstrip("-").isdigit():  # napari's '-3': unnamed
            xlabel = None
        axes.set_xlabel(xlabel or plane_axis_names(record, self.layer)[0], fontsize=8)
        axes.set_ylabel("% of foreground" if background else "% of clustered pixels", fontsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # plane indices
        axes.legend(
            title="cluster",
            fontsize=6,
            title_fontsize=6,
            ncol=2 if len(shown) > 12 else 1,
            facecolor=theme["background"],
            edgecolor=theme["foreground"],
            labelcolor=theme["text"],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
        )
        axes.get_legend().get_title().set_color(theme["text"])
        self.plot.draw_idle()

    def _first_plane_axis(self):
        """The viewer axis of the plot's x: the result layer's first plane axis."""
        if self.layer is None:
            return None
        offset = self._viewer.dims.ndim - self.layer.ndim  # napari aligns axes at the end
        return offset if offset >= 0 else None

    def _follow_plane(self, event=None) -> None:
        """Move the plot's marker to the plane on screen."""
        if self._marker is None or self._plane_axis is None or not alive(self):
            return
        step = self._viewer.dims.current_step
        if self._plane_axis < len(step):
            self._marker.set_xdata([step[self._plane_axis]] * 2)
            self.plot.draw_idle()
