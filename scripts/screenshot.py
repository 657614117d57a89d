"""Render the README's screenshots: the widget docked in a viewer after a run.

Run under a (virtual) display: ``xvfb-run -a python scripts/screenshot.py``. It writes
``docs/screenshot.png`` (the astronaut, quantized), ``docs/measurements.png`` (a
stained slide cut into tiles: the measurement table, background marked, and the
per-tile plot) and ``docs/choose-k.png`` (Suggest K's curve, K set at its knee, two
clusters selected for a merge). Needs scikit-image for the slide (``pip install '.[testing]'``).
"""

import sys
import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication


def settle(app, turns=25):
    for _ in range(turns):
        app.processEvents()
        time.sleep(0.02)


def run(widget, app):
    widget.run()
    deadline = time.monotonic() + 120
    while widget.worker is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def astronaut(out):
    viewer = napari.Viewer()
    viewer.open_sample("napari-kquant", "astronaut")
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.k.value = 8
    widget.form.seed.value = "1"
    app = QApplication.instance()
    run(widget, app)
    viewer.layers["astronaut k=8 clusters"].visible = False  # show the quantized photo
    viewer.layers.selection.active = viewer.layers["astronaut k=8 quantized"]
    viewer.window._qt_window.resize(1400, 900)
    settle(app)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(f"wrote {out}")


def slide(out):
    from skimage import data

    ihc = data.immunohistochemistry()  # haematoxylin (blue) and DAB (brown), 512 x 512
    tiles = np.stack([ihc[y : y + 256, x : x + 256] for y in (0, 256) for x in (0, 256)])
    viewer = napari.Viewer()
    viewer.add_image(tiles, name="IHC tiles", rgb=True, scale=(1, 0.5, 0.5),
                     units=("pixel", "um", "um"), axis_labels=("tile", "y", "x"))  # fmt: skip
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.k.value = 4
    widget.form.seed.value = "0"
    widget.form.color_space.value = "lab"
    app = QApplication.instance()
    run(widget, app)
    viewer.layers["IHC tiles k=4 quantized"].visible = False
    viewer.layers["IHC tiles k=4 clusters"].opacity = 0.5
    widget.view.set_background([4])  # the near-white glass the widget suggests
    viewer.window._qt_window.resize(1400, 1050)
    settle(app, 40)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(f"wrote {out}")


def choosing_k(out):
    from skimage import data

    viewer = napari.Viewer()
    viewer.add_image(data.coffee(), name="coffee", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.seed.value = "0"
    app = QApplication.instance()
    widget.k_view.suggest()
    deadline = time.monotonic() + 120
    while widget.k_view.worker is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    widget.k_view.choose(widget.k_view.curve.knee)  # K=8
    run(widget, app)
    widget.view.select([1, 2])  # two dark browns, ready to merge
    viewer.layers["coffee k=8 quantized"].visible = True
    viewer.layers["coffee k=8 clusters"].visible = False
    viewer.window._qt_window.resize(1400, 1100)
    settle(app, 40)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()
    print(f"wrote {out}")


def main(out="docs/screenshot.png", measurements="docs/measurements.png",
         choose="docs/choose-k.png"):  # fmt: skip
    astronaut(out)
    slide(measurements)
    choosing_k(choose)


if __name__ == "__main__":
    main(*sys.argv[1:])
