"""Numbers per cluster (groundwork for the measurement issue): exact counts, shares, areas."""

import dask
import dask.array as da
import numpy as np
import pandas as pd
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
    with pytest.raises(ValueError, match="pixel_size must hold positive sizes"):
        eager.table(pixel_size=(0.5, -1))


def stack_of_blocks():
    """(3, 32, 32, 3): plane 0 the four blocks, plane 1 with its top half light, plane 2
    with a 4 x 4 dark square set into the light block. Labels 1 dark .. 4 light."""
    stack = np.stack([make_blocks(seed=s) for s in range(3)])
    stack[1, :16] = 240
    stack[2, 16:20, :4] = 10
    return stack


# by hand: per plane, labels 0..4 (no pixel left out)
PLANE_COUNTS = [[0, 256, 256, 256, 256], [0, 0, 0, 256, 768], [0, 272, 256, 256, 240]]


def test_per_plane_counts_and_long_table_are_exact():
    result = quantize(stack_of_blocks(), 4, channel_axis=-1, seed=1)
    np.testing.assert_array_equal(result.plane_counts, PLANE_COUNTS)
    table = result.plane_table(axes=["t"], pixel_size=(1.0, 0.5, 0.25), unit="µm")
    assert list(table.columns[:2]) == ["t", "label"] and len(table) == 3 * 5
    assert table["t"].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert table["count"].tolist() == [n for plane in PLANE_COUNTS for n in plane]
    plane1 = table[table.t == 1].set_index("label")
    np.testing.assert_allclose(plane1["share"][1:], [0, 0, 0.25, 0.75])
    np.testing.assert_allclose(plane1["area"], np.array(PLANE_COUNTS[1]) * 0.125)
    whole = result.table()
    assert whole["count"].tolist() == np.sum(PLANE_COUNTS, axis=0).tolist()
    # "share of cluster 3 over time" is a filter away
    np.testing.assert_allclose(table[table.label == 3]["share"], [0.25, 0.25, 256 / 1024])
    default = result.plane_table()
    assert "axis_0" in default.columns


def test_per_plane_background_and_left_out_pixels():
    stack = stack_of_blocks()
    mask = np.ones(stack.shape[:3], bool)
    mask[0, :, :8] = False  # 256 left out of plane 0: 128 dark-blue, 128 light
    result = quantize(stack, 4, channel_axis=-1, seed=1, mask=mask)
    table = result.plane_table(background=[4])
    plane0 = table[table.axis_0 == 0].set_index("label")
    assert plane0["count"].tolist() == [256, 256, 128, 256, 128]
    # foreground of plane 0: labels 1..3 = 640 px; label 4 is background, label 0 left out
    np.testing.assert_allclose(plane0["foreground_share"][1:4], [256 / 640, 128 / 640, 256 / 640])
    assert np.isnan(plane0["foreground_share"][4]) and np.isnan(plane0["foreground_share"][0])
    assert np.isnan(plane0["share"][0])
    plane1 = table[table.axis_0 == 1].set_index("label")  # all light but one block
    np.testing.assert_allclose(plane1["foreground_share"][1:4], [0, 0, 1])


def test_lazy_per_plane_table_equals_eager_and_costs_one_pass(monkeypatch):
    from napari_kquant.engine._apply import Assigner

    kernel_calls = []
    assign = Assigner.assign

    def counted(self, *args, **kwargs):
        kernel_calls.append(1)
        return assign(self, *args, **kwargs)

    monkeypatch.setattr(Assigner, "assign", counted)
    stack = stack_of_blocks()
    eager = quantize(stack, 4, channel_axis=-1, seed=1)
    kernel_calls.clear()  # the lazy run's calls only
    reads = []

    def load(t, y, x):  # a chunk read from disk, recorded
        reads.append((t, y, x))
        return stack[t : t + 1, y : y + 16, x : x + 16]

    def chunk(t, y, x):
        return da.from_delayed(dask.delayed(load)(t, y, x), (1, 16, 16, 3), stack.dtype)

    lazy_input = da.concatenate(
        [
            da.concatenate(
                [da.concatenate([chunk(t, y, x) for x in (0, 16)], axis=2) for y in (0, 16)],
                axis=1,
            )
            for t in range(3)
        ]
    )
    lazy = eager.palette.apply(lazy_input, channel_axis=-1)
    assert isinstance(lazy.plane_counts, da.Array)
    labels, _, counts = dask.compute(lazy.labels, lazy.quantized, lazy.plane_counts)
    assert len(reads) == lazy_input.npartitions == 12  # each chunk read once, for all three
    assert len(kernel_calls) == 12  # and assigned once
    np.testing.assert_array_equal(counts, PLANE_COUNTS)
    np.testing.assert_array_equal(labels, eager.labels)
    pd.testing.assert_frame_equal(lazy.plane_table(), eager.plane_table())
    pd.testing.assert_frame_equal(lazy.table(), eager.table())


def test_multiscale_counts_are_the_finest_levels():
    image = make_blocks()
    palette = quantize(image, 4, channel_axis=-1, seed=1).palette
    result = palette.apply([image, image[::2, ::2]], channel_axis=-1)
    assert result.plane_counts.tolist() == [0, 256, 256, 256, 256]


def test_background_suggestion_is_the_lightest_near_white_cluster_only():
    from napari_kquant import suggest_background

    slide = Palette.from_colors(["#783c8c", "#b4785a", "#eceaee"])  # hex colours: 8-bit
    assert suggest_background(slide) == 3
    colourful = Palette.from_colors(["#141ec8", "#fadc1e"])  # the lightest is yellow
    assert suggest_background(colourful) is None
    grey = Palette.from_colors(np.array([[10.0], [250.0]]), dtype="uint8")
    assert suggest_background(grey) is None  # not colour: nothing to say
    # the quantized slide gives the same suggestion as its palette, and nothing is marked
    result = slide.apply(np.full((2, 2, 3), 236, np.uint8), channel_axis=-1)
    assert not result.table()["background"].any()


def test_share_curves_per_first_plane_axis():
    from napari_kquant.engine._measure import share_curves

    np.testing.assert_allclose(share_curves(PLANE_COUNTS)[1], [0, 0, 0.25, 0.75])
    fg = share_curves(PLANE_COUNTS, background=[4])
    np.testing.assert_allclose(fg[2], [272 / 784, 256 / 784, 256 / 784, np.nan])
    four_d = np.array([PLANE_COUNTS, PLANE_COUNTS])  # (2, 3, 5): further axes are summed
    np.testing.assert_allclose(share_curves(four_d)[0], np.array([528, 512, 768, 1264]) / 3072)
    empty = share_curves([[5, 0, 0]])
    assert np.isnan(empty).all()


@pytest.mark.parametrize(
    ("keywords", "error", "match"),
    [
        ({"background": True}, TypeError, "background must be labels"),
        ({"background": "4"}, TypeError, "background must be labels"),
        ({"background": [1.5]}, TypeError, "background must be labels"),
        ({"background": [None]}, TypeError, "background must be labels"),
        ({"background": [0]}, ValueError, r"between 1 and 4, got \[0\]"),
        ({"background": 5}, ValueError, r"between 1 and 4, got \[5\]"),
        ({"background": b"1"}, TypeError, "background must be labels"),
        ({"background": {1: 2}}, TypeError, "background must be labels"),
        ({"pixel_size": 0}, ValueError, "pixel_size must hold positive sizes"),
        ({"pixel_size": -0.5}, ValueError, "pixel_size must hold positive sizes"),
        ({"pixel_size": (np.nan, 1)}, ValueError, "pixel_size"),
        ({"pixel_size": (1,)}, ValueError, "must hold 2 sizes .* got 1"),
        ({"pixel_size": (1, 2, 3)}, ValueError, "must hold 2 sizes .* got 3"),
        ({"pixel_size": "0.5"}, TypeError, "pixel_size must be a number"),
        ({"pixel_size": b"12"}, TypeError, "pixel_size must be a number"),
        ({"pixel_size": True}, TypeError, "pixel_size must be a number"),
        ({"pixel_size": (True, 1)}, TypeError, "pixel_size must hold numbers"),
        ({"pixel_size": ("1", "2")}, TypeError, "pixel_size must hold numbers"),
        ({"pixel_size": (np.inf, 1)}, ValueError, "pixel_size"),
        ({"pixel_size": 1e200}, ValueError, "gives a pixel area of inf"),
        ({"pixel_size": 1e-200}, ValueError, "gives a pixel area of 0.0"),
        ({"pixel_size": 1, "unit": 5}, TypeError, "unit must be a string"),
    ],
)
def test_bad_table_options_name_the_parameter(keywords, error, match):
    result = quantize(make_blocks(), 4, channel_axis=-1, seed=1)
    with pytest.raises(error, match=match):
        result.table(**keywords)
    with pytest.raises(error, match=match):
        result.plane_table(**keywords)


def test_scalar_pixel_size_and_axes_that_do_not_fit():
    result = quantize(stack_of_blocks(), 4, channel_axis=-1, seed=1)
    np.testing.assert_allclose(result.table(pixel_size=0.5, unit="µm")["area"][1], 528 * 0.25)
    assert result.table(pixel_size=0.5)["area_unit"][1] == ""  # a size without a unit
    with pytest.raises(ValueError, match="axes must name the 1 plane axes"):
        result.plane_table(axes=["t", "z"])
    for clash in (["count"], ["label"], ["red"]):  # a column of the table
        with pytest.raises(ValueError, match="not columns of the table"):
            result.plane_table(axes=clash)
    with pytest.raises(TypeError, match="axes must be a list of names"):
        result.plane_table(axes="t")
    with pytest.raises(TypeError, match="axes must be non-empty strings"):
        result.plane_table(axes=[0])
    # a layer's scale (one size per spatial axis) and the last two give the same areas
    a = result.table(pixel_size=(1.0, 0.5, 0.25))["area"]
    pd.testing.assert_series_equal(a, result.table(pixel_size=(0.5, 0.25))["area"])


def test_one_dimensional_areas_are_lengths_however_the_size_is_given():
    result = quantize(np.array([0, 0, 0, 200], np.uint8), 2, seed=0)
    by_scalar = result.table(pixel_size=2.0)["area"].tolist()
    assert by_scalar == result.table(pixel_size=[2.0])["area"].tolist() == [0, 6.0, 2.0]


def test_table_to_csv_round_trips(tmp_path):
    result = quantize(make_blocks(), 4, channel_axis=-1, seed=1)
    result.table(background=[4]).to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["count"].tolist() == [0, 256, 256, 256, 256]
    assert back["background"].tolist() == [False, False, False, False, True]


def test_a_stack_table_gives_mean_areas_per_plane_and_volumes_for_space():
    stack = np.zeros((4, 10, 10), np.uint8)
    stack[:, :, 5:] = 200  # every plane: 50 dark and 50 light pixels
    result = quantize(stack, k=2, seed=0)
    summed = result.table(pixel_size=(0.5, 0.5), unit="µm")
    assert summed["area"].tolist()[1:] == [50.0, 50.0]  # the plain sum over 4 planes x 0.25
    z = result.table(pixel_size=(0.5, 0.5), unit="µm", plane_spacing=[2.0])
    assert z["area"].tolist()[1:] == [12.5, 12.5]  # per plane: 50 px of 0.25 µm²
    assert z["volume"].tolist()[1:] == [100.0, 100.0]  # 200 voxels of 0.5 µm³
    assert z["volume_unit"][1] == "µm³"
    t = result.table(pixel_size=(0.5, 0.5), unit="µm", plane_spacing=[None])
    assert t["area"].tolist()[1:] == [12.5, 12.5]  # the mean over time, never the sum
    assert "volume" not in t
    with pytest.raises(ValueError, match="one size or None per plane axis"):
        result.table(plane_spacing=[1.0, 2.0])
    for bad in ([-1.0], [0], [float("nan")], [float("inf")], [10**400]):
        with pytest.raises(ValueError, match="positive, finite sizes"):
            result.table(plane_spacing=bad)
    for bad in ("z", {1: 2}, np.array(2.0), ["2"], [True], [2 + 0j]):
        with pytest.raises(TypeError, match="plane_spacing must be a list"):
            result.table(plane_spacing=bad)
    with pytest.raises(ValueError, match="voxel volume"):
        result.table(pixel_size=1e150, plane_spacing=[1e300])


def test_a_time_and_z_stack_has_volumes_per_time_point():
    stack = np.zeros((3, 2, 4, 4), np.uint8)  # t, z, y, x
    stack[..., 2:] = 255
    table = quantize(stack, k=2, seed=0).table(pixel_size=1.0, unit="µm",
                                                plane_spacing=[None, 3.0])  # fmt: skip
    assert table["count"].tolist()[1:] == [48, 48]  # 3 x 2 planes of 8 pixels
    assert table["area"].tolist()[1:] == [8.0, 8.0]
    assert table["volume"].tolist()[1:] == [48.0, 48.0]  # per time point: 16 voxels of 3 µm³
