"""Prove, inside a fresh environment holding only the installed wheel and napari, that the
plugin works as a user meets it (run by scripts/release.sh, under a virtual X screen):

- npe2 and napari discover the plugin, at the wheel's version;
- the dock widget opens from the plugin menu's command and runs, adding its two layers,
  and Suggest K draws its curve (the plots need nothing beyond the package's own
  dependencies: what napari's plugin installer gives);
- the three samples open from File > Open Sample's contributions;
- the ``kquant`` console script writes a quantized PNG.

    python scripts/check_install.py dist/napari_kquant-X-py3-none-any.whl
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"check_install: {message}", file=sys.stderr)
        sys.exit(1)


def main(wheel: str) -> None:
    import napari_kquant

    here = Path(napari_kquant.__file__).resolve()
    check(
        here.is_relative_to(Path(sys.prefix).resolve()),
        f"napari_kquant imported from {here}, not from the environment {sys.prefix}",
    )
    version = Path(wheel).name.split("-")[1]
    installed = napari_kquant.__version__
    check(installed == version, f"napari_kquant.__version__ is {installed}, the wheel {version}")

    from npe2 import PluginManager

    manager = PluginManager.instance()  # napari's own plugin manager
    manager.discover()
    manifest = manager.get_manifest("napari-kquant")
    check(manifest.package_metadata.version == version, "npe2 sees another version")

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    layers = viewer.open_sample("napari-kquant", "astronaut")
    check(layers[0].data.shape == (512, 512, 3), "the astronaut sample did not open")
    slide = viewer.open_sample("napari-kquant", "slide")
    check(slide[0].data.shape == (256, 256, 3), "the slide sample did not open")
    stack = viewer.open_sample("napari-kquant", "timelapse")
    check(stack[0].data.ndim == 4, "the time-lapse sample did not open")
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.image.value = layers[0]
    widget.form.k.value = 4
    widget.form.seed.value = "0"
    widget.run()
    app = QApplication.instance()
    deadline = time.monotonic() + 120
    while widget.worker is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    names = [layer.name for layer in viewer.layers]
    check("astronaut k=4 clusters" in names, f"the widget's run added no layers: {names}")
    worker = widget.k_view.suggest()
    check(worker is not None, "Suggest K did not start")
    deadline = time.monotonic() + 120
    while widget.k_view.worker is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()
    check(widget.k_view.curve is not None and widget.k_view.plot is not None,
          f"Suggest K drew no curve: {widget.k_view.status.text()}")  # fmt: skip
    viewer.close()
    from napari_kquant.viewer import _warm

    with _warm._warm_lock:  # the dock's warm-up is done: its precompile started, if needed
        compiler = _warm._compiler
    if compiler is not None:  # a fresh install's: it writes numba's cache into this venv
        check(compiler.wait(timeout=600) == 0, "the dock's background precompile failed")

    kquant = Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin") / "kquant"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "astronaut-k4.png"
        run = subprocess.run([kquant, "-k", "4", "--seed", "0", "-o", out], capture_output=True,
                             text=True, check=False)  # fmt: skip
        check(run.returncode == 0 and out.is_file(), f"kquant failed: {run.stderr.strip()}")
    python = ".".join(map(str, sys.version_info[:3]))
    print(f"Python {python}: napari {napari.__version__} discovered napari-kquant {version}; "
          f"the widget docked and ran, Suggest K drew its curve; the three samples opened; "
          f"kquant wrote a PNG")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
