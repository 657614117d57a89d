"""Render the dock's screenshots, as a user sees it on a laptop and on a desktop screen.

Run under a virtual display at least 1920 x 1080:
``xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot.py``. For each window
size (1366 x 768 and 1920 x 1080) it writes ``docs/screens/<size>-<stage>.png``: the dock
as it opens, after a run (the Results tab), Suggest K's curve, a cluster selected (shown
alone over the photo), Apply to many (the batch's table), and a time-lapse with its
per-plane plot. It also writes the
README's pictures: ``docs/screenshot.png`` (after a run), ``docs/measurements.png`` (a
stained slide cut into tiles: the table with the glass marked, the per-tile plot) and
``docs/choose-k.png`` (Suggest K on the coffee photo). Needs scikit-image for the slide
and the coffee photo (``pip install '.[testing]'``). Each picture is printed with the
window's size and the dock's minimum height, so a window forced taller than the screen
shows in the log.
"""

import os
import sys
import tempfile
import time

import cv2
import napari
import numpy as np
from qtpy.QtWidgets import QApplication

SIZES = ((1366, 768), (1920, 1080))


def settle(app=None, turns=25):
    app = QApplication.instance()
    for _ in range(turns):
        app.processEvents()
        time.sleep(0.02)


def wait(app, busy, seconds=120):
    app = QApplication.instance()
    deadline = time.monotonic() + seconds
    while busy() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def run(widget, app):
    widget.run()
    wait(app, lambda: widget.worker is not None)


def viewer_with_dock(size):
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(*size)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    return viewer, widget


def shoot(viewer, widget, path):
    app = QApplication.instance()
    settle(app, 40)
    window = viewer.window._qt_window
    window.grab().save(path)
    print(
        f"wrote {path}: window {window.width()} x {window.height()}, "
        f"its minimum height {window.minimumSizeHint().height()}, "
        f"the dock's {widget.native.minimumSizeHint().height()}"
    )


def stages(size, folder):
    app = QApplication.instance()
    tag = f"{size[0]}x{size[1]}"
    viewer, widget = viewer_with_dock(size)
    viewer.open_sample("napari-kquant", "astronaut")
    widget.form.image.value = viewer.layers["astronaut"]
    widget.form.seed.value = "1"
    shoot(viewer, widget, os.path.join(folder, f"{tag}-opened.png"))
    run(widget, app)
    shoot(viewer, widget, os.path.join(folder, f"{tag}-run.png"))
    widget.k_view.suggest()
    wait(app, lambda: widget.k_view.worker is not None)
    shoot(viewer, widget, os.path.join(folder, f"{tag}-k-curve.png"))
    widget.view.show_layer(viewer.layers["astronaut k=8 clusters"])
    widget.view.select([6])
    shoot(viewer, widget, os.path.join(folder, f"{tag}-cluster.png"))
    widget.view.table.clearSelection()
    with tempfile.TemporaryDirectory() as work:  # Apply to many: four frames of a folder
        from napari_kquant.files._photos import make_timelapse

        for t, frame in enumerate(make_timelapse(4)):
            cv2.imwrite(os.path.join(work, f"frame{t}.png"), frame[..., ::-1])
        widget.apply_to_many(work, os.path.join(work, "out"))
        wait(app, lambda: widget.worker is not None)
        shoot(viewer, widget, os.path.join(folder, f"{tag}-batch.png"))
        widget.batch_view.grab().save(os.path.join(folder, f"{tag}-batch-table.png"))
        widget.batch_view.close()
    viewer.close()

    viewer, widget = viewer_with_dock(size)
    viewer.open_sample("napari-kquant", "timelapse")
    widget.form.image.value = viewer.layers["astronaut time-lapse"]
    widget.form.seed.value = "1"
    widget.sections["Outputs"].expand(animate=False)
    run(widget, app)
    viewer.dims.set_current_step(0, 5)
    shoot(viewer, widget, os.path.join(folder, f"{tag}-stack.png"))
    widget.tabs.setCurrentIndex(0)
    shoot(viewer, widget, os.path.join(folder, f"{tag}-stack-settings.png"))
    viewer.close()


def astronaut(out):
    app = QApplication.instance()
    viewer, widget = viewer_with_dock((1600, 900))
    viewer.open_sample("napari-kquant", "astronaut")
    widget.form.image.value = viewer.layers["astronaut"]
    widget.form.k.value = 8
    widget.form.seed.value = "1"
    run(widget, app)
    viewer.layers["astronaut k=8 clusters"].visible = False  # show the quantized photo
    viewer.layers.selection.active = viewer.layers["astronaut k=8 quantized"]
    widget.view.show_layer(viewer.layers["astronaut k=8 clusters"])
    shoot(viewer, widget, out)
    viewer.close()


def slide(out):
    from skimage import data

    app = QApplication.instance()
    ihc = data.immunohistochemistry()  # haematoxylin (blue) and DAB (brown), 512 x 512
    tiles = np.stack([ihc[y : y + 256, x : x + 256] for y in (0, 256) for x in (0, 256)])
    viewer, widget = viewer_with_dock((1600, 900))
    viewer.add_image(tiles, name="IHC tiles", rgb=True, scale=(1, 0.5, 0.5),
                     units=("pixel", "um", "um"), axis_labels=("tile", "y", "x"))  # fmt: skip
    widget.form.image.value = viewer.layers["IHC tiles"]
    widget.form.k.value = 4
    widget.form.seed.value = "0"
    widget.form.color_space.value = "lab"
    run(widget, app)
    viewer.layers["IHC tiles k=4 quantized"].visible = False
    viewer.layers["IHC tiles k=4 clusters"].opacity = 0.5
    widget.view.set_background([4])  # the near-white glass the widget suggests
    shoot(viewer, widget, out)
    viewer.close()


def choosing_k(out):
    from skimage import data

    app = QApplication.instance()
    viewer, widget = viewer_with_dock((1600, 900))
    viewer.add_image(data.coffee(), name="coffee", rgb=True)
    widget.form.image.value = viewer.layers["coffee"]
    widget.form.seed.value = "0"
    widget.k_view.suggest()
    wait(app, lambda: widget.k_view.worker is not None)
    widget.k_view.choose(widget.k_view.curve.knee)  # K=8
    run(widget, app)
    widget.view.select([1, 2])  # two dark browns, ready to merge (shown: the first alone)
    widget.tabs.setCurrentIndex(1)
    shoot(viewer, widget, out)
    viewer.close()


def main(folder="docs/screens"):
    os.makedirs(folder, exist_ok=True)
    for size in SIZES:
        stages(size, folder)
    astronaut("docs/screenshot.png")
    slide("docs/measurements.png")
    choosing_k("docs/choose-k.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
