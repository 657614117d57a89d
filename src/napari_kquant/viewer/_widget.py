"""The dock widget: the form (`_form`) over `quantize`, run in a worker thread; the result
view (`_result_view`) and the K curve (`_k_view`) below it.

napari injects the viewer by the annotation of ``KQuantWidget.__init__``: a real object here,
so no ``from __future__ import annotations``.
"""

import os
import threading
from functools import partial
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..core._layout import is_lazy
from ..core._options import settings, speed_defaults
from ..engine._palette import Palette
from ..files._batch import images_in, plan_batch
from ._form import (
    FILE_PALETTE,
    NEW_PALETTE,
    OUTPUT_CHOICES,
    SCOPES,
    SECTION_TIPS,
    Form,
    applies,
    colour_channels,
    finish_params,
    parse_sample,
    run_params,
    spatial_ndim,
)
from ._k_view import KView
from ._layers import (
    PREVIEW,
    add_or_update,
    current_slice,
    draw_preview,
    is_result,
    layer_data,
    output_layers,
    palette_of,
    read_layer,
    run,
    run_name,
)
from ._plots import alive, message, notifying, scrolling, start, warnings_shown, when_undocked
from ._preview import preview
from ._result_view import ResultView
from ._warm import quitting, warm_up
from ._writing import BatchView, Cancelled, batch_job


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued signal)."""

    progressed = Signal(float, str)


class KQuantWidget(Container):
    """K-means quantization of an Image layer; results as Image and Labels layers."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.form = Form()
        self.run_button = PushButton(text="Run")
        self.run_button.tooltip = (
            "Quantize the image with these settings: adds a quantized image and a cluster "
            "labels layer (or refreshes those of an earlier run with the same K)."
        )
        self.run_button.native.setDefault(True)  # the dock's main action
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.cancel_button.tooltip = "Stop the run: control comes back at once, nothing is added."
        self.progress = ProgressBar(min=0, max=1000, value=0)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # a long path never widens the window
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal")
        buttons.margins = (0, 0, 0, 0)
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.view = ResultView(viewer)  # the shown result: table, edits, saves, plot
        self.k_view = KView(self._curve_input, self._set_k, viewer)  # Suggest K, live
        self.sections = {}  # title: the foldable section holding that group of fields
        self.tabs = QTabWidget()
        self.tabs.addTab(self._settings_page(), "Quantize")
        self.tabs.addTab(self._results_page(), "Results")
        self.tabs.setTabToolTip(1, "The shown result's clusters: table, edits, plots, saving.")
        self.native.layout().insertWidget(0, self.tabs, 1)
        self.k_view.drawn.connect(lambda: self.tabs.setCurrentIndex(1))
        self._preview_worker = None  # the live preview's run
        self._preview_again = False  # settings changed while it ran: run once more after
        self._keep_image = False  # the selection is put back after a preview: not followed
        self.previews = 0  # live previews computed (coalesced: fewer than the changes)
        self.form.changed.connect(notifying(self._settings_changed))
        self.form.changed.connect(notifying(self._show_fields))
        self.form.speed.changed.connect(notifying(self._speed_changed))
        self.k_view.live.toggled.connect(notifying(self._live_toggled))
        self.worker = None  # the current run's worker; None when idle or cancelled
        self._drawing = None  # the worker whose result layers are being added
        self._abandoned = set()  # cancelled workers still running: kept alive until done
        self._stop = threading.Event()
        self._bridge = _Bridge()
        # numba's first compiles (ours, napari's label colormaps): now, not in a first run;
        # not a daemon: napari closed at once waits for it (compiling or importing at exit,
        # the process could abort: "terminate called without an active exception")
        quitting.clear()
        threading.Thread(target=warm_up, name="kquant-warm-up", daemon=False).start()
        QApplication.instance().aboutToQuit.connect(quitting.set)  # it stops early
        self._bridge.progressed.connect(self._on_progress)
        self.view.batch_button.clicked.connect(notifying(self._apply_to_many_clicked))
        self.batch_view = None  # the last batch's table
        self._batch_out = None  # the running batch's output folder
        self.run_button.changed.connect(notifying(self.run))
        self.cancel_button.changed.connect(notifying(self.cancel))
        when_undocked(self.native, lambda: (self.cancel(), self.k_view.live.setChecked(False)))
        viewer.layers.selection.events.active.connect(notifying(self._follow_active))
        self.reset_choices()
        self._follow_active()
        self._show_fields()

    def _settings_page(self) -> QScrollArea:
        """The form: the essentials, Suggest K and live beside K, then the foldable sections
        (folded), all in a scroll area so that the dock fits any screen."""
        page = QWidget()
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.form.essentials.native)
        column.addWidget(self.k_view)
        for title, container in self.form.sections.items():
            section = QCollapsible(title)
            section.setToolTip(SECTION_TIPS[title])
            section.addWidget(container.native)
            section.collapse(animate=False)
            column.addWidget(section)
            self.sections[title] = section
        column.addStretch(1)
        return scrolling(page)

    def _results_page(self) -> QScrollArea:
        """The shown result's table, its per-plane plot and the K curve, resizable, in a
        scroll area (the window is never forced taller than the screen)."""
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        for part in (self.view, self.view.plot_box, self.k_view.plot_box):
            splitter.addWidget(part)
        splitter.setStretchFactor(0, 3)
        return scrolling(splitter)

    def reset_choices(self, *_):
        """Refresh the layer choices, and the palettes of result layers on offer (one per
        run, though a run has two layers)."""
        super().reset_choices()
        if not hasattr(self, "form"):
            return
        self.form.reset_choices()
        current = self.form.palette.value
        runs = {}  # one entry per run: its clusters layer, else its quantized layer
        for layer in self._results():
            run_id = layer.metadata["napari_kquant"].get("run", id(layer))
            if run_id not in runs or isinstance(layer, Labels):
                runs[run_id] = layer
        kept = [(f"palette of {run_name(layer)!r}", layer) for layer in runs.values()]
        choices = [(NEW_PALETTE, NEW_PALETTE), *kept, (FILE_PALETTE, FILE_PALETTE)]
        self.form.palette.choices = choices
        if any(value is current for _, value in choices):
            self.form.palette.value = current
        if self.view.layer is not None and self.view.layer not in self._viewer.layers:
            self._show(None)

    def _results(self):
        return [layer for layer in self._viewer.layers if is_result(layer)]

    def _speed_changed(self, speed) -> None:
        """Choosing a speed sets the fields it has its own defaults for (still editable)."""
        for name, value in speed_defaults(speed).items():
            getattr(self.form, name).value = value

    def _show_fields(self, *_) -> None:
        """Show the fields that apply to these settings and this image, hide the others."""
        if not alive(self.native):
            return
        shown = applies(self.form.asdict(), self.form.image.value)
        for name, on in shown.items():
            if name in self.sections:
                self.sections[name].setVisible(on)
            else:
                getattr(self.form, name).visible = on
        self.k_view.setVisible(shown["k"])

    def _follow_active(self, event=None):
        """Quantize the active layer; when it is one of our results, show its palette."""
        active = self._viewer.layers.selection.active
        if active is not None and PREVIEW in active.metadata:
            return  # the live preview is not an image to quantize
        if active is not None and is_result(active):
            if self._drawing is None:  # while a run adds its layers, its last one is shown
                self._show(active)
        elif active is not None and active in self.form.image.choices and not self._keep_image:
            self.form.image.value = active

    # --- running ------------------------------------------------------------------------------

    def run(self):
        """Start a run with the form's values (ignored while one is going)."""
        if self.worker is not None:
            return
        try:
            job = self._prepare()
        except (TypeError, ValueError) as e:
            self.status.value = "not run: see the notification"  # not the last run's "done"
            show_error(message("K-means quantization: not run", e))
            return
        self._stop = stop = threading.Event()  # each run has its own
        worker = create_worker(
            compute, stop, self._bridge, *job, _start_thread=False, _ignore_errors=True
        )  # errors arrive at _on_errored
        self._start(worker, partial(self._on_returned, worker, job[0].data), "starting")

    def cancel(self):
        """Stop the current run now: control comes back at once, and nothing is added.

        The worker is told to stop at its next step and is abandoned: whatever it
        still returns is dropped, and a new run does not wait for it.
        """
        if self.worker is None or self._drawing is self.worker:
            return  # idle, or already adding its layers (a moment): that finishes
        self._stop.set()
        self._abandoned.add(self.worker)  # referenced until its thread ends
        self.worker = None
        self._idle()
        if self._batch_out is not None:  # a batch: the files it wrote stay, each one whole
            self.status.value = f"cancelled: files already written stay in {self._batch_out}"
            show_info("Apply to many cancelled; the files already written stay, each whole.")
            self._batch_out = None
            return
        self.status.value = "cancelled: nothing was added"
        show_info("K-means quantization cancelled; no layer was changed.")

    def _idle(self):
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    # --- live preview ---------------------------------------------------------------------------

    def _live_toggled(self, on: bool) -> None:
        if on:
            self._settings_changed()
            return
        self.k_view.status.setText("")  # no "live preview: K=..." once it is gone
        for layer in list(self._viewer.layers):  # ours: the preview goes with the tick
            if PREVIEW in layer.metadata:
                self._viewer.layers.remove(layer)

    def _settings_changed(self, *_) -> None:
        """With "live" ticked, re-quantize what is on screen; while a preview runs, only
        the latest settings run after it (slider drags coalesce)."""
        if not self.k_view.live.isChecked():
            return
        if self._preview_worker is not None:
            self._preview_again = True
            return
        try:
            job = self._preview_job()
        except (TypeError, ValueError) as e:  # half-typed settings: said, not a pop-up each key
            self.k_view.status.setText(f"live preview not updated: {e}")
            return
        if job is None:
            return
        layer, data, fixed, params = job
        worker = create_worker(
            preview, data, bool(layer.rgb), fixed, params, _start_thread=False,
            _ignore_errors=True,
        )  # fmt: skip
        worker.returned.connect(notifying(partial(self._show_preview, layer)))
        worker.errored.connect(notifying(self._preview_failed))
        worker.finished.connect(notifying(self._preview_finished))
        self._preview_worker = worker
        start(worker)

    def _preview_job(self):
        values = self.form.asdict()
        layer = values["image"]
        if layer is None or values["palette"] != NEW_PALETTE:
            return None
        params = {**run_params(values, layer), "sample": parse_sample(values["sample"])}
        params.pop("attempts")
        settings(**params)
        return layer, layer_data(layer), current_slice(self._viewer, layer), params

    def _preview_failed(self, error) -> None:
        if alive(self.native):
            self.k_view.status.setText(f"live preview not updated: {error}")

    def _preview_finished(self) -> None:
        self._preview_worker = None
        if alive(self.native) and self._preview_again:
            self._preview_again = False
            self._settings_changed()

    def _show_preview(self, layer, value) -> None:
        live = alive(self.native) and self.k_view.live.isChecked()  # not unticked meanwhile
        if not live or layer not in self._viewer.layers:
            return
        result, factor, used = value
        self.previews += 1
        self.k_view.status.setText(f"live preview: K={len(result.centers)}")
        active = self._viewer.layers.selection.active
        added = draw_preview(self._viewer, layer, result.quantized, factor, used)
        if added and active is not None and active in self._viewer.layers:
            self._keep_image = True  # adding it selected it: the selection goes back, and
            try:  # the dock's image (which follows the selection) stays what it was
                self._viewer.layers.selection.active = active
            finally:
                self._keep_image = False

    def _curve_input(self):
        """The chosen image (its current slice, mask and colour space) for Suggest K."""
        values = self.form.asdict()
        layer = values["image"]
        if layer is None:
            raise ValueError("There is no image layer to suggest K for: open or select one.")
        fixed = current_slice(self._viewer, layer) if _scope(values, layer) == SCOPES[1] else None
        data, keywords = read_layer(layer, values["mask"], fixed)
        params = run_params(values, layer)
        return data, {**keywords, "seed": params["seed"], "color_space": params["color_space"],
                      "white": params["white"], "colour": colour_channels(layer) == 3}  # fmt: skip

    def _set_k(self, k: int) -> None:
        self.form.k.value = k

    def _prepare(self):
        """Read the form and the layers in the GUI thread; raise on bad input."""
        values = self.form.asdict()
        layer = values["image"]
        if layer is None:
            raise ValueError("There is no image layer to quantize: open or select an image.")
        fixed = None
        scope = _scope(values, layer)
        if scope == SCOPES[1]:
            fixed = current_slice(self._viewer, layer)
        k = values["k"] if values["palette"] == NEW_PALETTE else None  # a new fit's
        data, keywords = read_layer(layer, values["mask"], fixed, k)
        finishing = finish_params(values)
        choice = values["palette"]
        if choice != NEW_PALETTE:
            if choice == FILE_PALETTE:
                path = values["palette_file"]
                if not str(path) or path == Path() or path.is_dir():
                    raise ValueError("Choose a palette file (.json, .gpl or .csv) to apply.")
                palette, source = Palette.load(path), str(path)
            else:
                palette, source = palette_of(choice), f"layer {choice.name}"
            colours = (
                (layer.data[0] if layer.multiscale else layer.data).shape[-1] if layer.rgb else 1
            )
            colours -= colours == 4  # RGBA: alpha is not a colour
            if colours != palette.nchannels:
                raise ValueError(
                    f"The palette of {source} has {palette.nchannels} colour channels, but "
                    f"image {layer.name!r} has {colours}."
                )
            record = {
                "k": palette.k,
                "palette_from": source,
                **finishing,
                "mask": values["mask"].name if values["mask"] is not None else None,
                "scope": scope,
                "slice": fixed,
            }
            outputs = OUTPUT_CHOICES[values["outputs"]]
            return layer, data, keywords, {"palette": palette, **finishing}, record, outputs
        params = run_params(values, layer)
        settings(**params)  # every option checked here, before the worker starts
        params.update(finishing)
        record = {
            **params,
            "mask": values["mask"].name if values["mask"] is not None else None,
            "scope": scope,
            "slice": fixed,
        }
        return layer, data, keywords, params, record, OUTPUT_CHOICES[values["outputs"]]

    def _on_progress(self, fraction, message):
        if self.worker is None or not alive(self.native):
            return  # cancelled, or closed: a late report
        self.progress.value = int(1000 * fraction)
        self.status.value = message

    def _on_returned(self, worker, source, value):
        """``source``: the layer's data when the run started."""
        if worker is not self.worker or not alive(self.native):
            return  # abandoned (cancelled) or the viewer was closed: nothing reaches it
        layer, result, record, tuples = value
        self.view.put_away()  # no cluster highlighted while the layers are refreshed
        gone = layer not in self._viewer.layers
        if gone or layer.data is not source:  # the result would not line up with what is shown
            what = "was removed" if gone else "got new data"
            self.status.value = f"not added: the source layer {what} during the run"
            show_info(f"K-means quantization: {layer.name!r} {what}; nothing was added")
            return
        if "palette_from" in record:
            done = f"done: palette of {record['palette_from']}"
        else:
            done = f"done: seed {result.seed}"
        self.status.value = "drawing the results"
        self.cancel_button.enabled = False
        self._drawing = worker  # the run ends when its layers are in the viewer
        self._add_one_by_one(worker, tuples, done)

    def _add_one_by_one(self, worker, tuples, done, added=()):
        """Add the result layers one per turn of the event loop (each costs napari a
        texture upload and a visual), so the viewer never stalls for both at once."""
        if worker is not self.worker or not alive(self.native):
            return  # cancelled meanwhile, or closed
        try:
            added = [*added, *add_or_update(self._viewer, tuples[:1])]
        except Exception as e:  # napari refused a layer: say so, and end the run
            self._drawing = self.worker = None
            self._idle()
            self.status.value = "failed while adding the results"
            show_error(message("K-means quantization: could not add the result layers", e))
            return
        if tuples[1:]:
            more = partial(self._add_one_by_one, worker, tuples[1:], done, added)
            QTimer.singleShot(0, notifying(more))
            return
        QTimer.singleShot(0, notifying(partial(self._show_result, worker, added[-1], done)))

    def _show_result(self, worker, layer, done) -> None:
        """The new result in the Results tab (its table, plots and edits), a turn of the
        event loop after its last layer was added; then the run is over."""
        if worker is not self.worker or not alive(self.native):
            return  # closed meanwhile
        if layer in self._viewer.layers:
            self._show(layer)
            self.tabs.setCurrentIndex(1)
        self.status.value = done
        self._drawing = None
        self.worker = None
        self._idle()

    # --- many files -----------------------------------------------------------------------------

    def apply_to_many(self, images=None, out_dir=None):
        """Apply the shown result's palette to image files (a folder, or a list of paths;
        asked for when None) and write them into ``out_dir`` (asked for when None), in a
        worker with progress and Cancel; then show the combined table."""
        if self.worker is not None:
            return None
        layer = self.view.layer
        if layer is None:
            raise ValueError("Run first, or select a result layer: its palette is applied.")
        palette = palette_of(layer)
        if images is None:
            images = QFileDialog.getExistingDirectory(self.native, "Images to apply it to")
            if not images:
                return None
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self.native, "Write the results into")
            if not out_dir:
                return None
        paths = images_in(images) if isinstance(images, str | os.PathLike) else list(images)
        batch = plan_batch(paths, out_dir, palette.k)  # every check before any work
        self._stop = stop = threading.Event()
        worker = create_worker(
            batch_job, batch, palette, stop, self._bridge, _start_thread=False,
            _ignore_errors=True,
        )  # fmt: skip
        said = f"applying the palette to {len(batch.images)} images"
        self._batch_out = batch.out_dir
        self._start(worker, partial(self._batch_done, worker, batch), said)
        return worker

    def _start(self, worker, returned, status: str) -> None:
        """Start a run's worker (Run, or a batch): Cancel enabled, progress from 0; closing
        the dock (or the viewer) stops it as Cancel does."""
        self.native.destroyed.connect(notifying(self._stop.set))
        worker.returned.connect(notifying(returned))
        worker.errored.connect(notifying(partial(self._on_errored, worker)))
        worker.warned.connect(notifying(warnings_shown(self, worker)))
        worker.finished.connect(notifying(partial(self._on_finished, worker)))
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.status.value = status
        start(worker)

    def _apply_to_many_clicked(self) -> None:
        try:
            self.apply_to_many()
        except (TypeError, ValueError) as e:  # a refused batch: said, nothing written
            show_error(message("Apply to many: not run", e))

    def _batch_done(self, worker, batch, result) -> None:
        if worker is not self.worker or not alive(self.native):
            return
        self.worker = None
        self._batch_out = None
        self._idle()
        self.status.value = (
            f"batch done: {len(batch.images) - len(result.failed)} of {len(batch.images)} "
            f"images written into {batch.out_dir}"
        )
        if result.failed:
            show_error(message(f"{len(result.failed)} of {len(batch.images)} images failed",
                               "; ".join(f"{os.path.basename(p)}: {why}"
                                         for p, why in result.failed.items())))  # fmt: skip
        self.batch_view = BatchView(result, batch.out_dir, parent=self.native)
        self.batch_view.show()

    def _on_errored(self, worker, error):
        if worker is not self.worker or not alive(self.native):
            return
        if isinstance(error, Cancelled):
            self.status.value = "cancelled: nothing was added"
            return
        if self._batch_out is not None:
            self._batch_out = None
            self.status.value = "Apply to many failed: see the notification"
            show_error(message("Apply to many failed", error))
            return
        self.status.value = "failed: nothing was added"
        show_error(message("K-means quantization failed", error))

    def _on_finished(self, worker):
        self._abandoned.discard(worker)
        if worker is not self.worker or not alive(self.native) or self._drawing is worker:
            return  # stale, closed, or its layers are still being added
        self.worker = None
        self._idle()

    def _show(self, layer):
        """Show a result layer's table (and plot, for a stack); None: nothing."""
        self.view.show_layer(layer)

    def save_palette(self, path=None):
        """Write the shown result's palette (.json, .gpl or .csv); ask where when no path."""
        return self.view.save_palette(path)

    def save_table(self, path=None):
        """Write the shown result's table as CSV (and, for a stack, its per-plane table)."""
        return self.view.save_table(path)


def _scope(values, layer) -> str:
    """The scope field where it applies (a stack); a single plane is always whole."""
    return values["scope"] if spatial_ndim(layer) > 2 else SCOPES[0]


def compute(stop, bridge, layer, data, keywords, params, record, outputs):
    """Worker thread: the same call a script makes; nothing napari here but the warm-up.

    A plain function, not a method: napari names the task after it, and a widget's
    repr must not be taken in a thread after its dock was closed.
    """

    def report(fraction, message):
        if stop.is_set():
            raise Cancelled
        try:
            bridge.progressed.emit(fraction, message)
        except RuntimeError:  # the dock was closed: nobody is listening any more
            stop.set()
            raise Cancelled from None

    result = run(data, {**params, **keywords}, report)
    if not is_lazy(result.counts):
        np.asarray(result.plane_counts)  # counted here (cached), not while drawing
    warm_up()  # no-op after the first time; the drawing that follows must not compile
    # the layers' data, colours and features table made here, not in the GUI thread
    return layer, result, record, output_layers(layer, result, record, outputs)
