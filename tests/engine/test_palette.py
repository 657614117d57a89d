"""Kept palettes: fit once, apply anywhere; pooled fits; given colours; palette files."""

import json

import cv2
import dask.array as da
import numpy as np
import pytest

from napari_kquant import Palette, fit, fit_pooled, quantize
from napari_kquant.core._options import settings
from napari_kquant.engine._fit import image_seed
from napari_kquant.engine._sample import pool, sample_array

from conftest import BLOCK_COLOURS, expected_block_labels, make_blocks


def nearest(pixels, centers):
    d = ((pixels[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    return d.argmin(1) + 1


def assert_same_result(a, b):
    for name in ("quantized", "labels", "centers", "counts"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.compactness == b.compactness and a.seed == b.seed and a.epsilon == b.epsilon
    assert a.palette == b.palette


# --- quantize is fit then apply -------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"sample": 2000},
        {"sample": 2000, "color_space": "lab"},
        {"sample": 3000, "init": "random", "criteria": "max_iter", "max_iter": 10},
    ],
)
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_quantize_equals_fit_then_apply(photos, name, options):
    image = photos[name]
    before = image.copy()
    direct = quantize(image, 6, channel_axis=-1, seed=3, **options)
    palette = fit(image, 6, channel_axis=-1, seed=3, **options)
    assert_same_result(direct, palette.apply(image, channel_axis=-1))
    assert direct.palette == palette
    np.testing.assert_array_equal(image, before)


def test_exact_quantize_keeps_cv2s_partition_and_fit_gives_its_centres(photos):
    image = photos["coffee"]
    direct = quantize(image, 5, channel_axis=-1, seed=2, sample=None)
    palette = fit(image, 5, channel_axis=-1, seed=2, sample=None)
    np.testing.assert_array_equal(palette.centers, direct.centers)
    assert palette.compactness == direct.compactness
    # the same cv2.kmeans call made directly
    pixels = image.reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(2)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, palette.epsilon)
    compactness, _, centers = cv2.kmeans(pixels, 5, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    assert compactness == palette.compactness
    np.testing.assert_array_equal(
        np.sort(centers.astype(np.float64), 0), np.sort(palette.centers, 0)
    )
    # apply labels every pixel with its nearest centre
    applied = palette.apply(image, channel_axis=-1)
    np.testing.assert_array_equal(applied.labels.ravel(), nearest(pixels, palette.centers))


# --- a palette applied to other images -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_palette_of_a_labels_b_by_nearest_centre(photos, dtype):
    palette = fit(photos["astronaut"], 7, channel_axis=-1, seed=0, sample=3000)
    other = photos["chelsea"]
    scale = {np.uint8: 1, np.uint16: 257, np.float32: 1 / 255}[dtype]
    image = (other.astype(np.float64) * scale).astype(dtype)
    result = palette.apply(image, channel_axis=-1)
    centers = palette.centers * scale  # converted to the image's units
    np.testing.assert_allclose(result.centers, centers)
    expected = nearest(image.reshape(-1, 3), result.centers)
    np.testing.assert_array_equal(result.labels.ravel(), expected)
    assert result.palette is palette and result.seed == 0
    np.testing.assert_array_equal(result.counts, np.bincount(expected, minlength=8)[1:])
    assert result.quantized.dtype == dtype


def test_same_palette_same_label_for_the_same_colour():
    frames = [make_blocks(seed=s) for s in range(3)]
    palette = fit(frames[0], 4, channel_axis=-1, seed=1)
    for frame in frames:
        labels = palette.apply(frame, channel_axis=-1).labels
        np.testing.assert_array_equal(labels, expected_block_labels())


def test_apply_to_lazy_and_multiscale_images_equals_numpy(photos):
    image = photos["coffee"]
    palette = fit(image, 5, channel_axis=-1, seed=4, sample=2000)
    eager = palette.apply(image, channel_axis=-1)
    lazy = palette.apply(da.from_array(image, chunks=(40, 50, 3)), channel_axis=-1)
    np.testing.assert_array_equal(lazy.labels.compute(), eager.labels)
    np.testing.assert_array_equal(lazy.quantized.compute(), eager.quantized)
    np.testing.assert_array_equal(lazy.counts.compute(), eager.counts)
    assert float(lazy.compactness.compute()) == pytest.approx(eager.compactness, rel=1e-12)
    levels = palette.apply([image, image[::2, ::2]], channel_axis=-1)
    np.testing.assert_array_equal(levels.labels[0], eager.labels)
    np.testing.assert_array_equal(
        levels.labels[1], palette.apply(image[::2, ::2], channel_axis=-1).labels
    )


def test_apply_honours_mask_alpha_and_nan():
    image = make_blocks().astype(np.float32)
    palette = fit(image, 4, channel_axis=-1, seed=0)
    image[0, 0, 1] = np.nan
    mask = np.ones((32, 32), bool)
    mask[5] = False
    result = palette.apply(image, channel_axis=-1, mask=mask)
    assert result.labels[0, 0] == 0 and (result.labels[5] == 0).all()
    np.testing.assert_array_equal(result.quantized[5], image[5])
    rgba = np.concatenate([make_blocks(), np.full((32, 32, 1), 255, np.uint8)], -1)
    rgba[3, 3, 3] = 0
    palette8 = fit(make_blocks(), 4, channel_axis=-1, seed=0)
    out = palette8.apply(rgba, channel_axis=-1)
    assert out.labels[3, 3] == 0
    np.testing.assert_array_equal(out.quantized[..., 3], rgba[..., 3])


def test_masked_array_mask_is_honoured(blocks):
    masked = np.ma.masked_array(blocks, mask=np.zeros_like(blocks, bool))
    masked.mask[:2, :, 0] = True
    result = quantize(masked, 4, channel_axis=-1, seed=0)
    np.testing.assert_array_equal(result.labels[:2], 0)
    np.testing.assert_array_equal(result.labels[2:], expected_block_labels()[2:])


@pytest.mark.parametrize(
    ("image", "channel_axis", "match"),
    [
        (np.zeros((8, 8), np.uint8), None, "palette has 3 colour channels, but the image has 1"),
        (np.zeros((8, 8, 5), np.uint8), -1, "but the image has 5"),
        (np.zeros((8, 8, 4), np.uint8), 0, "but the image has 8"),
    ],
)
def test_channel_mismatch_is_a_clear_error(blocks, image, channel_axis, match):
    palette = fit(blocks, 4, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match=match):
        palette.apply(image, channel_axis=channel_axis)


# --- pooled fits -----------------------------------------------------------------------------


def test_pooled_fit_is_reproducible_and_equals_its_sample_fitted_directly(photos):
    images = [photos["astronaut"], photos["coffee"], photos["chelsea"][:60]]
    a = fit_pooled(images, 6, channel_axis=-1, seed=9, sample=4000)
    b = fit_pooled([lambda im=im: im for im in images], 6, channel_axis=-1, seed=9, sample=4000)
    assert a == b and a.seed == 9
    # the pooled sample: each image's own seeded sample, then shares by usable pixels
    opts = settings(6, seed=9, sample=4000)
    parts, counts = [], []
    for i, image in enumerate(images):
        own = settings(6, seed=image_seed(9, i), sample=4000)
        drawn = sample_array(image, -1, None, None, own)
        parts.append(drawn.sample)
        counts.append(drawn.n_usable)
    pooled = pool(parts, counts, opts.sample, opts.seed)
    assert len(pooled) == 4000
    direct = fit(pooled, 6, channel_axis=-1, seed=9, sample=None)
    np.testing.assert_array_equal(a.centers, direct.centers)
    assert a.compactness == direct.compactness


def test_pooled_sample_is_proportional_to_usable_pixels():
    parts = [np.zeros((1000, 3)), np.ones((1000, 3)), np.full((1000, 3), 2.0)]
    sample = pool(parts, [1000, 3000, 6000], 1000, seed=0)
    np.testing.assert_array_equal(np.bincount(sample[:, 0].astype(int)), [100, 300, 600])


def test_pooled_fit_over_lazy_images_and_all_pixels(photos):
    images = [photos["astronaut"], photos["coffee"]]
    exact = fit_pooled(images, 4, channel_axis=-1, seed=1, sample=None)
    stacked = np.concatenate([im.reshape(-1, 3) for im in images])
    direct = fit(stacked, 4, channel_axis=-1, seed=1, sample=None)
    np.testing.assert_array_equal(exact.centers, direct.centers)
    lazy = fit_pooled(
        [da.from_array(im, chunks=(48, 64, 3)) for im in images], 4, channel_axis=-1, seed=1,
        sample=5000,
    )  # fmt: skip
    assert lazy.k == 4 and lazy == fit_pooled(
        [da.from_array(im, chunks=(48, 64, 3)) for im in images], 4, channel_axis=-1, seed=1,
        sample=5000,
    )  # fmt: skip


def test_pooled_fit_refuses_unlike_images(blocks):
    with pytest.raises(ValueError, match=r"images\[1\] is uint16 with 3 colour channels"):
        fit_pooled([blocks, blocks.astype(np.uint16)], 4, channel_axis=-1)
    with pytest.raises(ValueError, match=r"images\[1\]: a multiscale list: give one of its"):
        fit_pooled([blocks, [blocks, blocks[::2, ::2]]], 4, channel_axis=-1)
    with pytest.raises(TypeError, match=r"images\[1\]: image dtype object is not supported"):
        fit_pooled([blocks, None], 4, channel_axis=-1)
    with pytest.raises(ValueError, match="images is empty"):
        fit_pooled([], 4)


# --- given colours ---------------------------------------------------------------------------


def test_palette_of_given_colours_maps_onto_them(blocks):
    palette = Palette.from_colors(["#000000", "#ffffff", "#f00", "0000ff"])
    assert palette.k == 4 and palette.dtype == "uint8" and palette.fit is None
    assert palette.hex == ["#000000", "#ffffff", "#ff0000", "#0000ff"]
    result = palette.apply(blocks, channel_axis=-1)
    expected = nearest(blocks.reshape(-1, 3), palette.centers)
    np.testing.assert_array_equal(result.labels.ravel(), expected)
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(result.quantized, colours[result.labels - 1])
    assert result.seed is None


def test_given_array_palette_in_the_images_units():
    palette = Palette.from_colors(np.array([[1000.0], [3000.0]]))
    image = np.array([[900, 2100, 5000]], np.uint16)
    np.testing.assert_array_equal(palette.apply(image).labels, [[1, 2, 2]])


@pytest.mark.parametrize(
    ("colors", "kwargs", "match"),
    [
        (["#12345"], {}, "'#12345' is not a hex colour"),
        ([], {}, r"colors must be .* got shape \(0, 1\)"),
        ([[1, 2], [3]], {}, "array of numbers"),
        ([[np.nan, 0, 0]], {}, "finite"),
        ([[0, 0, 0]], {"color_space": "lab"}, "needs the colours' dtype"),
        ([[0, 0]], {"color_space": "lab", "dtype": "uint8"}, "3 colour channels"),
        ([[0, 0, 0]], {"dtype": "complex64"}, "dtype must be an integer, float32 or float64"),
        ([[0, 0, 0]], {"dtype": np.int8(3)}, r"float64 dtype, got np.int8\(3\)"),  # a value
    ],
)
def test_bad_given_colours(colors, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Palette.from_colors(colors, **kwargs)


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("color_space", ["rgb", "lab", "od"])
def test_json_round_trip_is_exact(tmp_path, photos, color_space):
    palette = fit(photos["astronaut"], 9, channel_axis=-1, seed=5, color_space=color_space)
    path = tmp_path / "p.json"
    palette.save(path)
    loaded = Palette.load(path)
    assert loaded == palette
    np.testing.assert_array_equal(loaded.centers, palette.centers)
    assert loaded.fit == palette.fit and loaded.seed == 5 and loaded.epsilon == palette.epsilon
    record = json.loads(path.read_text())
    assert record["format"] == "napari-kquant palette" and record["version"] == 1
    image = photos["coffee"]
    assert_same_result(loaded.apply(image, channel_axis=-1), palette.apply(image, channel_axis=-1))


@pytest.mark.parametrize("color_space", ["rgb", "lab", "od"])
def test_csv_round_trip_keeps_the_values(tmp_path, photos, color_space):
    palette = fit(photos["coffee"], 5, channel_axis=-1, seed=1, color_space=color_space)
    palette.save(tmp_path / "p.csv")
    loaded = Palette.load(tmp_path / "p.csv")
    np.testing.assert_array_equal(loaded.centers, palette.centers)
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header.startswith("label,hex,dtype,red,green,blue")
    image = photos["chelsea"]
    np.testing.assert_array_equal(
        loaded.apply(image, channel_axis=-1).labels, palette.apply(image, channel_axis=-1).labels
    )


@pytest.mark.parametrize("color_space", ["rgb", "od"])
def test_csv_round_trip_of_a_grey_palette(tmp_path, photos, color_space):
    grey = photos["coffee"][..., 1].astype(np.uint16) * 257  # its hex column is grey
    palette = fit(grey, 5, seed=1, color_space=color_space)
    palette.save(tmp_path / "p.csv")
    loaded = Palette.load(tmp_path / "p.csv")
    np.testing.assert_array_equal(loaded.centers, palette.centers)
    assert loaded.hex == palette.hex and loaded.color_space == color_space
    np.testing.assert_array_equal(loaded.apply(grey).labels, palette.apply(grey).labels)


def test_gpl_round_trip_is_eight_bit(tmp_path, photos):
    palette = fit(photos["astronaut"], 6, channel_axis=-1, seed=0)
    palette.save(tmp_path / "p.gpl")
    text = (tmp_path / "p.gpl").read_text()
    assert text.startswith("GIMP Palette\n")
    loaded = Palette.load(tmp_path / "p.gpl")
    np.testing.assert_array_equal(loaded.centers, np.clip(np.rint(palette.centers), 0, 255))
    assert loaded.hex == palette.hex and loaded.dtype == "uint8"
    loaded.save(tmp_path / "again.gpl")
    assert Palette.load(tmp_path / "again.gpl") == loaded


def test_gimp_palette_written_by_gimp_loads(tmp_path):
    (tmp_path / "gimp.gpl").write_text(
        "GIMP Palette\nName: Web\nColumns: 4\n#\n  0   0   0\tBlack\n255 255 255\tWhite\n"
    )
    palette = Palette.load(tmp_path / "gimp.gpl")
    assert palette.hex == ["#000000", "#ffffff"] and palette.name == "Web"


def test_gray_palette_to_gpl_is_refused_and_writes_nothing(tmp_path):
    palette = fit(np.arange(100, dtype=np.uint8).reshape(10, 10), 3, seed=0)
    with pytest.raises(ValueError, match="GIMP palette holds RGB"):
        palette.save(tmp_path / "p.gpl")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.json", None, "does not exist"),
        ("p.txt", "x", "unknown extension '.txt'"),
        ("bad.json", "{not json", "not valid JSON"),
        ("list.json", "[1, 2]", "not a napari-kquant palette"),
        ("v9.json", '{"format": "napari-kquant palette", "version": 9}', "version 9"),
        ("nocent.json", '{"format": "napari-kquant palette", "version": 1}', "missing field"),
        (
            "ragged.json",
            '{"format": "napari-kquant palette", "version": 1, "color_space": "rgb", '
            '"centers": [[1, 2, 3], [4]]}',
            "array of numbers",
        ),
        (
            "space.json",
            '{"format": "napari-kquant palette", "version": 1, "color_space": "hsv", '
            '"centers": [[1, 2, 3]]}',
            "color_space must be one of",
        ),
        ("bad.gpl", "GIMP Palette\n1 2\n", "line 2 is not 'R G B"),
        ("big.gpl", "GIMP Palette\n1 2 300 x\n", "values 0-255"),
        ("head.gpl", "JASC-PAL\n", "not a GIMP palette"),
        ("empty.gpl", "GIMP Palette\n#\n", "has no colours"),
        ("short.csv", "label,hex,red,green,blue\n", "at least one colour row"),
        ("text.csv", "label,hex,red,green,blue\n1,#000000,a,0,0\n", "not a number"),
        ("order.csv", "label,red\n2,5\n1,6\n", "must run 1, 2"),
        ("fields.csv", "label,red,green\n1,5\n", "row 2 has 2 fields"),
        ("binary.json", b"\xff\xfe\x00junk", "not text"),
        ("empty.json", "", "not valid JSON"),
    ],
)
def test_bad_palette_files_name_the_file_and_the_problem(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        Palette.load(path)
    assert name in str(info.value)


def test_a_folder_is_not_a_palette_file(tmp_path):
    (tmp_path / "p.json").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        Palette.load(tmp_path / "p.json")
    palette = Palette.from_colors(["#000"])
    with pytest.raises(ValueError, match="is a folder"):
        palette.save(tmp_path / "p.json")


@pytest.mark.parametrize("path", [None, 3, ["p.json"]])
def test_a_path_that_is_no_path_is_refused_by_name(path):
    with pytest.raises(TypeError, match=r"^path must be a file path .*, got "):
        Palette.load(path)
    with pytest.raises(TypeError, match=r"^path must be a file path .*, got "):
        Palette.from_colors(["#000"]).save(path)


def test_palette_is_immutable(blocks):
    palette = fit(blocks, 4, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match="read-only"):
        palette.centers[0, 0] = 1
    with pytest.raises(AttributeError):
        palette.k = 3
    np.testing.assert_allclose(palette.centers, BLOCK_COLOURS[[1, 0, 3, 2]], atol=3)


def test_given_colours_outside_their_dtype_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"within uint8.s range 0\.\.255, got 300"):
        Palette.from_colors([[300, 0, 0]], dtype="uint8")
    (tmp_path / "p.csv").write_text("label,hex,dtype,red,green,blue\n1,,uint8,-5,0,0\n")
    with pytest.raises(ValueError, match=r"p\.csv.*got -5"):
        Palette.load(tmp_path / "p.csv")
    with pytest.raises(ValueError, match="dtype must be an integer, float32 or float64 dtype"):
        Palette.from_colors(["#ffffff"], dtype="float16")
    assert Palette.from_colors(["#ffffff"], dtype="uint16").centers.tolist() == [[65535] * 3]


def test_fit_pooled_takes_a_list_of_images_that_shrink():
    from napari_kquant import fit_pooled

    big = make_blocks()
    palette = fit_pooled([big, big[:16, :16]], 4, channel_axis=-1, seed=0)
    assert palette.k == 4
