"""napari and Qt: the dock, its result and K-curve views, the live preview, the layer
adapters (`quantize_layer`, the palette writer) and sample data. The only layer that
imports napari or Qt; nothing below imports it."""
