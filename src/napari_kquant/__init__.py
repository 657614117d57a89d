"""Colour quantization by K-means (OpenCV) for napari and for scripts.

``import napari_kquant`` costs numpy and OpenCV only: napari and Qt are
imported when a napari-facing function is first used.
"""

from ._quantize import QuantizeResult, quantize

__version__ = "0.1.0"
__all__ = ["QuantizeResult", "__version__", "quantize"]
