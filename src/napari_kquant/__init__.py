"""Colour quantization by K-means (OpenCV) for napari and for scripts.

``import napari_kquant`` costs numpy and OpenCV only: napari and Qt are
imported when `quantize_layer` is first used.
"""

from ._quantize import QuantizeResult, quantize

__version__ = "0.1.0"
__all__ = ["QuantizeResult", "__version__", "quantize", "quantize_layer"]


def __getattr__(name):
    if name == "quantize_layer":
        from ._layers import quantize_layer

        return quantize_layer
    raise AttributeError(f"module 'napari_kquant' has no attribute {name!r}")
