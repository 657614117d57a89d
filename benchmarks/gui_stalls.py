"""The longest stall of napari's event loop for every action of the dock, beside napari's own.

Run it in a fresh process (the first run of a session is the one that used to freeze the
viewer while numba compiled napari's label colormaps):

    xvfb-run -a python benchmarks/gui_stalls.py [--megapixels 3] [--planes 1]

A 10 ms QTimer heartbeat runs from each click until its result is drawn (and half a second
of first frames after); the longest gap between beats is the longest time the viewer could
not respond. napari's own cost is measured the same way in the same process, warm: a script
adding an RGB image and a Labels layer of the same size. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2
import numpy as np

SETTLE_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=3.0)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument(
        "--planes", type=int, default=1, help="a stack of this many planes (the dock plots it)"
    )
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_kquant import load_photo

    side = round((args.megapixels * 1e6) ** 0.5)
    image = cv2.resize(load_photo(), (side, side), interpolation=cv2.INTER_CUBIC)
    if args.planes > 1:
        image = np.stack([np.roll(image, 8 * t, axis=1) for t in range(args.planes)])
    viewer = napari.Viewer()
    source = viewer.add_image(image, name="photo", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    app = QApplication.instance()
    rows = []
    from napari_kquant.viewer import _warm

    start = time.perf_counter()  # a fresh install: the dock compiles numba's kernels elsewhere
    while _warm._compiler is None and not _warm._warmed and time.perf_counter() - start < 30:
        app.processEvents()
        time.sleep(0.01)
    if _warm._compiler is not None:
        while _warm._compiler.poll() is None:
            app.processEvents()
            time.sleep(0.01)
        print(
            f"(first session: the kernels compiled in another process while the dock was "
            f"open, {time.perf_counter() - start:.1f} s; the first Run below follows it)"
        )

    def measure(name, action, done):
        """Run ``action`` (a click), wait until ``done()``, and note the longest stall."""
        beats = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: beats.append(time.perf_counter()))
        for _ in range(20):  # settle: everything drawn before the click
            app.processEvents()
        timer.start()
        click = time.perf_counter()
        beats.append(click)
        action()
        while not done():
            app.processEvents()
            time.sleep(0.001)
        finished = time.perf_counter()
        while time.perf_counter() - finished < SETTLE_SECONDS:  # the first frames
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        beats.append(time.perf_counter())
        rows.append((name, finished - click, 1000 * np.diff(beats).max()))

    def idle():
        return widget.worker is None

    widget.form.k.value = args.k
    widget.form.seed.value = "1"
    measure("Run (first after napari starts)", widget.run_button.native.click, idle)
    widget.form.seed.value = "2"
    measure("Run again (refreshes the layers)", widget.run_button.native.click, idle)
    widget.form.sample.value = "3"  # fewer than K: refused before any work
    measure("Run refused (a notification)", widget.run_button.native.click, idle)
    widget.form.sample.value = "auto"
    view, k_view = widget.view, widget.k_view
    measure("Suggest K (the curve drawn)", k_view.button.click, lambda: k_view.worker is None)
    measure("live on (a preview layer)", lambda: k_view.live.setChecked(True),
            lambda: widget.previews >= 1 and widget._preview_worker is None)  # fmt: skip
    k_view.live.setChecked(False)
    clusters = view.layer
    measure("Select a cluster (shown alone)", lambda: view.select([2]), lambda: True)
    measure("Clear the selection", view.table.clearSelection, lambda: True)
    view.select([1, 2])
    measure("Merge 2 clusters", view.merge_button.click, lambda: view._editing is None)
    view.select([1])
    measure("Split a cluster in 2", view.split_button.click, lambda: view._editing is None)
    measure("Undo", view.undo_button.click, lambda: view._editing is None)
    view.select([1])
    measure("Recolour a cluster", lambda: view.recolour(colour="#00ff00"),
            lambda: view._editing is None)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        measure("Save table", lambda: view.save_table(os.path.join(folder, "t.csv")),
                lambda: True)  # fmt: skip
        measure("Save palette", lambda: view.save_palette(os.path.join(folder, "p.json")),
                lambda: True)  # fmt: skip
    del clusters

    # napari's own cost, warm: a script adding the same two layers
    labels = np.random.default_rng(0).integers(1, args.k + 1, source.data.shape[:-1], np.uint8)

    def add_both(attempt):
        viewer.add_image(source.data.copy(), name=f"copy {attempt}", rgb=True)
        viewer.add_labels(labels, name=f"labels {attempt}")

    for attempt in (1, 2):
        measure(f"napari itself: add an RGB + a Labels layer ({attempt})",
                lambda attempt=attempt: add_both(attempt), lambda: True)  # fmt: skip
    viewer.close()
    napari_own = min(stall for name, _, stall in rows if name.startswith("napari itself"))
    shape = " x ".join(map(str, image.shape[:-1]))
    print(
        f"{os.cpu_count()} cores; {shape} RGB "
        f"({image[..., 0].size / 1e6:.1f} MP), K={args.k}; napari {napari.__version__}\n"
    )
    print("| action | click to drawn (s) | longest stall (ms) | above napari's own (ms) |")
    print("| --- | --- | --- | --- |")
    for name, seconds, stall in rows:
        print(f"| {name} | {seconds:.2f} | {stall:.0f} | {stall - napari_own:+.0f} |")


if __name__ == "__main__":
    main()
