"""The longest stall of napari's event loop from pressing Run until both result layers are drawn.

Run it in a fresh process (the first run of a session is the one that used to freeze the
viewer while numba compiled napari's label colormaps):

    xvfb-run -a python benchmarks/gui_stalls.py [--megapixels 3] [--runs 2]

A 10 ms QTimer heartbeat runs from the click until the layers are drawn; the longest gap
between beats is the longest time the viewer could not respond. Prints one line per run.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=2)
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
    viewer.add_image(image, name="photo", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    app = QApplication.instance()
    widget.form.k.value = args.k
    for run in range(1, args.runs + 1):
        widget.form.seed.value = str(run)
        beats = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda beats=beats: beats.append(time.perf_counter()))
        for _ in range(20):  # settle: everything drawn before the click
            app.processEvents()
        timer.start()
        click = time.perf_counter()
        beats.append(click)
        widget.run_button.native.click()
        while widget.worker is not None:
            app.processEvents()
            time.sleep(0.001)
        drawn = time.perf_counter()
        while time.perf_counter() - drawn < 0.5:  # the layers' first frames
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        gaps = np.diff(beats)
        print(
            f"run {run}: {args.planes} x {side}x{side} RGB ({image.size / 3e6:.1f} MP), "
            f"k={args.k}: "
            f"{drawn - click:.2f} s from click to results, longest stall "
            f"{1000 * gaps.max():.0f} ms, {np.sum(gaps > 0.2)} stalls over 200 ms"
        )
    viewer.close()


if __name__ == "__main__":
    main()
