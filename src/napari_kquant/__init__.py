"""Colour quantization by K-means (OpenCV) for napari and for scripts.

``import napari_kquant`` costs numpy and OpenCV only: napari and Qt are
imported when `quantize_layer` is first used, numba when `clean_labels` is.
"""

from ._choose import KCurve, k_curve
from ._edit import merge, recolour, split
from ._fit import fit, fit_pooled
from ._measure import suggest_background
from ._palette import Palette
from ._quantize import quantize
from ._result import QuantizeResult
from ._sample_data import load_photo

try:
    from ._version import __version__  # written by setuptools-scm when installed
except ImportError:  # a source tree that was never installed
    __version__ = "unknown"
__all__ = [
    "KCurve",
    "Palette",
    "QuantizeResult",
    "__version__",
    "clean_labels",
    "fit",
    "fit_pooled",
    "k_curve",
    "load_photo",
    "merge",
    "quantize",
    "quantize_layer",
    "recolour",
    "split",
    "suggest_background",
]


def __getattr__(name):
    if name == "quantize_layer":
        from ._layers import quantize_layer

        return quantize_layer
    if name == "clean_labels":  # numba: loaded when first asked for
        from ._clean import clean_labels

        return clean_labels
    raise AttributeError(f"module 'napari_kquant' has no attribute {name!r}")
