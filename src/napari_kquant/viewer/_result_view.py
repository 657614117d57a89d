"""The dock's Results tab for one result layer: its measurement table, background marks,
cluster edits, Save table… and Save palette…, and for stacks a plot of each cluster's
share per plane (in `plot_box`) with a marker at the plane on screen.

Everything shown comes from the layer's metadata through `_layers.layer_table`
and `engine._measure`; nothing is computed here but layout. Selecting one cluster
shows it alone over the original image. matplotlib is imported when a stack is shown.
"""

from __future__ import annotations

import html

import numpy as np
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine._measure import plane_counts, suggest_background, totals
from ._layers import (
    MAX_KEPT_COUNTS,
    is_lazy_result,
    is_result,
    kept_counts,
    layer_state,
    layer_table,
    measured,
    palette_of,
    read_layer,
    restore_state,
    result_of_parts,
    run_layers,
    run_parts,
    show_edit,
    source_of,
    update_record,
)
from ._plane_plot import PlanePlot
from ._plots import alive, message, notifying, start, swatches
from ._writing import save_palette, save_table

#: The table's columns in the dock (the full table is in the clusters layer's features).
COLUMNS = ("", "label", "share", "area", "background")
BACKGROUND_COLUMN = COLUMNS.index("background")
#: Table rows visible without scrolling (the Results tab fits a 768-pixel screen).
TABLE_ROWS = 8
NO_RESULT = "No result yet: press Run (Quantize tab), or select a result layer."
LAZY_EDIT = (
    "A lazy result's clusters cannot be merged or split here: quantize an image in memory "
    "(or a smaller crop) to edit its clusters."
)


class ResultView(QWidget):
    """The measurement table of the selected result layer (and its plot, for stacks)."""

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self._viewer = viewer
        self.layer = None  # the result layer shown
        self.title = QLabel(NO_RESULT)
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.itemChanged.connect(notifying(self._item_changed))
        self.table.setToolTip(
            "Select a cluster to see it alone over the original; tick background clusters "
            "(glass, an empty slide) to leave them out of the foreground shares."
        )
        self.save_table_button = QPushButton("Save table…")
        self.save_table_button.setToolTip(
            "Write the table as CSV (every column of the clusters layer's features); for a "
            "stack, the per-plane table beside it as <name>-planes.csv."
        )
        self.save_palette_button = QPushButton("Save palette…")
        self.save_palette_button.setToolTip(
            "Write the palette (.json: exact; .gpl: GIMP; .csv) to apply to other images."
        )
        self.measure_button = QPushButton("Measure (one pass over the data)")
        self.measure_button.setToolTip("Count a lazy result's clusters: one pass over the data.")
        self.save_table_button.clicked.connect(notifying(lambda: self.save_table()))
        self.save_palette_button.clicked.connect(notifying(lambda: self.save_palette()))
        self.measure_button.clicked.connect(notifying(lambda: self.measure()))
        self.batch_button = QPushButton("Apply to many…")
        self.batch_button.setToolTip(
            "Apply this result's palette to a folder of image files, writing each quantized "
            "picture and its labels into an output folder, with one table of every file's "
            "clusters (as kquant --out-dir does: nothing is overwritten that was read)."
        )
        buttons = QHBoxLayout()
        for button in (self.save_table_button, self.save_palette_button, self.batch_button):
            buttons.addWidget(button)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the selected clusters into one (their weighted mean)")
        self.split_button = QPushButton("Split in 2")
        self.split_button.setToolTip("Re-cluster the selected cluster's pixels into 2")
        self.recolour_button = QPushButton("Recolour…")
        self.recolour_button.setToolTip(
            "Show the selected cluster in another colour (its centre and numbers stay)"
        )
        self.recolour_button.clicked.connect(notifying(lambda: self.recolour()))
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last merge or split")
        self.merge_button.clicked.connect(notifying(lambda: self.merge()))
        self.split_button.clicked.connect(notifying(lambda: self.split()))
        self.undo_button.clicked.connect(notifying(lambda: self.undo()))
        edits = QHBoxLayout()
        for button in (self.merge_button, self.split_button, self.recolour_button,
                       self.undo_button):  # fmt: skip
            edits.addWidget(button)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.ExtendedSelection)
        self.table.itemSelectionChanged.connect(notifying(self._selection_changed))
        self.actions = QWidget()  # edits and saves: shown when there is a result to act on
        actions = QVBoxLayout(self.actions)
        actions.setContentsMargins(0, 0, 0, 0)
        actions.addLayout(edits)
        actions.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.measure_button)
        layout.addWidget(self.actions)
        self.plot_box = PlanePlot(viewer)  # the per-plane plot (the dock's Results tab)
        self._hidden = None  # (layer, visible) of the quantized layer while a cluster is shown
        self._filling = False
        self._measuring = None
        self._undo = None  # (layer, state) before the last edit
        self._editing = None  # the edit's worker
        self.show_layer(None)

    # --- showing ------------------------------------------------------------------------------

    def show_layer(self, layer) -> None:
        """Show ``layer``'s result (None: nothing)."""
        self._unshow_cluster()  # the layer's own colours back before anything reads them
        self.table.clearSelection()
        self.layer = layer if layer is not None and is_result(layer) else None
        has = self.layer is not None
        self.actions.setVisible(has)
        self.save_palette_button.setEnabled(has)
        self.save_table_button.setEnabled(has and measured(self.layer))
        self.measure_button.setVisible(has and not measured(self.layer))
        self._selection_changed()
        self.table.setVisible(has)
        if not has:
            self.title.setText(NO_RESULT)
            self.plot_box.later(None, None)
            return
        self.refresh()

    def refresh(self) -> None:
        """Redraw the shown layer's table and plot from its metadata."""
        layer = self.layer
        if layer is None:
            return
        if layer not in self._viewer.layers:
            self.show_layer(None)
            return
        record = layer.metadata["napari_kquant"]
        palette = palette_of(layer)
        background = set(record.get("background", ()))
        try:
            table = layer_table(layer) if measured(layer) else None
        except (TypeError, ValueError) as e:  # a scale or units the table cannot use
            self.title.setText(f"<b>{html.escape(layer.name)}</b>: {html.escape(str(e))}")
            self.table.setRowCount(0)
            self.plot_box.later(None, None)
            return
        if table is None:
            summary = "lazy result: counts, shares and areas need a pass over all the data"
        elif record.get("compactness") is not None:
            summary = f"compactness {record['compactness']:.4g}"
        else:
            summary = "measured"
        suggestion = suggest_background(palette)
        hint = ""
        planes = len(layer.data[0].shape if layer.multiscale else layer.data.shape) - 2
        planes -= bool(getattr(layer, "rgb", False))
        if table is not None and planes > 0 and np.asarray(record["plane_counts"]).ndim == 1:
            hint += (
                "<br>Per-plane counts were not kept: planes x clusters is more than "
                f"{MAX_KEPT_COUNTS:,} numbers."
            )
        if suggestion is not None and suggestion not in background:
            hint = (
                f"<br>Cluster {suggestion} is near-white: if it is background (glass, an empty "
                "slide), tick its box to leave it out of the foreground shares."
            )
        self.title.setText(f"<b>{html.escape(layer.name)}</b>, k={palette.k}: {summary}{hint}")
        self._fill(layer, palette, table, background)
        self.plot_box.later(layer, record if table is not None else None)

    def rows(self) -> list[tuple]:
        """What the table shows: (swatch, label, share, area, background ticked) per row."""
        out = []
        for row in range(self.table.rowCount()):
            swatch = self.table.item(row, 0).background().color().name()
            texts = [self.table.item(row, c).text() for c in range(1, BACKGROUND_COLUMN)]
            ticked = self.table.item(row, BACKGROUND_COLUMN).checkState() == Qt.CheckState.Checked
            out.append((swatch, *texts, ticked))
        return out

    def _fill(self, layer, palette, table, background):
        self._filling = True
        try:
            self.table.setRowCount(palette.k)
            header = "area"
            if table is not None and "volume" in table:
                header = "volume"
            elif table is not None and _is_stack(layer):
                header = "area / plane"
            self.table.setHorizontalHeaderItem(COLUMNS.index("area"), QTableWidgetItem(header))
            colours = swatches(layer, palette)
            if table is not None:  # columns read once (a lookup per cell cost 0.1 ms each)
                share = np.asarray(table["foreground_share" if background else "share"])
                size = "volume" if "volume" in table else "area"
                sizes, units = np.asarray(table[size]), list(table[f"{size}_unit"])
            shown_only = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
            tickable = Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
            for row in range(palette.k):
                label = row + 1
                swatch = QTableWidgetItem("")
                swatch.setBackground(QColor(colours[row]))
                swatch.setToolTip(colours[row])
                cells = [swatch, QTableWidgetItem(str(label))]
                if table is None:
                    cells += [QTableWidgetItem("—"), QTableWidgetItem("—")]
                else:
                    shown = "bg" if label in background else f"{100 * share[label]:.1f}%"
                    area = f"{_number(sizes[label])} {units[label]}"
                    cells += [QTableWidgetItem(shown), QTableWidgetItem(area)]
                mark = QTableWidgetItem("")
                mark.setFlags(tickable)
                mark.setCheckState(
                    Qt.CheckState.Checked if label in background else Qt.CheckState.Unchecked
                )
                cells.append(mark)
                for column, item in enumerate(cells):
                    if column != BACKGROUND_COLUMN:
                        item.setFlags(shown_only)
                    self.table.setItem(row, column, item)
            self.table.resizeColumnsToContents()
            self._fit_rows()
        finally:
            self._filling = False

    def _fit_rows(self) -> None:
        """At least `TABLE_ROWS` rows visible (rows are as tall as napari's theme makes them)."""
        rows = max(self.table.rowHeight(0), self.table.verticalHeader().defaultSectionSize())
        header = self.table.horizontalHeader().sizeHint().height()
        frame = 2 * self.table.frameWidth()
        self.table.setMinimumHeight(TABLE_ROWS * rows + header + frame)

    @property
    def plot(self):
        """The per-plane plot's matplotlib canvas (None until a stack is shown)."""
        return self.plot_box.plot

    def save_table(self, path=None):
        """Write the shown result's table as CSV; for a stack, the per-plane table beside
        it as ``<name>-planes.csv``. Asks where when no path. Returns the paths written."""
        return save_table(self, self.layer, path)

    def save_palette(self, path=None):
        """Write the shown result's palette (.json, .gpl or .csv); ask where when no path."""
        return save_palette(self, self.layer, path)

    # --- actions ------------------------------------------------------------------------------

    def _item_changed(self, item) -> None:
        if self._filling or item.column() != BACKGROUND_COLUMN or self.layer is None:
            return
        marked = {
            row + 1
            for row in range(self.table.rowCount())
            if self.table.item(row, BACKGROUND_COLUMN).checkState() == Qt.CheckState.Checked
        }
        self.set_background(sorted(marked))

    def set_background(self, labels) -> None:
        """Mark these clusters (1..k) as background on the shown run's layers; the
        foreground shares, the features and the plot follow."""
        if self.layer is None:
            return
        from ..engine._measure import check_background

        try:
            marked = check_background(labels, palette_of(self.layer).k)
        except (TypeError, ValueError) as e:
            show_error(str(e))
            return
        update_record(self._viewer, self.layer, background=marked)
        self.refresh()

    def measure(self):
        """Count a lazy result's labels in a worker (one pass), then show its table."""
        layer = self.layer
        if layer is None or measured(layer) or self._measuring is not None:
            return None
        labels = next(
            (other for other in run_layers(self._viewer, layer) if isinstance(other, Labels)),
            None,
        )
        if labels is None:
            show_error(f"{layer.name!r}: measuring needs its clusters layer, which is gone.")
            return None
        k = palette_of(layer).k
        data = list(labels.data) if labels.multiscale else labels.data
        worker = create_worker(_count, data, k, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(notifying(lambda counts: self._measured(layer, counts)))
        worker.errored.connect(
            lambda e: show_error(message(f"Measuring {layer.name!r} failed", e))
        )
        worker.finished.connect(notifying(self._measure_finished))
        self._measuring = worker
        self.measure_button.setEnabled(False)
        self.measure_button.setText("Measuring…")
        start(worker)
        return worker

    def _measure_finished(self):
        self._measuring = None
        if not alive(self):
            return
        self.measure_button.setEnabled(True)
        self.measure_button.setText("Measure (one pass over the data)")

    def _measured(self, layer, counts):
        if not alive(self) or layer not in self._viewer.layers:
            return
        update_record(
            self._viewer, layer, plane_counts=kept_counts(counts),
            counts=totals(counts)[1:].tolist(),
        )  # fmt: skip
        if layer is self.layer:
            self.show_layer(layer)

    def selected(self) -> list[int]:
        """The labels of the selected rows."""
        return sorted({index.row() + 1 for index in self.table.selectionModel().selectedRows()})

    def select(self, labels) -> None:
        """Select these clusters' rows (what clicking them does)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QTableWidget.SelectionMode.MultiSelection)
        for label in labels:
            self.table.selectRow(label - 1)
        self.table.setSelectionMode(mode)

    def _selection_changed(self) -> None:
        chosen = self.selected() if self.layer is not None else []
        busy = self._editing is not None
        lazy = self.layer in self._viewer.layers and is_lazy_result(self._viewer, self.layer)
        why = LAZY_EDIT if lazy else ""
        self.merge_button.setEnabled(len(chosen) >= 2 and not busy and not lazy)
        self.split_button.setEnabled(len(chosen) == 1 and not busy and not lazy)
        self.merge_button.setToolTip(why or "Merge the selected clusters into one (their mean)")
        self.split_button.setToolTip(why or "Re-cluster the selected cluster's pixels into 2")
        self.recolour_button.setEnabled(len(chosen) == 1 and not busy)
        self.undo_button.setEnabled(self._undo is not None and not busy)
        if len(chosen) == 1:
            self._show_cluster(chosen[0])
        else:
            self._unshow_cluster()

    def _show_cluster(self, label: int) -> None:
        """The cluster alone over the original, in a colour that stands out from its own
        (the run's quantized layer, which has the cluster colours, is hidden meanwhile).
        Clearing the selection puts the layers back as they were."""
        clusters = self._clusters()
        if clusters is None:
            return
        if self._hidden is None:
            quantized = [other for other in run_layers(self._viewer, self.layer)
                         if not isinstance(other, Labels) and other.visible]  # fmt: skip
            self._hidden = {
                "clusters": clusters,
                "quantized": quantized,
                "colormap": clusters.colormap,
                "opacity": clusters.opacity,
            }
            for other in quantized:
                other.visible = False
        own = self._hidden["colormap"].color_dict.get(label, np.ones(4))
        highlight = DirectLabelColormap(
            color_dict={None: np.zeros(4), 0: np.zeros(4), label: [*standout(own[:3]), 1.0]}
        )
        clusters.colormap = highlight
        clusters.opacity = 1.0
        clusters.selected_label = label
        clusters.show_selected_label = True
        self._hidden["shown"] = clusters.colormap

    def _unshow_cluster(self) -> None:
        """Back to every cluster in its colours, and the quantized layer as it was."""
        if self._hidden is None:
            return
        hidden, self._hidden = self._hidden, None
        clusters = hidden["clusters"]
        if clusters in self._viewer.layers:
            if clusters.colormap is hidden.get("shown"):  # unless an edit gave it new colours
                clusters.colormap = hidden["colormap"]
            clusters.opacity = hidden["opacity"]
            clusters.show_selected_label = False
        for other in hidden["quantized"]:
            if other in self._viewer.layers:
                other.visible = True

    def _clusters(self):
        if self.layer is None or self.layer not in self._viewer.layers:
            return None
        return next(
            (other for other in run_layers(self._viewer, self.layer) if isinstance(other, Labels)),
            None,
        )

    def merge(self, labels=None):
        """Merge the selected clusters (or ``labels``) into one, in a worker thread."""
        labels = self.selected() if labels is None else list(labels)
        return self._edit("merge", labels)

    def split(self, label=None, n=2):
        """Split the selected cluster (or ``label``) into ``n``, in a worker thread."""
        chosen = self.selected() if label is None else [label]
        return self._edit("split", chosen, n)

    def recolour(self, label=None, colour=None):
        """Show the selected cluster (or ``label``) in ``colour`` ("#rrggbb"; asks when
        None); its centre and numbers stay."""
        chosen = self.selected() if label is None else [label]
        if len(chosen) != 1:
            show_error("Select one cluster to recolour.")
            return None
        if colour is None:
            from qtpy.QtWidgets import QColorDialog

            picked = QColorDialog.getColor(parent=self, title=f"Colour of cluster {chosen[0]}")
            if not picked.isValid():
                return None
            colour = picked.name()
        return self._edit("recolour", chosen, colour=colour)

    def put_away(self) -> None:
        """Before the shown run's layers change (a new run): every cluster in its colours."""
        self._unshow_cluster()

    def _edit(self, kind, labels, n=2, colour=None):
        layer = self.layer
        if layer is None or self._editing is not None:
            return None
        started = layer.metadata["napari_kquant"].get("run")
        try:
            parts = run_parts(self._viewer, layer)
            image = None
            if kind == "split":
                if len(labels) != 1:
                    raise ValueError("Select one cluster to split.")
                source = source_of(self._viewer, layer)
                if source is None:
                    name = layer.metadata["napari_kquant"]["source"]
                    raise ValueError(
                        f"Splitting needs the source image {name!r}, which is not in the viewer."
                    )
                image, _ = read_layer(source)
                image = (image, -1 if source.rgb else None)
            elif kind == "merge" and len(labels) < 2:
                raise ValueError("Select two or more clusters to merge.")
        except (TypeError, ValueError) as e:
            show_error(str(e))
            return None
        worker = create_worker(
            _apply_edit, kind, parts, labels, n, image, colour, _start_thread=False,
            _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(
            notifying(lambda edited: self._edited(layer, edited, kind, labels, started))
        )
        worker.errored.connect(lambda e: show_error(message(f"The {kind} failed", e)))
        worker.finished.connect(notifying(self._edit_finished))
        self._editing = worker
        self._selection_changed()
        self.title.setText(f"{self.title.text()}<br>{kind} in progress…")
        start(worker)
        return worker

    def _edit_finished(self):
        self._editing = None
        if alive(self):
            self._selection_changed()

    def _edited(self, layer, edited, kind, labels, started=None):
        if not alive(self) or layer not in self._viewer.layers:
            return
        run_id = layer.metadata["napari_kquant"].get("run")
        if started is not None and run_id != started:  # a new run replaced what was edited
            show_error(f"The {kind} was not applied: a new run replaced {layer.name!r} since.")
            return
        self._unshow_cluster()  # undo keeps the layers' own colours, not the highlight
        self._undo = (layer, run_id, layer_state(self._viewer, layer))
        what = f"merge {labels}" if kind == "merge" else f"{kind} {labels[0]}"
        show_edit(self._viewer, layer, edited, what)
        self.table.clearSelection()
        if layer is self.layer:
            self.show_layer(layer)

    def undo(self) -> None:
        """Put back the run's layers as they were before the last edit (one step)."""
        if self._undo is None or self._editing is not None:
            return
        layer, run_id, state = self._undo
        self._undo = None
        if (
            layer not in self._viewer.layers
            or layer.metadata["napari_kquant"].get("run") != run_id
        ):
            show_error("Nothing to undo: the layers were replaced by a new run since the edit.")
            self._selection_changed()
            return
        restore_state(state)
        if layer is self.layer:
            self.show_layer(layer)
        self._selection_changed()


def _is_stack(layer) -> bool:
    """Whether a result covers several planes (its table's areas are means per plane)."""
    ndim = layer.ndim - bool(getattr(layer, "rgb", False))
    return ndim > 2 and not layer.metadata["napari_kquant"].get("slice")


def standout(rgb) -> list[float]:
    """Of yellow, magenta and cyan, the colour farthest from ``rgb`` (0-1): a cluster
    shown alone stands out from the original, whose colours are near its own."""
    rgb = np.asarray(rgb, float)
    options = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    return options[np.argmax(((options - rgb) ** 2).sum(axis=1))].tolist()


def _number(value: float) -> str:
    """An area for the dock: 12,345 or 0.1234."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _apply_edit(kind, parts, labels, n, image, colour):
    """Worker thread: the edited result (an operation of `_edit`), its counts taken."""
    from ..analysis._edit import merge, recolour, split

    result = result_of_parts(*parts)
    if kind == "merge":
        edited = merge(result, labels)
    elif kind == "recolour":
        edited = recolour(result, labels[0], colour)
    else:
        data, channel_axis = image
        edited = split(result, np.asarray(data), labels[0], n, channel_axis=channel_axis)
    np.asarray(edited.plane_counts)  # counted here (cached), not while the layers update
    return edited


def _count(data, k):
    """Worker thread: the per-plane counts of a lazy label image (one pass)."""
    return np.asarray(plane_counts(data, k))
