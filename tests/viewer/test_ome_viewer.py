"""Our OME-Zarr output opened in a real napari viewer through napari-ome-zarr."""

import numpy as np
import pytest

from napari_kquant import quantize, write_ome_zarr
from napari_kquant.files._photos import load_photo


# napari-ome-zarr hands napari a colour dict without a default: napari says so
@pytest.mark.filterwarnings("ignore:color_dict did not provide a default color")
def test_napari_shows_the_clusters_in_the_palettes_colours(make_napari_viewer, tmp_path):
    photo = load_photo()
    result = quantize(photo, 4, channel_axis=-1, seed=0)
    path = str(tmp_path / "photo-k4.ome.zarr")
    write_ome_zarr(path, result)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-ome-zarr")
    labels = [layer for layer in viewer.layers if layer._type_string == "labels"]
    assert len(labels) == 1 and labels[0].name.endswith("clusters")
    layer = labels[0]
    finest = layer.data[0] if layer.multiscale else layer.data
    np.testing.assert_array_equal(np.asarray(finest), result.labels)
    shown = layer.colormap.map(np.arange(1, 5))[:, :3]
    expected = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in result.palette.hex])
    np.testing.assert_allclose(shown * 255, expected, atol=0.6)
    assert photo.shape == (512, 512, 3)  # the source is untouched (the result is a copy)
