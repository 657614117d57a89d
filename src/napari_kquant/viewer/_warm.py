"""Once per session, off the GUI thread: what the first run would otherwise compile or load
while the viewer waits (numba kernels, napari's label colormaps, matplotlib's fonts)."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import threading
from functools import partial

import numpy as np

from ..core._colorspace import to_lab
from ._layers import warm_label_colormaps

_warm_lock = threading.Lock()
_warmed = False
_compiler = None
#: Set when the application quits: the warm-up stops after its current step, so that a
#: viewer closed at once is not kept waiting on work for runs that will not come (a new
#: dock clears it: an interactive session may quit its event loop and open another).
quitting = threading.Event()
#: What a fresh install's first runs compile (the sampled fit's Lloyd kernel, the grid
#: search, dithering, the clean-up's regions and majority filter, whole and in chunks:
#: 10-15 s in all), run once in a process of its own: numba's compiler holds the GIL for up
#: to half a second at a time, which in this process would stall the viewer. Runs then
#: load the kernels from numba's disk cache.
PRECOMPILE = (
    "import numpy as np; from napari_kquant import quantize; "
    "x = np.random.default_rng(0).integers(0, 256, (520, 520, 3), np.uint8); "
    "quantize(x, 64, channel_axis=-1, seed=0); "
    "quantize(x[:64, :64], 4, channel_axis=-1, seed=0, dither=True); "
    "quantize(x[:64, :64], 4, channel_axis=-1, seed=0, dither='ordered'); "
    "quantize(x[:64, :64], 4, channel_axis=-1, seed=0, min_size=4, smooth=1); "
    "import dask.array as da; from napari_kquant.finish._clean import clean_lazy; "
    "y = np.ones((96, 96), np.uint8); y[3::7, 5::7] = 2; "
    "clean_lazy(da.from_array(y, chunks=48), min_size=4).compute()"
)  # the last: chunked clean-up (planes over 2**25 pixels) has a merge kernel of its own


def warm_up():
    """Once per session, off the GUI thread: load our compiled kernels, compile napari's
    label colormaps, and import what napari imports when it first builds a Labels layer
    (pandas for its features table, the vispy layer visuals) and the plot's matplotlib."""
    global _warmed
    with _warm_lock:
        if _warmed:
            return
        global _compiler  # kept: a process object dropped while running warns
        _compiler = compile_elsewhere()
        from ..core import _assign  # noqa: F401  (numba: loads the cached kernels)

        modules = (
            "dask.array",  # a large mask layer is read through it
            "pandas",
            "napari._vispy.layers.labels",
            "napari._vispy.layers.image",
            "matplotlib.figure",
            "matplotlib.ticker",
            "matplotlib.backends.backend_qtagg",
        )  # matplotlib: the dock's plots
        steps = [
            warm_label_colormaps,
            lambda: to_lab(np.zeros((1, 3)), 255.0),  # OpenCV's colour tables, built once
            *(partial(_head_start, module) for module in modules),
            warm_plots,
        ]
        for step in steps:
            if quitting.is_set():
                return  # quitting: the rest would only keep the process waiting
            step()
        _warmed = True


def _head_start(module: str) -> None:
    with contextlib.suppress(ImportError):  # only a head start: napari imports them
        importlib.import_module(module)


def compile_elsewhere() -> subprocess.Popen | None:
    """Start `PRECOMPILE` in a separate Python when numba has not cached the kernels yet
    (the first session after install); returns the process, or None."""
    if kernels_cached():
        return None
    return subprocess.Popen(
        [sys.executable, "-c", PRECOMPILE], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=dict(os.environ),
    )  # fmt: skip


def kernels_cached() -> bool:
    """Whether numba's disk cache holds the pass kernel of the fit's Lloyd refinement (which
    every sampled fit compiles); True too where there is no such cache to fill."""
    from ..core._lloyd import _pass_kernel

    try:
        return os.path.exists(_pass_kernel._cache._cache_file._index_path)
    except AttributeError:  # no disk cache (a read-only install), or numba changed it
        return True


def warm_plots() -> None:
    """Draw a small off-screen figure with text and a legend: matplotlib loads its fonts
    and builds its text caches here, not when the first curve is drawn in the dock."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2, 2.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot([2, 3], [1.0, 0.5], label="mean CIEDE2000")
    axes.axvline(2, linestyle="--", label="knee K=2")
    axes.set_xlabel("K", fontsize=8)
    axes.set_ylabel("mean CIEDE2000", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7, title="cluster", title_fontsize=6)
    figure.canvas.draw()
