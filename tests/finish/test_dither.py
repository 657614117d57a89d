"""Dithering: adaptive, Floyd-Steinberg and ordered, on kept palettes, stacks, masks and lazy
images."""

import cv2
import dask.array as da
import numpy as np
import pytest

from napari_kquant import Palette, quantize
from napari_kquant.finish._dither import BAYER, CAP

GREYS = Palette.from_colors(["#000000", "#555555", "#aaaaaa", "#ffffff"])


def grey_gradient(rows=64, cols=256):
    g = np.tile(np.linspace(0, 255, cols), (rows, 1))
    return np.rint(np.stack([g, g, g], -1)).astype(np.uint8)


def block_means(image, size=8):
    h, w = image.shape[:2]
    return image.astype(float).reshape(h // size, size, w // size, size, -1).mean(axis=(1, 3))


def blurred_mse(a, b):
    a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 1.5)
    b = cv2.GaussianBlur(b.astype(np.float32), (0, 0), 1.5)
    return float(((a - b) ** 2).mean())


@pytest.mark.parametrize("method", ["floyd-steinberg", "ordered"])
def test_dithered_gradient_keeps_its_mean_colour_per_block(method):
    image = grey_gradient()
    plain = GREYS.apply(image, channel_axis=-1)
    dithered = GREYS.apply(image, channel_axis=-1, dither=method)
    error = np.abs(block_means(dithered.quantized) - block_means(image))
    assert error.max() <= 6 and error.mean() <= 1.5
    plain_error = np.abs(block_means(plain.quantized) - block_means(image))
    assert plain_error.max() > 30  # without dithering the bands are 85 apart
    # only palette colours, and the labels are still the undithered nearest colours
    colours = {tuple(c) for c in dithered.quantized.reshape(-1, 3)}
    assert colours <= {(v, v, v) for v in (0, 85, 170, 255)} and len(colours) == 4
    np.testing.assert_array_equal(dithered.labels, plain.labels)
    np.testing.assert_array_equal(dithered.counts, plain.counts)
    assert dithered.compactness == plain.compactness


@pytest.mark.parametrize("level", [0, 16, 64, 128, 200, 255])
def test_ordered_dither_draws_the_bayer_pattern(level):
    palette = Palette.from_colors(np.array([[0.0], [255.0]]), dtype="uint8")
    image = np.full((16, 24), level, np.uint8)
    result = palette.apply(image, dither="ordered")
    # white where the threshold (b + 0.5) / 64 - 0.5 lifts the level past the midpoint
    expected = np.tile(level + ((BAYER + 0.5) / 64 - 0.5) * 255 >= 127.5, (2, 3))
    np.testing.assert_array_equal(result.quantized == 255, expected)
    assert set(np.unique(result.quantized)) <= {0, 255}


def test_floyd_steinberg_strength_scales_the_diffusion():
    image = grey_gradient()
    plain = GREYS.apply(image, channel_axis=-1).quantized
    none = GREYS.apply(image, channel_axis=-1, dither="floyd-steinberg", dither_strength=0)
    np.testing.assert_array_equal(none.quantized, plain)
    half = GREYS.apply(image, channel_axis=-1, dither="floyd-steinberg", dither_strength=0.5)
    full = GREYS.apply(image, channel_axis=-1, dither="floyd-steinberg")
    changed = lambda q: int((q != plain).any(axis=-1).sum())  # noqa: E731
    assert 0 < changed(half.quantized) < changed(full.quantized)


def test_dithering_a_photo_lowers_the_blurred_error(photos):
    image = photos["coffee"]
    result = quantize(image, 8, channel_axis=-1, seed=0)
    plain = result.palette.apply(image, channel_axis=-1)
    error = blurred_mse(image, plain.quantized)  # the halftone metric: seen from a distance
    for method, ratio in (("floyd-steinberg", 0.8), ("ordered", 0.95)):
        dithered = result.palette.apply(image, channel_axis=-1, dither=method)
        assert blurred_mse(image, dithered.quantized) < ratio * error
        np.testing.assert_array_equal(dithered.labels, plain.labels)


def test_quantize_dithers_with_its_own_palette(photos):
    image = photos["coffee"]
    for sample in (50_000, None):  # sampled, and exact (cv2's partition)
        plain = quantize(image, 6, channel_axis=-1, seed=2, sample=sample)
        dithered = quantize(image, 6, channel_axis=-1, seed=2, sample=sample, dither="ordered")
        again = plain.palette.apply(image, channel_axis=-1, dither="ordered")
        np.testing.assert_array_equal(dithered.labels, plain.labels)
        if sample is not None:
            np.testing.assert_array_equal(dithered.quantized, again.quantized)


def test_masked_and_transparent_pixels_keep_their_values():
    image = grey_gradient(16, 64)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    rgba[:, :8, 3] = 0  # transparent columns
    rgba[:, 8:16, 3] = 100  # half-transparent: clustered, alpha kept
    mask = np.ones(image.shape[:2], bool)
    mask[4:8] = False
    for method in ("adaptive", "floyd-steinberg", "ordered"):
        result = GREYS.apply(rgba, channel_axis=-1, mask=mask, dither=method)
        left_out = ~mask | (rgba[..., 3] == 0)
        np.testing.assert_array_equal(result.quantized[left_out], rgba[left_out])
        np.testing.assert_array_equal(result.quantized[..., 3], rgba[..., 3])
        inside = result.quantized[~left_out][:, :3]
        assert {tuple(c) for c in inside} <= {(v, v, v) for v in (0, 85, 170, 255)}
    assert rgba[0, 0, 3] == 0 and rgba[5, 20, 0] == image[5, 20, 0]  # the input is unchanged


def test_stack_planes_are_dithered_each_on_its_own():
    plane = grey_gradient(32, 64)
    stack = np.stack([plane, plane[::-1], plane])
    for method in ("adaptive", "floyd-steinberg", "ordered"):
        result = GREYS.apply(stack, channel_axis=-1, dither=method)
        for i in range(3):
            alone = GREYS.apply(stack[i], channel_axis=-1, dither=method)
            np.testing.assert_array_equal(result.quantized[i], alone.quantized)


def test_lazy_ordered_dither_equals_eager_and_floyd_steinberg_stays_in_the_palette(photos):
    image = photos["chelsea"]
    palette = quantize(image, 8, channel_axis=-1, seed=1).palette
    lazy = da.from_array(image, chunks=(40, 50, 3))
    eager = palette.apply(image, channel_axis=-1, dither="ordered")
    result = palette.apply(lazy, channel_axis=-1, dither="ordered")
    np.testing.assert_array_equal(result.quantized.compute(), eager.quantized)
    allowed = {tuple(c) for c in np.rint(palette.centers).astype(np.uint8)}
    for method in ("floyd-steinberg", "adaptive"):
        fs = palette.apply(lazy, channel_axis=-1, dither=method)
        quantized, labels = da.compute(fs.quantized, fs.labels)
        np.testing.assert_array_equal(labels, eager.labels)
        assert {tuple(c) for c in quantized.reshape(-1, 3)} <= allowed


@pytest.mark.parametrize("method", ["floyd-steinberg", "adaptive"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_other_dtypes_dither_in_their_own_units(dtype, method):
    image = grey_gradient().astype(dtype) * (257 if dtype == np.uint16 else 1 / 255)
    palette = Palette.from_colors(
        ["#000000", "#555555", "#aaaaaa", "#ffffff"], dtype=np.dtype(dtype).name
    )
    result = palette.apply(image, channel_axis=-1, dither=method)
    assert result.quantized.dtype == dtype
    white = 65535 if dtype == np.uint16 else 1.0
    error = np.abs(block_means(result.quantized) - block_means(image)) / white
    bound = 6 if method == "floyd-steinberg" else (0.5 - CAP) * 85 + 3  # see the 8-bit tests
    assert error.max() <= bound / 255


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"dither": "fs"}, ValueError, "dither must be one of"),
        ({"dither": 1}, TypeError, "dither must be True, False, None or one of"),
        ({"dither": ["adaptive"]}, TypeError, "dither must be True, False, None or one of"),
        ({"dither": "Adaptive"}, ValueError, "dither must be one of"),
        ({"dither": "ordered", "dither_strength": 1.5}, ValueError, "dither_strength"),
        ({"dither": "ordered", "dither_strength": -0.1}, ValueError, "dither_strength"),
        ({"dither": "ordered", "dither_strength": float("nan")}, ValueError, "dither_strength"),
        ({"dither": "ordered", "dither_strength": "0.5"}, TypeError, "dither_strength"),
        ({"dither": "ordered", "dither_strength": True}, TypeError, "dither_strength"),
        ({"dither": "ordered", "min_size": 5}, ValueError, "cannot be combined"),
    ],
)
def test_bad_dither_options_are_refused_before_work(blocks, options, error, match):
    with pytest.raises(error, match=match):
        quantize(blocks, 4, channel_axis=-1, seed=0, **options)
    with pytest.raises(error, match=match):
        GREYS.apply(blocks, channel_axis=-1, **options)


def test_dithering_finds_the_nearest_colour_whatever_the_dtype():
    palette = Palette.from_colors([[0, 0, 0], [3, 3, 3]], dtype="uint8")
    image = np.full((8, 8, 3), 2, np.uint8)
    for method in ("ordered", "floyd-steinberg", "adaptive"):
        eight = palette.apply(image, channel_axis=-1, dither=method).quantized
        sixteen = palette.apply(image.astype(np.uint16) * 257, channel_axis=-1, dither=method)
        np.testing.assert_array_equal(sixteen.quantized // 257, eight)
        assert abs(eight.mean() - 2) < 0.3  # not every pixel black (a cache's nearest)


def test_huge_float_values_dither_without_overflow():
    base = np.random.default_rng(0).random((32, 32, 3))
    for method in ("adaptive", "floyd-steinberg", "ordered"):
        result = quantize(base * 1e160, 6, channel_axis=-1, seed=0, dither=method)
        assert len(np.unique(result.quantized.reshape(-1, 3), axis=0)) == 6
    with pytest.raises(ValueError, match="dither_strength must be from 0 to 1"):
        quantize(base, 4, channel_axis=-1, dither="ordered", dither_strength=2**2000)


def test_two_threads_dithering_and_cleaning_at_once_match_one_at_a_time(photos):
    from concurrent.futures import ThreadPoolExecutor

    image = photos["chelsea"]
    palette = quantize(image, 12, channel_axis=-1, seed=3).palette
    jobs = [{"dither": "floyd-steinberg"}, {"dither": "ordered"}, {"dither": True},
            {"min_size": 20, "smooth": 1}]  # fmt: skip
    alone = [palette.apply(image, channel_axis=-1, **job) for job in jobs]
    before = image.copy()
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda job: palette.apply(image, channel_axis=-1, **job), jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.quantized, b.quantized)
        np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(image, before)


# --- adaptive: error diffusion where the picture is flat ------------------------------------


def test_dither_true_is_adaptive_and_false_is_none(photos):
    image = photos["coffee"]
    palette = quantize(image, 8, channel_axis=-1, seed=0).palette
    adaptive = palette.apply(image, channel_axis=-1, dither="adaptive")
    for true in (True, np.True_):
        np.testing.assert_array_equal(
            palette.apply(image, channel_axis=-1, dither=true).quantized, adaptive.quantized
        )
    for false in (False, np.False_):
        np.testing.assert_array_equal(
            palette.apply(image, channel_axis=-1, dither=false).quantized,
            palette.apply(image, channel_axis=-1).quantized,
        )
    assert quantize(image, 8, channel_axis=-1, seed=0, dither=True).palette == palette


def test_adaptive_dithers_a_flat_gradient_and_leaves_texture_alone():
    image = grey_gradient(64, 256)
    checks = np.where(np.indices((64, 128)).sum(0) % 2 == 0, 40, 215).astype(np.uint8)
    image[:, 128:] = checks[..., None]  # right half: texture, every pixel an edge of 175
    plain = GREYS.apply(image, channel_axis=-1)
    result = GREYS.apply(image, channel_axis=-1, dither="adaptive")
    # the texture diffuses nothing: from two columns in (no flat neighbour's error), plain
    np.testing.assert_array_equal(result.quantized[:, 130:], plain.quantized[:, 130:])
    # the flat gradient is dithered: its bands are gone except within CAP steps of a grey
    flat = slice(0, 120)
    error = np.abs(block_means(result.quantized[:, flat]) - block_means(image[:, flat]))
    plain_error = np.abs(block_means(plain.quantized[:, flat]) - block_means(image[:, flat]))
    step = 85
    assert plain_error.max() > 30 and error.max() <= (0.5 - CAP) * step + 3
    np.testing.assert_array_equal(result.labels, plain.labels)
    colours = {tuple(c) for c in result.quantized.reshape(-1, 3)}
    assert colours <= {(v, v, v) for v in (0, 85, 170, 255)}


def test_adaptive_is_closer_to_the_photo_than_floyd_steinberg_and_still_smooths(photos):
    for name in ("coffee", "astronaut", "chelsea"):
        image = photos[name]
        palette = quantize(image, 8, channel_axis=-1, seed=0).palette
        plain, adaptive, fs = (
            palette.apply(image, channel_axis=-1, dither=method).quantized
            for method in (None, "adaptive", "floyd-steinberg")
        )
        mse = lambda q: float(((q.astype(float) - image) ** 2).mean())  # noqa: B023, E731
        assert mse(plain) < mse(adaptive) < 0.75 * mse(fs)  # far less noise than FS
        assert blurred_mse(image, adaptive) < 0.95 * blurred_mse(image, plain)  # smoother
