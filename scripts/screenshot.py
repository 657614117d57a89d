"""Render the README's screenshot: the widget docked in a viewer after a run.

Run under a (virtual) display: ``xvfb-run -a python scripts/screenshot.py [OUT.png]``.
"""

import sys
import time

import napari
from qtpy.QtWidgets import QApplication


def main(out="docs/screenshot.png"):
    viewer = napari.Viewer()
    viewer.open_sample("napari-kquant", "astronaut")
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.k.value = 8
    widget.form.seed.value = "1"
    widget.run()
    app = QApplication.instance()
    deadline = time.monotonic() + 120
    while widget.worker is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    viewer.layers["astronaut k=8 clusters"].visible = False  # show the quantized photo
    viewer.layers.selection.active = viewer.layers["astronaut k=8 quantized"]
    viewer.window._qt_window.resize(1400, 900)
    for _ in range(25):
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
