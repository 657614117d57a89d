"""Numbers per cluster (groundwork for the measurement issue): exact counts, shares, areas."""

import dask.array as da
import numpy as np
import pytest

from napari_kquant import Palette, quantize

from conftest import make_blocks


def test_counts_shares_and_anisotropic_areas_are_exact():
    image = make_blocks()
    mask = np.ones((32, 32), bool)
    mask[:4] = False  # 128 pixels left out: 64 from each top block
    table = quantize(image, 4, channel_axis=-1, mask=mask, seed=1).table(
        pixel_size=(0.5, 0.25), unit="µm"
    )
    assert table["label"].tolist() == [0, 1, 2, 3, 4]
    # dark (top right), blue (top left), red (bottom right), light (bottom left)
    assert table["count"].tolist() == [128, 192, 192, 256, 256]
    np.testing.assert_allclose(table["share"][1:], np.array([192, 192, 256, 256]) / 896)
    assert np.isnan(table["share"][0])
    np.testing.assert_allclose(table["area"], np.array([128, 192, 192, 256, 256]) * 0.125)
    assert set(table["area_unit"]) == {"µm²"}
    assert {"red", "green", "blue", "L*", "a*", "b*", "hex"} <= set(table.columns)


def test_background_clusters_leave_the_foreground_shares():
    table = quantize(make_blocks(), 4, channel_axis=-1, seed=1).table(background=[4])
    # by hand: the light block (label 4, 256 px) is background; 768 px of foreground
    np.testing.assert_allclose(table["foreground_share"][1:4], [256 / 768] * 3)
    assert np.isnan(table["foreground_share"][4]) and np.isnan(table["foreground_share"][0])
    assert table["background"].tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match=r"background labels must be between 1 and 4, got \[5\]"):
        quantize(make_blocks(), 4, channel_axis=-1, seed=1).table(background=[5])


def test_lazy_and_kept_palette_tables_equal_the_eager_one():
    image = make_blocks()
    eager = quantize(image, 4, channel_axis=-1, seed=2)
    lazy = eager.palette.apply(da.from_array(image, chunks=(16, 16, 3)), channel_axis=-1)
    np.testing.assert_array_equal(lazy.table()["count"], eager.table()["count"])
    gray = Palette.from_colors(np.array([[0.0], [100.0]])).apply(np.array([[10, 90, 60]]))
    assert gray.table()["count"].tolist() == [0, 1, 2] and "channel_0" in gray.table()
    with pytest.raises(ValueError, match="pixel_size must hold a positive size"):
        eager.table(pixel_size=(0.5, -1))
