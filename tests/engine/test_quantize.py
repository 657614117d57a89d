import itertools

import cv2
import numpy as np
import pytest
from skimage import data

from napari_kquant import fit, merge, quantize, split
from napari_kquant.core._options import (
    EPSILON_FRACTION,
    MIN_AUTO_SAMPLE,
    attempt_size,
    auto_sample,
    refines_each,
)
from napari_kquant.engine._fit import GROUP_SIZE, refinement

from conftest import BLOCK_COLOURS, expected_block_labels, make_blocks, numpy_lloyd


def brute_force_labels(pixels, centers):
    """Nearest centre (1-based) by an explicit float64 distance matrix."""
    d = ((pixels[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    return d.argmin(1) + 1


# --- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [None, 200])
def test_blocks_get_exact_labels_dark_to_light(blocks, sample):
    result = quantize(blocks, 4, channel_axis=-1, seed=1, sample=sample)
    np.testing.assert_array_equal(result.labels, expected_block_labels())
    order = [1, 0, 3, 2]  # BLOCK_COLOURS dark to light
    np.testing.assert_allclose(result.centers, BLOCK_COLOURS[order], atol=3)
    np.testing.assert_array_equal(result.counts, [256, 256, 256, 256])
    assert result.quantized.shape == blocks.shape and result.quantized.dtype == np.uint8
    palette = np.clip(np.rint(result.centers), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(result.quantized, palette[result.labels - 1])


def test_grayscale_two_levels():
    rng = np.random.default_rng(3)
    image = np.where(np.arange(40)[None, :] < 25, 1000.0, 3000.0) + rng.normal(0, 20, (30, 40))
    image = image.astype(np.uint16)
    result = quantize(image, 2, seed=0)
    assert result.labels.shape == (30, 40) and result.centers.shape == (2, 1)
    np.testing.assert_array_equal(result.labels[:, :25], 1)
    np.testing.assert_array_equal(result.labels[:, 25:], 2)
    assert result.quantized.dtype == np.uint16
    assert abs(result.centers[0, 0] - 1000) < 10 and abs(result.centers[1, 0] - 3000) < 10


@pytest.mark.parametrize("sample", [None, 300])
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.uint8, 1), (np.uint16, 257), (np.int32, 1), (np.float32, 1 / 255), (np.float64, 1 / 255)],
)
def test_dtype_parity(blocks, dtype, scale, sample):
    image = (blocks.astype(np.float64) * scale).astype(dtype)
    result = quantize(image, 4, channel_axis=-1, seed=5, sample=sample)
    np.testing.assert_array_equal(result.labels, expected_block_labels())
    assert result.quantized.dtype == dtype
    order = [1, 0, 3, 2]
    np.testing.assert_allclose(result.centers / scale, BLOCK_COLOURS[order], atol=3)


def test_channel_axis_first_matches_last(blocks):
    last = quantize(blocks, 4, channel_axis=-1, seed=2)
    first = quantize(np.moveaxis(blocks, -1, 0), 4, channel_axis=0, seed=2)
    np.testing.assert_array_equal(first.labels, last.labels)
    assert first.quantized.shape == (3, 32, 32)
    np.testing.assert_array_equal(np.moveaxis(first.quantized, 0, -1), last.quantized)


def test_many_channels_on_any_axis():
    rng = np.random.default_rng(0)
    means = rng.uniform(0, 1000, (3, 5))
    truth = rng.integers(0, 3, (20, 24))
    image = (means[truth] + rng.normal(0, 5, (20, 24, 5))).astype(np.float32)
    result = quantize(np.moveaxis(image, -1, 1), 3, channel_axis=1, seed=0)
    assert result.labels.shape == (20, 24) and result.centers.shape == (3, 5)
    # one label per true class, the same partition
    for c in range(3):
        assert len(np.unique(result.labels[truth == c])) == 1
    assert len(np.unique(result.labels)) == 3


def test_stack_shares_one_palette():
    frames = np.stack([make_blocks(seed=s) for s in range(3)])
    result = quantize(frames, 4, channel_axis=-1, seed=0)
    assert result.labels.shape == (3, 32, 32)
    for t in range(3):
        np.testing.assert_array_equal(result.labels[t], expected_block_labels())


def test_rgba_alpha_left_out_and_kept(blocks):
    alpha = np.full((32, 32, 1), 255, np.uint8)
    alpha[:4, :4] = 0
    alpha[10, 10] = 128
    rgba = np.concatenate([blocks, alpha], axis=-1)
    rgba[:4, :4, :3] = 255  # transparent pixels carry a colour nobody should cluster
    result = quantize(rgba, 4, seed=1, channel_axis=-1)
    assert result.centers.shape == (4, 3)
    np.testing.assert_array_equal(result.labels[:4, :4], 0)
    expected = expected_block_labels()
    expected[:4, :4] = 0
    np.testing.assert_array_equal(result.labels, expected)
    np.testing.assert_array_equal(result.quantized[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(result.quantized[:4, :4], rgba[:4, :4])
    assert result.counts.sum() == 32 * 32 - 16


def test_four_channels_not_last_are_not_alpha():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (4, 10, 10)).astype(np.uint8)
    image[3] = 0  # would make every pixel transparent if it were alpha
    result = quantize(image, 2, channel_axis=0, seed=0)
    assert result.centers.shape == (2, 4) and (result.labels > 0).all()


def test_mask_limits_clustering(blocks):
    mask = np.ones((32, 32), bool)
    mask[16:, :] = False  # only the top two blocks
    result = quantize(blocks, 2, channel_axis=-1, mask=mask, seed=0)
    np.testing.assert_array_equal(result.labels[16:], 0)
    np.testing.assert_array_equal(result.quantized[16:], blocks[16:])
    np.testing.assert_array_equal(result.labels[:16, :16], 2)  # blue block
    np.testing.assert_array_equal(result.labels[:16, 16:], 1)  # dark block


def test_non_finite_pixels_are_left_out(blocks):
    image = blocks.astype(np.float32)
    image[0, 0, 1] = np.nan
    image[5, 5, 2] = np.inf
    result = quantize(image, 4, channel_axis=-1, seed=0)
    assert result.labels[0, 0] == 0 and result.labels[5, 5] == 0
    np.testing.assert_array_equal(result.quantized[0, 0], image[0, 0])
    assert np.isinf(result.quantized[5, 5, 2])
    assert np.isfinite(result.centers).all()


def test_lab_colour_space(blocks):
    result = quantize(blocks, 4, channel_axis=-1, seed=0, color_space="lab")
    np.testing.assert_array_equal(result.labels, expected_block_labels())
    np.testing.assert_allclose(result.centers, BLOCK_COLOURS[[1, 0, 3, 2]], atol=4)
    exact = quantize(blocks, 4, channel_axis=-1, seed=0, color_space="lab", sample=None)
    np.testing.assert_array_equal(exact.labels, expected_block_labels())


def test_label_dtype_grows_with_k():
    image = np.arange(600, dtype=np.float32).reshape(20, 30)
    assert quantize(image, 255, sample=None, seed=0).labels.dtype == np.uint8
    labels = quantize(image, 300, sample=None, seed=0).labels
    assert labels.dtype == np.uint16 and labels.max() == 300


# --- exactness against OpenCV ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize(
    ("criteria", "cv_type", "init", "flags"),
    [
        ("eps+max_iter", 3, "kmeans++", cv2.KMEANS_PP_CENTERS),
        ("max_iter", cv2.TERM_CRITERIA_MAX_ITER, "random", cv2.KMEANS_RANDOM_CENTERS),
        ("eps", cv2.TERM_CRITERIA_EPS, "kmeans++", cv2.KMEANS_PP_CENTERS),
    ],
)
@pytest.mark.parametrize("followed", [False, True], ids=["one-call", "attempt-by-attempt"])
def test_exact_mode_equals_direct_cv2_kmeans(
    photos, name, criteria, cv_type, init, flags, followed
):
    image = photos[name]
    k, seed = 6, 42
    progress = (lambda fraction, message: None) if followed else None
    result = quantize(
        image, k, channel_axis=-1, sample=None, seed=seed, criteria=criteria,
        max_iter=10, epsilon=1.0, attempts=3, init=init, progress=progress,
    )  # fmt: skip
    cv2.setRNGSeed(seed)
    compactness, labels, centers = cv2.kmeans(
        image.reshape(-1, 3).astype(np.float32), k, None, (cv_type, 10, 1.0), 3, flags
    )
    assert result.compactness == compactness
    assert result.palette.fit["max_iter"] == (100 if criteria == "eps" else 10)  # what ran
    ours = result.labels.ravel()
    # the same partition: a one-to-one map between their labels and ours
    pairs = np.unique(np.stack([labels.ravel(), ours]), axis=1)
    assert pairs.shape[1] == k
    mapping = dict(zip(pairs[0], pairs[1], strict=True))
    np.testing.assert_allclose(
        result.centers[[mapping[i] - 1 for i in range(k)]], centers, rtol=1e-6
    )


@pytest.mark.parametrize("sample", [None, "auto"])
def test_an_epsilon_whose_square_overflows_stops_as_any_huge_one(blocks, sample):
    """OpenCV squares epsilon: from ~1e154 the square is inf and cv2.kmeans crashed the
    process (found by an attack through the dock's epsilon field)."""
    options = {"channel_axis": -1, "seed": 2, "sample": sample}
    huge = quantize(blocks, 4, epsilon=1e155, **options)
    assert huge.epsilon == 1e155  # recorded as given
    for epsilon in (1e300, 1e100):
        other = quantize(blocks, 4, epsilon=epsilon, **options)
        np.testing.assert_array_equal(other.labels, huge.labels)
        assert other.compactness == huge.compactness


def test_a_huge_epsilon_on_tiny_values_is_kept_as_given():
    """Epsilon is divided by the data's scale for OpenCV: 1e300 / 1e-30 is inf there, and
    the palette must still record the finite value given."""
    tiny = np.random.default_rng(0).random((32, 32)) * 1e-30
    result = quantize(tiny, 3, seed=0, epsilon=1e300)
    assert result.epsilon == result.palette.epsilon == 1e300


def test_default_epsilon_is_relative_to_the_data(blocks):
    result = quantize(blocks, 4, channel_axis=-1, seed=0, sample=None)
    span = float(blocks.max()) - float(blocks.min())
    assert result.epsilon == pytest.approx(EPSILON_FRACTION * span)


# --- sampling --------------------------------------------------------------------------------


def test_sampled_fit_assigns_every_pixel_to_its_nearest_centre(photos):
    image = photos["astronaut"]
    result = quantize(image, 12, channel_axis=-1, seed=3, sample=2000)
    pixels = image.reshape(-1, 3)
    np.testing.assert_array_equal(
        result.labels.ravel(), brute_force_labels(pixels, result.centers)
    )
    d = ((pixels - result.centers[result.labels.ravel() - 1]) ** 2).sum()
    assert result.compactness == pytest.approx(d, rel=1e-9)
    assert result.counts.sum() == len(pixels)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_sampled_fit_nearest_centre_other_dtypes(photos, dtype):
    image = photos["coffee"].astype(dtype)
    result = quantize(image, 7, channel_axis=-1, seed=3, sample=1500)
    expected = brute_force_labels(image.reshape(-1, 3), result.centers)
    np.testing.assert_array_equal(result.labels.ravel(), expected)


def test_sampled_fit_with_mask_draws_only_usable_pixels():
    image = np.zeros((100, 100), np.float32)
    image[:, 95:] = 100.0  # only the masked-in strip has this value
    mask = np.zeros((100, 100), bool)
    mask[:, 90:] = True
    result = quantize(image, 2, mask=mask, sample=200, seed=0)
    np.testing.assert_array_equal(result.centers[:, 0], [0.0, 100.0])
    assert (result.labels[:, :90] == 0).all()


def test_seed_makes_results_reproducible(photos):
    a = quantize(photos["chelsea"], 5, channel_axis=-1, seed=9, sample=500)
    b = quantize(photos["chelsea"], 5, channel_axis=-1, seed=9, sample=500)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    c = quantize(photos["chelsea"], 5, channel_axis=-1, seed=None, sample=500)
    again = quantize(photos["chelsea"], 5, channel_axis=-1, seed=c.seed, sample=500)
    np.testing.assert_array_equal(c.labels, again.labels)


@pytest.mark.parametrize("speed", ["default", "fast"])
def test_small_images_are_fitted_exactly_by_default_and_labelled_by_nearest_centre(photos, speed):
    """An image no larger than the attempts' subsample: one cv2.kmeans call on all its
    pixels, as exact mode, but (a sample's promise) every pixel gets its nearest centre,
    not cv2's partition, which stops before relabelling (after 10 iterations when fast)."""
    image = photos["astronaut"][:48, :48]  # 2,304 pixels: under both attempt sizes
    default = quantize(image, 8, channel_axis=-1, seed=1, speed=speed)
    exact = quantize(image, 8, channel_axis=-1, seed=1, speed=speed, sample=None)
    np.testing.assert_array_equal(default.centers, exact.centers)
    assert default.palette.compactness == exact.palette.compactness
    nearest = brute_force_labels(image.reshape(-1, 3), default.centers).reshape(48, 48)
    np.testing.assert_array_equal(default.labels, nearest)
    if speed == "fast":  # cv2 stopped after 10 iterations: its partition is not nearest
        assert (exact.labels != nearest).any()


# --- fewer colours than k --------------------------------------------------------------------


@pytest.mark.parametrize("sample", [None, 50])
def test_fewer_colours_than_k_warns_and_still_works(sample):
    image = np.repeat(np.array([0, 100, 200], np.uint8), 40).reshape(12, 10)
    with pytest.warns(UserWarning, match=r"k=5, but .* only 3 distinct colours"):
        result = quantize(image, 5, seed=0, sample=sample)
    assert result.labels.min() >= 1 and result.labels.max() <= 5
    np.testing.assert_array_equal(np.unique(result.quantized), [0, 100, 200])


@pytest.mark.parametrize("speed", ["default", "fast"])
def test_the_duplicate_warning_counts_the_pixels_colours(speed):
    """Found by an attack: a centre of 255s came back as 254.99998 beside 255, and the
    warning said 3 colours for a picture of 2."""
    image = np.repeat(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8), 500, 1)
    with pytest.warns(UserWarning, match=r"^k=8, but .* only 2 distinct colours; 6 clusters"):
        quantize(image, 8, channel_axis=-1, seed=1, speed=speed)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, r"k must be between 1 and 65535, got 0"),
        ({"k": 2.5}, TypeError, r"k must be an integer, got 2\.5"),
        ({"k": 1025}, ValueError, r"k=1025 is larger than the number of usable pixels \(1024\)"),
        ({"attempts": 0}, ValueError, r"attempts must be between 1 and 1000, got 0"),
        ({"max_iter": 1}, ValueError, r"max_iter must be between 2 and 100, got 1"),
        ({"max_iter": 101}, ValueError, r"max_iter must be between 2 and 100, got 101"),
        ({"epsilon": -1.0}, ValueError, r"epsilon must be a finite number >= 0, got -1\.0"),
        ({"epsilon": float("nan")}, ValueError, r"epsilon must be a finite number"),
        ({"criteria": "iters"}, ValueError, r"criteria must be one of .*, got 'iters'"),
        ({"init": "pp"}, ValueError, r"init must be one of 'kmeans\+\+', 'random', got 'pp'"),
        ({"color_space": "hsv"}, ValueError, r"color_space must be one of .*, got 'hsv'"),
        ({"seed": -1}, ValueError, r"seed must be between 0 and 2147483647, got -1"),
        ({"speed": "quick"}, ValueError, r"speed must be one of 'default', 'fast', got 'quick'"),
        ({"speed": None}, ValueError, r"speed must be one of 'default', 'fast', got None"),
        ({"speed": "fast", "attempts": 0}, ValueError, r"attempts must be between 1 and"),
        ({"speed": "fast", "max_iter": 1.5}, TypeError, r"max_iter must be an integer"),
        ({"sample": 2}, ValueError, r"sample=2 is smaller than k=4"),
        ({"channel_axis": 3}, ValueError, r"channel_axis=3 is out of range for an image of"),
        ({"channel_axis": 1.0}, TypeError, r"channel_axis must be an integer or None"),
        ({"mask": np.ones((32, 31), bool)}, ValueError, r"mask shape \(32, 31\) does not match"),
        ({"mask": np.ones((32, 32), np.uint8)}, TypeError, r"mask must be a boolean array"),
        ({"mask": np.zeros((32, 32), bool)}, ValueError, r"no usable pixel"),
        ({"channel_axis": None, "alpha": True}, ValueError, r"alpha=True needs a channel_axis"),
    ],
)
def test_bad_options_raise_clear_errors(blocks, kwargs, error, match):
    options = {"k": 4, "channel_axis": -1, **kwargs}
    before = blocks.copy()
    with pytest.raises(error, match=match):
        quantize(blocks, **options)
    np.testing.assert_array_equal(blocks, before)


def test_numeric_options_take_numpy_scalars_and_0d_arrays(blocks):
    """What numpy gives (np.int64(4), np.array(4), np.float32(0.5)) counts as the number;
    a 1-element list or array, or a boolean, does not."""
    plain = quantize(blocks, 4, channel_axis=-1, seed=3, max_iter=7, epsilon=0.5)
    for wrap in (np.int64, np.array):
        same = quantize(blocks, wrap(4), channel_axis=wrap(-1), seed=wrap(3), max_iter=wrap(7),
                        epsilon=np.array(0.5))  # fmt: skip
        np.testing.assert_array_equal(same.labels, plain.labels)
        assert same.palette == plain.palette
        assert type(same.palette.fit["k"]) is int and type(same.palette.fit["epsilon"]) is float
    for bad in (np.array([4]), [4], np.array(True), np.True_):
        with pytest.raises(TypeError, match=r"^k must be an integer, got "):
            quantize(blocks, bad, channel_axis=-1)
    od = quantize(blocks, 4, channel_axis=-1, seed=3, color_space="od", white=np.array(250))
    assert od.palette.fit["white"] == 250.0
    auto = quantize(blocks, "auto", channel_axis=-1, seed=3, target=np.array(5.0))
    assert auto.palette == quantize(blocks, "auto", channel_axis=-1, seed=3, target=5.0).palette
    one, two = np.array(1), np.array(2)
    assert (
        split(plain, blocks, one, two, channel_axis=-1, seed=1).palette
        == split(plain, blocks, 1, 2, channel_axis=-1, seed=1).palette
    )
    assert merge(plain, np.array([1, 2])).palette == merge(plain, [1, 2]).palette
    assert plain.table(background=one, pixel_size=np.array(0.5)).equals(
        plain.table(background=1, pixel_size=0.5)
    )
    assert plain.table(background=[one], pixel_size=[two, np.array(3.0)]).equals(
        plain.table(background=[1], pixel_size=[2, 3.0])
    )
    for bad in (np.array(np.datetime64(4, "ns")), np.ma.array(4, mask=True), np.array(4 + 0j)):
        with pytest.raises(TypeError, match=r"^k must be an integer, got "):
            quantize(blocks, bad, channel_axis=-1)
        with pytest.raises(TypeError, match=r"^labels must be cluster labels"):
            merge(plain, bad)
        with pytest.raises(TypeError, match=r"^pixel_size must be a number or one number per"):
            plain.table(pixel_size=bad)
        with pytest.raises(TypeError, match=r"^background must be labels"):
            plain.table(background=bad)
    # sequences that are not arrays are still sequences
    assert plain.table(background={1, 2}).equals(plain.table(background=[1, 2]))
    assert merge(plain, (label for label in (1, 2))).palette == merge(plain, [1, 2]).palette


def test_lab_needs_three_colour_channels():
    with pytest.raises(ValueError, match=r"color_space='lab' needs 3 colour channels .* has 1"):
        quantize(np.zeros((5, 5), np.uint8), 1, color_space="lab")


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((4, 4), bool), TypeError, r"image dtype bool is not supported"),
        (np.zeros((4, 4), complex), TypeError, r"image dtype complex128 is not supported"),
        (np.zeros((4, 4), object), TypeError, r"image dtype object is not supported"),
        (np.zeros((4, 4), np.float16), TypeError, r"image dtype float16 is not supported"),
        (np.zeros((0, 4), np.uint8), ValueError, r"image is empty \(shape \(0, 4\)\)"),
        (np.uint8(5), ValueError, r"image must be an array of pixels, got a single value"),
        (np.full((4, 4), np.nan), ValueError, r"no usable pixel"),
    ],
)
def test_bad_images_raise_clear_errors(image, error, match):
    with pytest.raises(error, match=match):
        quantize(image, 1)


# --- inputs are never modified ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_blocks(),
        lambda: make_blocks().astype(np.float64),
        lambda: np.asfortranarray(make_blocks()),
        lambda: make_blocks()[::2, ::-1],
        lambda: np.moveaxis(make_blocks(), -1, 0),
    ],
    ids=["uint8", "float64", "fortran", "strided-view", "channels-first"],
)
@pytest.mark.parametrize("sample", [None, 100])
def test_input_is_never_modified(make, sample):
    image = make()
    channel_axis = 0 if image.shape[0] == 3 else -1
    before = image.copy()
    mask = np.ones(np.delete(image.shape, channel_axis), bool)
    result = quantize(image, 3, channel_axis=channel_axis, sample=sample, seed=0, mask=mask)
    np.testing.assert_array_equal(image, before)
    assert not np.shares_memory(result.quantized, image)
    assert result.quantized.shape == image.shape


def test_array_likes_are_accepted(blocks):
    result = quantize(blocks.tolist(), 4, channel_axis=-1, seed=1)
    np.testing.assert_array_equal(result.labels, expected_block_labels())


# --- progress and stopping -------------------------------------------------------------------


@pytest.mark.parametrize("sample", [None, 500])
def test_progress_is_reported_in_order(photos, sample):
    seen = []
    quantize(photos["coffee"], 4, channel_axis=-1, attempts=3, sample=sample, seed=0,
             progress=lambda fraction, message: seen.append((fraction, message)))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [m for i, (_, m) in enumerate(seen) if i == 0 or m != seen[i - 1][1]]
    assert messages[:3] == [f"K-means attempt {i} of 3" for i in (1, 2, 3)]


def test_fits_report_progress_up_to_the_end(photos):
    """fit and fit_pooled stopped at 0.75 (the start of the last of 4 steps)."""
    from napari_kquant import fit, fit_pooled

    image = photos["coffee"][:100, :100]
    for pooled in (False, True):
        seen = []
        hook = seen.append
        if pooled:
            fit_pooled([image] * 2, 4, channel_axis=-1, seed=0, progress=lambda *a: hook(a))  # noqa: B023
        else:
            fit(image, 4, channel_axis=-1, seed=0, progress=lambda *a: hook(a))  # noqa: B023
        fractions = [f for f, _ in seen]
        assert fractions == sorted(fractions) and seen[-1] == (1.0, "fitting done")


def test_raising_from_progress_stops_the_run(photos):
    class Stop(Exception):
        pass

    def stop_at_second_attempt(fraction, message):
        if message == "K-means attempt 2 of 3":
            raise Stop

    image = photos["astronaut"]
    before = image.copy()
    with pytest.raises(Stop):
        quantize(image, 4, channel_axis=-1, attempts=3, progress=stop_at_second_attempt)
    np.testing.assert_array_equal(image, before)


# --- the staged fit: attempts on a subsample, then Lloyd over the sample's colours -----------


def staged_by_hand(image, k, sample, seed, attempts, crit, speed="default", each=None):
    """What a sampled fit is: the seeded sample, the seeded attempt subsample, the attempts
    (direct cv2 calls), then weighted Lloyd over the sample's distinct colours (numpy)
    from each attempt where `refines_each` (else from the best), the lowest error
    kept. Returns (compactness, centres)."""
    pixels = image.reshape(-1, 3)
    chosen = np.sort(np.random.default_rng(seed).choice(len(pixels), sample, replace=False))
    data = pixels[chosen].astype(np.float32)
    size = attempt_size(k, speed)
    sub = data[np.sort(np.random.default_rng(seed).choice(sample, size, replace=False))]
    cv2.setRNGSeed(seed)
    found = [cv2.kmeans(sub, k, None, crit, 1, cv2.KMEANS_PP_CENTERS) for _ in range(attempts)]
    if not (refines_each(k, attempts) if each is None else each):
        found = [min(found, key=lambda attempt: attempt[0])]
    colours, counts = np.unique(data.astype(np.float64), axis=0, return_counts=True)
    results = []
    for _, _, start in found:
        centers, _ = numpy_lloyd(colours, counts.astype(np.float64), start, crit[1], crit[2])
        centers = centers.astype(np.float32)  # as cv2 gives centres
        labels = brute_force_labels(data, centers) - 1
        results.append((float(((data.astype(np.float64) - centers[labels]) ** 2).sum()), centers))
    return min(results, key=lambda result: result[0])


@pytest.mark.parametrize("followed", [False, True], ids=["one-call", "step-by-step"])
# one group of bounds: the best attempt refined (at K=12 seed 5 refining each would be 5%
# better: below K=13 it is not done), each attempt refined (at K=20 seed 1 the attempt best
# on the subsample is not the best refined); two groups, the best attempt refined
@pytest.mark.parametrize(("k", "seed"), [(6, 7), (12, 5), (20, 1), (2 * GROUP_SIZE + 3, 7)])
def test_sampled_fit_is_attempts_on_a_subsample_then_lloyd_on_the_sample(
    photos, followed, k, seed
):
    image = photos["coffee"]  # 12,288 pixels: a sample of 12,000, attempts on 10,000
    progress = (lambda fraction, message: None) if followed else None
    palette = fit(image, k, channel_axis=-1, sample=12_000, attempts=3, max_iter=20,
                  epsilon=1.0, seed=seed, progress=progress)  # fmt: skip
    compactness, centers = staged_by_hand(image, k, 12_000, seed, 3, (3, 20, 1.0))
    assert palette.compactness == pytest.approx(compactness, rel=1e-9)
    if k == 20:  # refining only the subsample's best would have been 2% worse
        best_only, _ = staged_by_hand(image, k, 12_000, seed, 3, (3, 20, 1.0), each=False)
        assert compactness < 0.98 * best_only
    order = np.lexsort((*centers.T[::-1], centers @ [0.299, 0.587, 0.114]))
    np.testing.assert_allclose(palette.centers, centers[order], rtol=1e-5)


def test_fast_speed_is_the_staged_fit_with_its_own_defaults(photos):
    image = photos["coffee"]  # 12,288 pixels: all in the fast sample; attempts on 2,500
    k = 2 * GROUP_SIZE + 3
    palette = fit(image, k, channel_axis=-1, seed=5, speed="fast")
    fitted = {key: palette.fit[key] for key in ("speed", "attempts", "max_iter", "sample")}
    assert fitted == {"speed": "fast", "attempts": 1, "max_iter": 10, "sample": 25_000}
    assert attempt_size(k, "fast") == 2_500 < attempt_size(k)
    crit = (3, 10, palette.epsilon)
    compactness, centers = staged_by_hand(image, k, 12_288, 5, 1, crit, speed="fast")
    assert palette.compactness == pytest.approx(compactness, rel=1e-9)
    order = np.lexsort((*centers.T[::-1], centers @ [0.299, 0.587, 0.114]))
    np.testing.assert_allclose(palette.centers, centers[order], rtol=1e-5)


def test_fast_speed_gives_way_to_options_given(photos):
    palette = fit(photos["chelsea"], 40, channel_axis=-1, seed=1, speed="fast", attempts=2,
                  max_iter=30, sample=6_000)  # fmt: skip
    assert (palette.fit["attempts"], palette.fit["max_iter"], palette.fit["sample"]) == (
        2,
        30,
        6_000,
    )
    assert (
        fit(photos["chelsea"], 300, channel_axis=-1, seed=1, speed="fast").fit["sample"] == 30_000
    )


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_fast_speed_labels_every_pixel_by_its_nearest_centre(color_space):
    big = cv2.resize(data.astronaut(), (256, 192), interpolation=cv2.INTER_AREA)  # > the sample
    before = big.copy()
    result = quantize(big, 32, channel_axis=-1, seed=2, speed="fast", color_space=color_space)
    again = quantize(big, 32, channel_axis=-1, seed=2, speed="fast", color_space=color_space)
    np.testing.assert_array_equal(result.labels, again.labels)  # reproducible from the seed
    np.testing.assert_array_equal(big, before)
    pixels = big.reshape(-1, 3)
    if color_space == "lab":
        scaled = pixels.astype(np.float32) * np.float32(1 / 255)  # as the fit scales them
        features = cv2.cvtColor(scaled[None], cv2.COLOR_RGB2Lab)[0]
        centers = result.palette.lab_centers
    else:
        features, centers = pixels, result.centers
    d = ((features[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    own = np.take_along_axis(d, result.labels.reshape(-1, 1).astype(np.int64) - 1, 1)[:, 0]
    assert np.all(own <= d.min(1) + 1e-6 * (1 + d.min(1)))  # nearest (ties within rounding)


def test_a_sample_within_the_attempt_size_is_one_plain_fit(photos):
    image = photos["chelsea"]
    palette = fit(image, 5, channel_axis=-1, sample=9_000, attempts=2, seed=3)
    pixels = image.reshape(-1, 3)
    chosen = np.sort(np.random.default_rng(3).choice(len(pixels), 9_000, replace=False))
    cv2.setRNGSeed(3)
    compactness, _, _ = cv2.kmeans(
        pixels[chosen].astype(np.float32), 5, None, (3, 100, palette.epsilon), 2,
        cv2.KMEANS_PP_CENTERS,
    )  # fmt: skip
    assert palette.compactness == compactness


def blobs(k, per=160, seed=0):
    """k well separated colours (a 6 x 6 x 6 lattice, 40 apart), ``per`` noisy pixels each."""
    lattice = np.stack(np.meshgrid(*[np.arange(6) * 40 + 20] * 3, indexing="ij"), -1)
    colours = lattice.reshape(-1, 3)[np.random.default_rng(seed).permutation(216)[:k]]
    noise = np.random.default_rng(seed + 1).integers(-3, 4, (k, per, 3))
    return colours, (colours[:, None, :] + noise).reshape(1, -1, 3).astype(np.uint8)


def test_a_large_k_fit_is_the_same_step_by_step_and_run_again():
    k = 160
    colours, image = blobs(k)
    runs = [
        quantize(image, k, channel_axis=-1, sample=20_000, seed=0, progress=progress)
        for progress in (None, lambda fraction, message: None, None)
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.centers, runs[0].centers)
        assert other.palette.compactness == runs[0].palette.compactness
    result = runs[0]
    assert result.palette.fit["sample"] == 20_000
    # most blobs get a centre of their own, at their mean (k-means may merge a few)
    d = np.sqrt(((result.centers[:, None, :] - colours[None]) ** 2).sum(-1))
    assert len(np.unique(d.argmin(1)[d.min(1) < 1.0])) >= 0.9 * k


def test_refinement_matches_its_description():
    k = 128
    _, image = blobs(k, per=200, seed=4)
    data = image.reshape(-1, 3).astype(np.float32)
    centers = data[np.random.default_rng(0).choice(len(data), k, replace=False)] + 0.5
    crit = (3, 100, 0.1)
    compactness, labels, refined = refinement(data, centers, crit, seed=1)
    np.testing.assert_array_equal(labels.ravel() + 1, brute_force_labels(data, refined))
    d = data.astype(np.float64) - refined[labels.ravel()]
    assert compactness == pytest.approx((d * d).sum(), rel=1e-12)
    start = ((data.astype(np.float64) - centers[brute_force_labels(data, centers) - 1]) ** 2).sum()
    assert compactness < start  # refining never makes it worse here
    colours, counts = np.unique(data.astype(np.float64), axis=0, return_counts=True)
    expected, _ = numpy_lloyd(colours, counts.astype(np.float64), centers, 100, 0.1)
    np.testing.assert_allclose(refined, expected, rtol=1e-5)


def test_progress_announces_the_refinement_and_cancel_stops_it(photos):
    seen = []

    class Stop(Exception):
        pass

    def hook(fraction, message):
        seen.append(message)
        if message.startswith("K-means refinement"):
            raise Stop

    with pytest.raises(Stop):
        quantize(photos["coffee"], 6, channel_axis=-1, sample=12_000, seed=0, progress=hook)
    assert seen[-1] == "K-means refinement on 12,000 pixels"
    assert "K-means attempt 3 of 3" in seen


def test_progress_announces_each_refinement_where_every_attempt_is_refined(photos):
    seen = []
    quantize(photos["coffee"], 16, channel_axis=-1, sample=12_000, seed=0,
             progress=lambda fraction, message: seen.append((fraction, message)))  # fmt: skip
    fitting = [(f, m) for f, m in seen if m.startswith("K-means")]
    steps = list(dict.fromkeys(m for _, m in fitting))
    assert steps == [f"K-means attempt {i} of 3" for i in (1, 2, 3)] + [
        f"K-means refinement {i} of 3 on 12,000 pixels" for i in (1, 2, 3)
    ]
    fractions = [f for f, _ in fitting]
    assert fractions == sorted(fractions)

    class Stop(Exception):
        pass

    def hook(fraction, message):
        if message.startswith("K-means refinement 2"):
            raise Stop

    with pytest.raises(Stop):
        quantize(photos["coffee"], 16, channel_axis=-1, sample=12_000, seed=0, progress=hook)


def test_sample_auto_grows_with_k(photos):
    image = photos["astronaut"]
    assert fit(image, 4, channel_axis=-1, seed=0).fit["sample"] == MIN_AUTO_SAMPLE
    assert fit(image, 4, channel_axis=-1, seed=0, sample="auto").fit["sample"] == 50_000
    assert auto_sample(12) == 50_000 and auto_sample(13) == 52_000
    assert auto_sample(64) == 256_000 and auto_sample(192) == auto_sample(256) == 768_000
    assert auto_sample(768) == 768_000 and auto_sample(1000) == 1_000_000
    assert quantize(image, 20, channel_axis=-1, seed=0).palette.fit["sample"] == 80_000


@pytest.mark.parametrize("bad", ["lots", " auto", "AUTO", ""])
def test_sample_strings_other_than_auto_are_refused(photos, bad):
    with pytest.raises(ValueError, match=r"sample must be a whole number, 'auto' or None, got"):
        quantize(photos["astronaut"], 4, channel_axis=-1, sample=bad)


def test_an_image_of_one_colour_at_a_large_k():
    image = np.full((120, 120, 3), 77, np.uint8)
    with pytest.warns(UserWarning, match="only 1 distinct colours"):
        result = quantize(image, 129, channel_axis=-1, seed=3)
    np.testing.assert_array_equal(result.centers, 77.0)
    assert (result.labels > 0).all() and result.counts.sum() == 120 * 120


def test_progress_of_k_auto_runs_forward_from_zero():
    seen = []
    quantize(make_blocks(), "auto", channel_axis=-1, seed=1, target=8.0,
             progress=lambda done, message: seen.append(done))  # fmt: skip
    assert seen[0] < 0.1 and seen[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(seen)), seen


@pytest.mark.parametrize("case", ["float outlier", "8 channels", "4 x 16-bit"])
def test_sampled_fits_label_every_pixel_with_its_nearest_centre_on_awkward_data(case):
    rng = np.random.default_rng(0)
    if case == "float outlier":  # one hot pixel once squeezed every other value together
        image, k = rng.random((150, 150, 3)), 8
        image[0, 0] = 1e9
    elif case == "8 channels":
        image = np.repeat(rng.integers(96, 106, (100, 200))[..., None], 8, -1).astype(np.uint8)
        image[0, 0], image[0, 1], k = 0, 255, 8
    else:
        image, k = rng.integers(0, 65536, (150, 150, 4)).astype(np.uint16), 16
    result = quantize(image, k, channel_axis=-1, alpha=False, seed=1)
    assert result.palette.fit["sample"] is not None  # the sampled path
    pixels = image.reshape(-1, image.shape[-1])
    np.testing.assert_array_equal(
        result.labels.ravel(), brute_force_labels(pixels, result.palette.centers)
    )


def test_uint16_values_at_the_top_of_the_range_split_into_their_own_clusters():
    image = np.random.default_rng(0).integers(65534, 65536, (300, 300)).astype(np.uint16)
    result = quantize(image, 2, seed=1)  # cv2's float32 centres land off the values
    np.testing.assert_array_equal(result.centers.ravel(), [65534.0, 65535.0])
    np.testing.assert_array_equal(result.counts, np.bincount(image.ravel() - 65533)[1:])


def test_lab_refinement_finds_distinct_colours_among_the_pixels_with_the_same_result(photos):
    """In L*a*b* the refinement ranks the pixels' own 8-bit values, not the floats."""
    from napari_kquant.core._colorspace import to_lab

    sample = np.concatenate([photos[name].reshape(-1, 3) for name in photos])
    data = to_lab(sample, 255.0)
    start = data[:: len(data) // 20][:20].copy()
    by_floats = refinement(data, start, (3, 100, 0.0), 0)
    by_pixels = refinement(data, start, (3, 100, 0.0), 0, raw=sample)
    np.testing.assert_array_equal(by_pixels[1], by_floats[1])
    np.testing.assert_allclose(by_pixels[2], by_floats[2], rtol=1e-6)
    assert by_pixels[0] == pytest.approx(by_floats[0], rel=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_od_of_a_signed_image_over_its_whole_range_is_refined(dtype):
    """Over 10,000 pixels (the refinement's distinct values: the range wrapped in the
    image's own dtype and divided by zero)."""
    info = np.iinfo(dtype)
    image = np.zeros((101, 101), dtype)
    image[0, :2] = info.min, info.max
    result = quantize(image, 2, color_space="od", seed=0)
    assert sorted(result.counts.tolist()) == [1, 101 * 101 - 1]
    assert result.labels[0, 1] != result.labels[0, 2] == result.labels[50, 50]
