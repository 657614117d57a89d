"""Bad or unusual input found by an outside attack run: each case now gets a clear error
naming what is wrong, or the right result."""

import copy
import dataclasses
import json
import os
import pickle
import warnings

import numpy as np
import pytest

from napari_kquant import Palette, fit, quantize, recolour, suggest_background

from conftest import make_blocks


def test_dithering_huge_floats_gives_palette_colours_only():
    image = np.random.default_rng(0).random((64, 64, 3)) * 1e30
    for method in ("floyd-steinberg", "ordered"):
        result = quantize(image, 4, channel_axis=-1, seed=0, dither=method)
        colours = {tuple(c) for c in result.centers.tolist()}
        assert {tuple(p) for p in result.quantized.reshape(-1, 3).tolist()} <= colours


def test_a_palettes_fit_record_cannot_be_changed_in_place():
    palette = fit(make_blocks(), 4, channel_axis=-1, seed=0)
    before = json.dumps(palette.fit)
    with pytest.raises(TypeError, match=r"read-only .* dataclasses.replace"):
        palette.fit["k"] = 99
    with pytest.raises(TypeError, match="read-only"):
        palette.fit.update(k=99)
    edited = recolour(quantize(make_blocks(), 4, channel_axis=-1, seed=0), 1, "#ff00ff")
    with pytest.raises(TypeError, match="read-only"):
        edited.palette.fit["edits"].append({"recolour": 2})
    assert json.dumps(palette.fit) == before
    assert palette.fit["k"] == 4 and palette.fit == dict(palette.fit)  # still a mapping
    for copied in (pickle.loads(pickle.dumps(palette)), copy.deepcopy(palette)):
        assert copied == palette and copied.fit == palette.fit
    assert dataclasses.replace(palette, fit={**palette.fit, "k": 5}).fit["k"] == 5


def test_suggest_background_takes_a_palette_or_a_result_and_names_anything_else():
    result = quantize(make_blocks(), 4, channel_axis=-1, seed=0)
    assert suggest_background(result) == suggest_background(result.palette)
    for bad in (None, "palette", 3, [1, 2]):
        with pytest.raises(TypeError, match="suggest_background takes a Palette"):
            suggest_background(bad)


def test_a_unit_without_a_pixel_size_is_refused():
    result = quantize(make_blocks(), 4, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match="unit='µm' is the unit of pixel_size: give pixel_size"):
        result.table(unit="µm")
    assert result.table(pixel_size=0.5, unit="µm")["area_unit"].iloc[1] == "µm²"


def test_recolour_refuses_colours_an_integer_image_cannot_hold():
    result = quantize(make_blocks(), 4, channel_axis=-1, seed=0)
    for bad in ([300, 0, 0], (0.5, 0.5, 0.5), [-1, 0, 0]):
        with pytest.raises(ValueError, match=r"whole numbers from 0 to 255 for a uint8 image"):
            recolour(result, 1, bad)
    shown = recolour(result, 1, [255, 0, 10])
    assert (shown.quantized[result.labels == 1] == [255, 0, 10]).all()


def test_a_big_endian_image_comes_back_in_its_own_byte_order():
    image = (make_blocks().astype(np.uint16) * 257).astype(">u2")
    for options in ({}, {"sample": None}):
        result = quantize(image, 4, channel_axis=-1, seed=0, **options)
        assert result.quantized.dtype == image.dtype
        native = quantize(image.astype(np.uint16), 4, channel_axis=-1, seed=0, **options)
        np.testing.assert_array_equal(result.quantized, native.quantized)
        np.testing.assert_array_equal(result.labels, native.labels)


def test_lab_refuses_negative_values():
    image = make_blocks().astype(np.int16) - 128
    with pytest.raises(ValueError, match=r"color_space='lab' takes RGB values from 0 .* -128"):
        quantize(image, 4, channel_axis=-1, color_space="lab", seed=0)
    quantize(image + 128, 4, channel_axis=-1, color_space="lab", seed=0)  # from 0: fine


def test_lab_refuses_values_above_white_in_the_fit_and_in_every_pixel_assigned():
    """Floats of 0..255 in Lab were clustered (every value above 1 extrapolated past
    L = 100); a value missed by the fit's sample, or given to a lab palette, was assigned."""
    import dask.array as da

    photo = make_blocks().astype(np.float32)
    with pytest.raises(ValueError, match=r"to 1 \(white\), but the image has values from 0 to 25"):
        quantize(photo, 4, channel_axis=-1, color_space="lab", seed=0)
    fine = photo / 255
    palette = fit(fine, 4, channel_axis=-1, color_space="lab", seed=0)
    one_off = fine.copy()
    one_off[5, 7] = (1.5, 0, 0)
    for image in (photo, one_off, da.from_array(one_off, chunks=(16, 16, 3))):
        with pytest.raises(ValueError, match=r"color_space='lab' takes RGB values from 0"):
            np.asarray(palette.apply(image, channel_axis=-1).labels)
    big = np.tile(fine, (8, 8, 1))
    big[100, 100] = (0, 0, 1.01)
    with pytest.raises(ValueError, match=r"values from 0 to 1.01"):  # not in the 10k sample
        quantize(big, 4, channel_axis=-1, color_space="lab", seed=0, sample=10_000)
    left_out = fine.copy()
    left_out[0, 0] = np.nan  # left out, not refused
    assert quantize(left_out, 4, channel_axis=-1, color_space="lab", seed=0).labels[0, 0] == 0


def test_a_ragged_list_is_a_clear_error():
    for call in (quantize, fit):
        with pytest.raises(ValueError, match="image must be an array: a list of rows of equal"):
            call([[1, 2], [3]], 2)
    assert quantize([[0, 0], [255, 255]], 2, seed=0).labels.tolist() == [[1, 1], [2, 2]]


def test_multiscale_levels_with_other_channels_are_named():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    levels = [image, image[::2, ::2, :2]]
    for call in (quantize, fit):
        with pytest.raises(ValueError, match=r"every multiscale level must have the same chan"):
            call(levels, 2, channel_axis=-1)
    palette = fit(image, 2, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match=r"every multiscale level must have the same chan"):
        palette.apply(levels, channel_axis=-1)


def test_multiscale_levels_of_other_dtypes_are_refused():
    """A palette fitted on a coarse uint16 level was applied to the uint8 finest level in the
    wrong units (89% of its pixels in one cluster); byte order alone is no difference."""
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    for coarse in (image[::2, ::2].astype(np.uint16), image[::2, ::2].astype(np.float32)):
        for call in (quantize, fit):
            with pytest.raises(ValueError, match=r"same dtype, got uint8, (uint16|float32)"):
                call([image, coarse], 2, channel_axis=-1, sample=100)
        palette = fit(image, 2, channel_axis=-1, seed=0)
        with pytest.raises(ValueError, match=r"every multiscale level must have the same dtype"):
            palette.apply([image, coarse], channel_axis=-1)
    wide = image.astype(np.uint16) * 257
    levels = [wide, wide[::2, ::2].astype(">u2")]
    result = quantize(levels, 2, channel_axis=-1, seed=0, sample=100)
    assert [np.asarray(labels).shape for labels in result.labels] == [(64, 64), (32, 32)]


def test_a_palette_csv_of_hex_colours_only(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("label,hex\n1,#ff0000\n2,#00ff00\n")
    palette = Palette.load(path)
    assert palette.hex == ["#ff0000", "#00ff00"] and palette.dtype == "uint8"
    path.write_text("hex\n#0000ff\n")
    assert Palette.load(path).centers.tolist() == [[0.0, 0.0, 255.0]]
    path.write_text("label,hex\n2,#ff0000\n")
    with pytest.raises(ValueError, match="the label column must run 1, 2"):
        Palette.load(path)
    path.write_text("hex\nnope\n")
    with pytest.raises(ValueError, match="'nope' is not a hex colour"):
        Palette.load(path)


def test_a_failed_commit_names_the_target_not_a_temporary_file(tmp_path):
    from napari_kquant.core._staged import FileError, Transaction

    target = tmp_path / "palette.json"
    target.write_text("the user's file")
    transaction = Transaction()
    transaction.stage_bytes(str(target), b"new")
    staged = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    os.remove(staged[0])  # another writer took it away
    with pytest.raises(FileError, match=r"cannot write '.*palette.json': .*same time"):
        transaction.commit()
    assert target.read_text() == "the user's file"  # put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["palette.json"]


def test_threads_saving_one_palette_path_all_succeed_and_leave_one_whole_file(tmp_path):
    """The replaced file is kept aside by a second link, not moved: its path never stands
    empty for another writer (moving it made 1-2 of 8 threads fail in most rounds)."""
    from concurrent.futures import ThreadPoolExecutor

    palettes = [Palette.from_colors([[i, i, i]]) for i in range(8)]
    path = tmp_path / "same.json"
    palettes[0].save(path)
    for _ in range(10):
        with ThreadPoolExecutor(8) as pool:
            for job in [pool.submit(p.save, path) for p in palettes]:
                job.result()  # no FileError
        assert Palette.load(path) in palettes
        assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json"]


def test_palette_files_and_colours_that_do_not_add_up_are_refused(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("label,hex,dtype,red,green\n1,#ff0000,uint8,255.0,0.0\n")  # blue cut off
    with pytest.raises(ValueError, match=r"hex column holds RGB .* 2 colour columns"):
        Palette.load(path)
    path.write_text("label,hex,dtype,red\n1,#ff0000,uint8,255.0\n")  # green and blue cut off
    with pytest.raises(ValueError, match=r"hex column holds RGB .* 1 colour columns"):
        Palette.load(path)
    path.write_text("label,hex,dtype,channel_0,channel_1\n1,,uint8,255.0,0.0\n")  # 2 channels
    assert Palette.load(path).nchannels == 2
    palette = Palette.from_colors([[10, 20, 30]], dtype=np.uint8)
    record = {**palette.to_dict(), "value_range": [5.0, 1.0]}
    (tmp_path / "p.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"value_range must be \(min, max\), got"):
        Palette.load(tmp_path / "p.json")
    for colour in (-1, 256):
        with pytest.raises(
            ValueError, match=rf"colors must be within uint8's range 0..255, got {colour}"
        ):
            Palette.from_colors([[colour, 0, 0]], dtype=np.uint8)


def test_a_folder_that_appears_at_a_file_target_is_never_replaced(tmp_path):
    """Found by an attack: a folder made at kquant's --labels path while it ran was moved
    aside, replaced by the picture and deleted with what it held."""
    from napari_kquant.core._staged import FileError, Transaction

    other, target = tmp_path / "o.png", tmp_path / "l.png"
    other.write_bytes(b"old")
    transaction = Transaction()
    transaction.stage_bytes(str(other), b"new")
    transaction.stage_bytes(str(target), b"new")
    target.mkdir()  # appears while the run works
    (target / "data.txt").write_text("precious")
    with pytest.raises(FileError, match=r"l\.png' appeared while this run worked"):
        transaction.commit()
    transaction.abort()
    assert (target / "data.txt").read_text() == "precious" and other.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.png", "o.png"]


def test_a_folder_that_appears_at_a_zarr_target_is_never_replaced(tmp_path):
    """A folder made at a .zarr output's path while the run worked was moved aside,
    replaced by the store and deleted with its contents (found by an attack)."""
    from napari_kquant.core._staged import FileError, Transaction

    target = tmp_path / "out.zarr"
    transaction = Transaction()
    staged = transaction.stage_folder(str(target))
    (tmp_path / "out.zarr").mkdir()  # appears while the store is written
    (target / "thesis.txt").write_text("precious")
    with pytest.raises(FileError, match=r"out\.zarr' appeared while this run worked"):
        transaction.commit()
    transaction.abort()
    assert (target / "thesis.txt").read_text() == "precious"
    assert not os.path.exists(staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_a_signal_right_after_a_temporary_is_made_leaves_nothing(tmp_path, monkeypatch):
    """A Ctrl-C between making a temporary file and recording it left a `.part` file (seen
    once in a batch); abort finds it by the transaction's own token in its name."""
    import tempfile

    from napari_kquant.core import _staged

    made = tempfile.mkstemp

    def interrupted(*args, **kwargs):
        fd, _ = made(*args, **kwargs)
        os.close(fd)
        raise KeyboardInterrupt

    other = tmp_path / ".x.png.someone-else.part"  # not ours: stays
    other.write_bytes(b"")
    monkeypatch.setattr(_staged.tempfile, "mkstemp", interrupted)
    transaction = _staged.Transaction()
    with pytest.raises(KeyboardInterrupt):
        transaction.stage_bytes(str(tmp_path / "x.png"), b"picture")
    assert len(list(tmp_path.iterdir())) == 2
    transaction.abort()
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_zero_d_arrays_and_bytes_where_items_go_are_named():
    """numpy's "iteration over a 0-d array" / "len() of unsized object", an OverflowError,
    and bytes read as a 1-channel colour (b"3" was the value 51)."""
    from napari_kquant import k_curve

    image = make_blocks()
    result = quantize(image, 4, channel_axis=-1, seed=0)
    with pytest.raises(TypeError, match=r"colour must be '#rrggbb' or one number per"):
        recolour(result, 1, np.array(3))
    with pytest.raises(TypeError, match=r"axes must be a list of names, got array\(3\)"):
        result.plane_table(axes=np.array(3))
    with pytest.raises(TypeError, match=r"ks must be whole numbers"):
        k_curve(image, np.array(3), channel_axis=-1)
    masked = np.ma.array([[0, 0, 0], [1, 1, 1]], mask=[[0, 0, 0], [1, 1, 1]])
    for colors in (np.array(3), b"3", {"#000000", "#ffffff"}, masked):  # sets: no label order
        with pytest.raises(TypeError, match=r"colors must be hex strings or a \(k, channels\)"):
            Palette.from_colors(colors)
    for size in (10**400, [10**400, 1]):
        with pytest.raises(ValueError, match=r"pixel_size 1000.* is larger than a float can hold"):
            result.table(pixel_size=size)
    by_array = result.table(pixel_size=np.array(2.0))["area"].tolist()
    assert by_array == result.table(pixel_size=2.0)["area"].tolist() != [0.0] * len(by_array)


def test_a_list_of_arrays_that_is_no_pyramid_says_so():
    """It was called 'a list of rows of equal length' with numpy's inhomogeneous-shape text."""
    image = np.zeros((8, 8, 3), np.uint8)
    for levels in ([image, image[::2, ::2, 0]], [image[::2, ::2], image]):
        with pytest.raises(ValueError, match=r"a multiscale pyramid only with the same axes, e"):
            quantize(levels, 2, channel_axis=-1)


def test_palette_paths_that_are_no_files_are_named(tmp_path):
    palette = Palette.from_colors(["#000000", "#ffffff"])
    for call in (palette.save, Palette.load):
        with pytest.raises(ValueError, match="a path cannot hold a NUL character"):
            call(str(tmp_path / "p\0.json"))
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=r"zero\.json' is not a file \(a device or a pipe\?\)"):
        Palette.load(tmp_path / "zero.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zero.json"]


def test_a_gimp_palette_of_another_colour_space_warns(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    with pytest.warns(UserWarning, match="this lab palette's colour space is not kept"):
        fit(image, 3, channel_axis=-1, seed=0, color_space="lab").save(tmp_path / "p.gpl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(image, 3, channel_axis=-1, seed=0).save(tmp_path / "q.gpl")  # rgb: rounded only


def test_values_too_far_apart_for_float32_are_refused_where_they_leave_fewer_than_k():
    image = np.random.default_rng(0).random((30, 30)) * 100
    image[0, 0] = 1e80  # beside it, 0-100 read as 0 in float32: one colour for 899 pixels
    with pytest.raises(ValueError, match=r"from 0\.019\d* to 1e\+80 .* too far apart for float32"):
        quantize(image, 3, seed=0)
    image[0, 0] = 1e40  # within float32's reach: the small values keep their clusters
    centers = quantize(image, 3, seed=0).centers.ravel()
    assert 0 < centers[0] < centers[1] < 100 and centers[2] == pytest.approx(1e40, rel=1e-6)
    tiny = np.random.default_rng(1).random((30, 30))
    tiny[0, :2] = 1e-310, 0.0  # a subnormal beside 0 reads as 0, and costs nothing
    assert quantize(tiny, 3, seed=0).counts.sum() == 900


@pytest.mark.parametrize(
    "field, said",
    [
        ({"seed": -5}, r"seed must be between 0 and 2147483647, got -5"),
        ({"seed": 2**40}, r"seed must be between 0 and 2147483647, got 1099511627776"),
        ({"epsilon": -1.0}, r"epsilon must be a finite number >= 0, got -1.0"),
    ],
)
def test_a_palette_keeps_only_a_seed_and_epsilon_quantize_would_take(tmp_path, field, said):
    with pytest.raises(ValueError, match=said):
        Palette([[0.0, 0, 0], [1, 1, 1]], **field)
    saved = Palette([[0.0, 0, 0], [1, 1, 1]], seed=3).to_dict()
    saved.update(field)  # a file that says so
    (tmp_path / "p.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=said.split(",")[0]):
        Palette.load(tmp_path / "p.json")


@pytest.mark.parametrize(
    "image",
    [
        np.int32(2_000_000_000) + np.array([0, 50, 100, 150] * 100, np.int32),
        np.uint32(4_000_000_000) + np.array([0, 10, 20, 30] * 100, np.uint32),
        1e8 + np.array([0.0, 1, 2, 3] * 100),
    ],
    ids=["int32 near 2e9", "uint32 near 4e9", "float64 near 1e8"],
)
@pytest.mark.parametrize("sample", [None, "auto"])
def test_values_far_from_zero_keep_their_colours(image, sample):
    """float32 (cv2.kmeans' type) cannot tell 2e9 from 2e9 + 50: the values are taken
    from their minimum first; each of the four values is its own cluster."""
    image = image.reshape(20, 20)
    result = quantize(image, 4, seed=1, sample=sample)
    assert result.counts.tolist() == [100] * 4
    np.testing.assert_array_equal(result.centers.ravel(), np.unique(image).astype(np.float64))
    np.testing.assert_array_equal(result.quantized, image)


def test_a_fit_far_from_zero_is_the_fit_of_the_same_image_brought_to_zero():
    """cv2.kmeans sums float32: 1e6 + 0..150 over 90,000 pixels (or one channel of 1e8 +
    0..3 beside one of 0..1) lost most of its detail; such images are clustered from their
    per-channel minimum, and give the fit of the image brought to 0, moved back."""
    rng = np.random.default_rng(0)
    near = rng.integers(0, 151, (300, 300)).astype(np.int32)
    far = quantize(near + 1_000_000, 8, seed=0, sample=None)
    zero = quantize(near, 8, seed=0, sample=None)
    np.testing.assert_array_equal(far.labels, zero.labels)
    np.testing.assert_allclose(far.centers, zero.centers + 1_000_000)
    two = np.stack([rng.random((60, 60)) * 3, rng.random((60, 60))], -1)
    moved = quantize(two + np.array([1e8, 0]), 6, channel_axis=-1, seed=0)
    assert moved.compactness == pytest.approx(quantize(two, 6, channel_axis=-1, seed=0)
                                              .compactness, rel=1e-3)  # fmt: skip
    constant = quantize(np.full((10, 10), 1e8), 1, seed=0)
    assert constant.centers.tolist() == [[1e8]]  # not a centre outside the data


@pytest.mark.parametrize(
    "image, said",
    [
        (np.arange(64, dtype=np.int64) + 2**62, r"from 4611686018427387904 to 46\d+ are too far"),
        (
            np.r_[np.zeros(8, np.int32), 2_000_000_000 + np.arange(56, dtype=np.int32)],
            r"values from 0 to 2000000055 are too far apart for float32.*read as one",
        ),
    ],
    ids=["int64 2**62 + 0..63", "0 beside 2e9 + 0..55"],
)
def test_whole_numbers_float32_or_float64_cannot_keep_apart_are_refused(image, said):
    with pytest.raises(ValueError, match=said):
        quantize(image.reshape(8, 8), 4, seed=0)
