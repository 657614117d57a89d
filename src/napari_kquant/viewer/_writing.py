"""What the Results tab writes: the table as CSV (and a stack's per-plane table beside it),
the palette, and "Apply to many…" (a batch of files in a worker, and its combined table,
one row per file and cluster, with Save CSV…). Every file is written whole or not at all;
nothing is computed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QAbstractTableModel, Qt
from qtpy.QtWidgets import (
    QDialog,
    QFileDialog,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
)

from ..files._batch import Stopped, run_batch
from ..files._files import FileError, write_all
from ._layers import layer_table, measured, palette_of
from ._plots import message, notifying


class Cancelled(Exception):
    """Raised from a run's progress hook (or between a batch's files) to stop it."""


class _FrameModel(QAbstractTableModel):
    """A pandas DataFrame shown read-only: cells are formatted when they are drawn."""

    def __init__(self, frame, parent=None):
        super().__init__(parent)
        self._frame = frame
        self._columns = [str(c) for c in frame.columns]

    def rowCount(self, parent=None):
        return len(self._frame)

    def columnCount(self, parent=None):
        return len(self._columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._columns[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        value = self._frame.iat[index.row(), index.column()]
        if isinstance(value, float) and value != value:  # NaN: label 0 has no share
            return ""
        if self._columns[index.column()] == "share":
            return f"{100 * value:.1f}%"
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
        return str(value)


class BatchView(QDialog):
    """The table of a batch: file, label, hex, count, share, area."""

    def __init__(self, result, out_dir, parent=None):
        super().__init__(parent)
        self.setWindowTitle("K-means quantization: batch")
        self.result = result
        table = result.table
        said = f"{len(result.written)} files written into {out_dir}"
        if result.failed:
            said += f"; {len(result.failed)} failed: " + "; ".join(
                f"{Path(path).name}: {why}" for path, why in result.failed.items()
            )
        self.summary = QLabel(said)
        self.summary.setWordWrap(True)
        self.table = QTableView()  # a model over the frame: any number of rows, drawn lazily
        self.table.setModel(_FrameModel(table, self.table))
        self.table.verticalHeader().setVisible(False)
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setToolTip("Write this table as CSV (every file's clusters).")
        self.save_button.clicked.connect(notifying(lambda: self.save()))
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.save_button)
        self.resize(560, 420)

    def save(self, path=None):
        """Write the table as CSV (asks where when no path); returns the path written."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save table", "batch.csv", "CSV (*.csv)")
            if not path:
                return None
        if Path(path).suffix.lower() != ".csv":
            show_error(f"Save the table as a .csv file, not {Path(path).name!r}.")
            return None
        try:
            write_all([], [], texts=[(str(path), self.result.table.to_csv(index=False))])
        except (FileError, OSError) as e:
            show_error(message("Could not save the batch table", e))
            return None
        show_info(f"Batch table saved to {path}")
        return str(path)


def batch_job(batch, palette, stop, bridge):
    """Worker thread: a batch, its progress through ``bridge``; Cancel stops between files."""

    def report(fraction, message):
        try:
            bridge.progressed.emit(fraction, message)
        except RuntimeError:  # the dock was closed
            stop.set()

    try:
        return run_batch(batch, palette, progress=report, stop=stop.is_set)
    except Stopped:
        raise Cancelled from None


def save_table(parent, layer, path=None):
    """Write the shown result's table as CSV; for a stack, the per-plane table beside
    it as ``<name>-planes.csv``. Asks where when no path. Returns the paths written."""
    layer = layer
    if layer is None or not measured(layer):
        show_error("No measured result to save: run, or measure the lazy result first.")
        return None
    if path is None:
        path, _ = QFileDialog.getSaveFileName(
            parent, "Save table", f"{layer.name}.csv", "CSV (*.csv)"
        )
        if not path:
            return None
    if not isinstance(path, str | Path) or "\0" in str(path):
        show_error(f"Save the table to a file path, not {path!r}.")
        return None
    path = Path(path)
    if path.suffix.lower() != ".csv":
        show_error(f"Save the table as a .csv file, not {path.name!r}.")
        return None
    texts = [(str(path), layer_table(layer).to_csv(index=False))]
    if np.asarray(layer.metadata["napari_kquant"]["plane_counts"]).ndim > 1:
        planes = path.with_name(f"{path.stem}-planes.csv")
        text = layer_table(layer, per_plane=True).to_csv(index=False)
        if not _ours_or_new(planes, text):
            show_error(f"Not saved: {planes.name} exists and is not a table of napari-kquant.")
            return None
        texts.append((str(planes), text))
    try:
        write_all([], [], texts=texts)
    except (FileError, OSError) as e:
        show_error(f"Could not save the table: {e}")
        return None
    written = [p for p, _ in texts]
    show_info(f"Table saved to {', '.join(written)}")
    return written


def save_palette(parent, layer, path=None):
    """Write the shown result's palette (.json, .gpl or .csv); ask where when no path."""
    if layer is None:
        show_error("No result to save: run the quantization or select a result layer.")
        return None
    if path is None:
        path, _ = QFileDialog.getSaveFileName(
            parent, "Save palette", f"{layer.name}.json",
            "Palette (*.json);;GIMP palette (*.gpl);;CSV (*.csv)",
        )  # fmt: skip
        if not path:
            return None
    try:
        palette_of(layer).save(path)
    except (TypeError, ValueError, OSError) as e:
        show_error(str(e))
        return None
    show_info(f"Palette saved to {path}")
    return path


def _ours_or_new(path: Path, text: str) -> bool:
    """Whether a file beside the one the user chose may be written: it does not exist,
    or it is a per-plane table like ours (the same header), from an earlier save."""
    if not path.exists():
        return True
    try:
        with open(path, encoding="utf-8") as f:
            return path.is_file() and f.readline() == text.partition("\n")[0] + "\n"
    except (OSError, UnicodeDecodeError):
        return False
