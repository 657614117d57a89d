"""Colour quantization by K-means (OpenCV) for napari and for scripts.

``import napari_kquant`` costs numpy and OpenCV only: napari and Qt are
imported when `quantize_layer` is first used, numba when `clean_labels` is.
The package's layers, bottom to top, are ``core``, ``finish``, ``engine``,
``analysis``, this package's `_api`, ``files`` and ``viewer``
(docs/architecture.md).
"""

from ._api import fit, quantize
from .analysis._choose import KCurve, k_curve
from .analysis._edit import merge, recolour, split
from .engine._fit import fit_pooled
from .engine._measure import suggest_background
from .engine._palette import Palette
from .engine._result import QuantizeResult
from .files._ome import Opened, open_image
from .files._ome_write import write_ome_zarr
from .files._photos import load_photo, load_slide

try:
    from ._version import __version__  # written by setuptools-scm when installed
except ImportError:  # a source tree that was never installed
    __version__ = "unknown"
__all__ = [
    "KCurve",
    "Opened",
    "Palette",
    "QuantizeResult",
    "__version__",
    "clean_labels",
    "fit",
    "fit_pooled",
    "k_curve",
    "load_photo",
    "load_slide",
    "merge",
    "open_image",
    "quantize",
    "quantize_layer",
    "recolour",
    "split",
    "suggest_background",
    "write_ome_zarr",
]


def __getattr__(name):
    if name == "quantize_layer":
        from .viewer._console import quantize_layer

        return quantize_layer
    if name == "clean_labels":  # numba: loaded when first asked for
        from .finish._clean import clean_labels

        return clean_labels
    raise AttributeError(f"module 'napari_kquant' has no attribute {name!r}")
