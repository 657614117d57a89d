"""Choosing K (the curve, its knee, k="auto") and editing clusters (merge, split)."""

import numpy as np
import pytest

from napari_kquant import k_curve, merge, quantize, split
from napari_kquant.analysis._choose import CURVE_SAMPLE, ciede2000

from conftest import blobs, expected_block_labels, make_blocks

# Sharma, Wu and Dalal (2005), supplementary test data: pairs 1, 7, 8, 17, 19, 25, 34
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_the_published_test_data_and_scikit_image():
    from skimage.color import deltaE_ciede2000

    a = np.array([p[0] for p in SHARMA])
    b = np.array([p[1] for p in SHARMA])
    np.testing.assert_allclose(ciede2000(a, b), [p[2] for p in SHARMA], atol=1e-4)
    rng = np.random.default_rng(0)
    lab1 = np.column_stack([rng.uniform(0, 100, 500), rng.uniform(-80, 80, (500, 2))])
    lab2 = lab1 + rng.normal(0, 8, lab1.shape)
    np.testing.assert_allclose(ciede2000(lab1, lab2), deltaE_ciede2000(lab1, lab2), atol=1e-9)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_the_knee_of_the_curve_is_the_number_of_colour_blobs(n):
    curve = k_curve(blobs(n), range(2, 13), channel_axis=-1, seed=0)
    assert curve.knee == n
    assert list(curve.ks) == list(range(2, 13)) and curve.sample == 96 * 96
    assert np.all(np.diff(curve.mse[: n - 1]) < 0)  # the error falls until K = n
    assert list(curve.table().columns) == ["k", "compactness", "mse", "delta_e2000"]


@pytest.mark.parametrize(("name", "speed"), [("coffee", "default"), ("rocket", "default"),
                                           ("coffee", "fast")])  # fmt: skip
def test_auto_k_meets_its_target_and_no_smaller_k_does(name, speed):
    from skimage import data

    from napari_kquant.analysis._choose import _draw, _measurer
    from napari_kquant.core._options import settings

    photo = getattr(data, name)()
    result = quantize(photo, "auto", channel_axis=-1, seed=3, speed=speed)
    auto = result.palette.fit["auto"]
    k = result.palette.k
    assert auto["chosen"] == k and auto["target"] == 3.0 and auto["delta_e2000"] <= 3.0
    # the same sample and fits, every K in turn (a linear search): K meets it, none below
    opts = settings(256, seed=3, sample=CURVE_SAMPLE, attempts=1, speed=speed)  # its fits
    assert opts.max_iter == (10 if speed == "fast" else 100)
    dtype, ncolour, pixels = _draw(photo, -1, None, None, opts)
    error = _measurer(pixels, dtype, ncolour, opts)
    errors = [error(j) for j in range(1, k + 1)]
    assert all(e > 3.0 for e in errors[:-1]) and errors[-1] == auto["delta_e2000"]
    looser = quantize(photo, "auto", channel_axis=-1, seed=3, target=6.0)
    assert looser.palette.k < k


def test_auto_k_bisects_in_few_fits_where_no_k_meets_the_target():
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), np.uint8)
    calls = []

    def hook(done, message):
        calls.append((done, message))

    with pytest.warns(UserWarning, match="no K up to 256 meets a mean CIEDE2000 of 0.5"):
        result = quantize(noise, "auto", channel_axis=-1, seed=1, target=0.5, progress=hook)
    assert result.palette.k == 256
    fits = [m for _, m in calls if m.endswith("fitted")]
    assert fits == [f"K = {2**i} fitted" for i in range(9)]  # doubling only: 9 fits
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] >= 0 and done[-1] <= 1


def test_auto_k_and_curve_refuse_what_they_cannot_measure():
    image = make_blocks()
    with pytest.raises(ValueError, match=r"k='auto' meets a CIEDE2000 .* needs 3 colour"):
        quantize(image[..., 0], "auto")
    with pytest.raises(ValueError, match="target is the quality k='auto' aims for"):
        quantize(image, 4, channel_axis=-1, target=3.0)
    with pytest.raises(TypeError, match="k must be a whole number or 'auto', got 'Auto'"):
        quantize(image, "Auto", channel_axis=-1)
    for bad, error in ((0, ValueError), (-1.0, ValueError), (np.nan, ValueError),
                       ("3", TypeError), (True, TypeError)):  # fmt: skip
        with pytest.raises(error, match="target must be"):
            quantize(image, "auto", channel_axis=-1, target=bad)
    for ks, error in (([4], ValueError), ([0, 3], ValueError), ("2-8", TypeError),
                      ([2.5, 4], TypeError), (range(2, 70000), ValueError)):  # fmt: skip
        with pytest.raises(error, match="ks must"):
            k_curve(image, ks, channel_axis=-1)
    with pytest.raises(ValueError, match="ks go up to 40, but the image has 16 usable"):
        k_curve(image[:4, :4], range(2, 41), channel_axis=-1)
    gray = k_curve(image[..., 0], range(2, 6), seed=0)  # no colour: no CIEDE2000
    assert gray.delta_e is None and "delta_e2000" not in gray.table()


# --- editing clusters --------------------------------------------------------------------------


def test_merge_gives_the_weighted_centre_renumbered_and_repainted():
    image = make_blocks()
    result = quantize(image, 4, channel_axis=-1, seed=1)
    before = (result.labels.copy(), result.quantized.copy())
    merged = merge(result, [2, 3])  # blue and red
    expected_centre = (result.centers[1] * 256 + result.centers[2] * 256) / 512
    assert merged.palette.k == 3 and merged.counts.tolist() == [256, 512, 256]
    np.testing.assert_allclose(merged.centers[1], expected_centre)
    old = expected_block_labels()
    np.testing.assert_array_equal(merged.labels, np.array([0, 1, 2, 2, 3])[old])
    colours = np.clip(np.rint(merged.centers), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(merged.quantized, colours[merged.labels - 1])
    assert merged.palette.fit["edits"] == [{"merge": [2, 3]}]
    # compactness grows by the merged clusters' counts times their squared shift
    shift = ((result.centers[1:3] - expected_centre) ** 2).sum(axis=1) @ [256, 256]
    assert merged.compactness == pytest.approx(result.compactness + shift)
    np.testing.assert_array_equal(result.labels, before[0])  # the input result is untouched
    np.testing.assert_array_equal(result.quantized, before[1])


def test_split_recovers_the_clusters_a_merge_joined_with_exact_compactness():
    image = make_blocks()
    three = quantize(image, 3, channel_axis=-1, seed=1)  # blue and dark share one cluster
    joined = int(np.argmax(three.counts)) + 1
    four = split(three, image, joined, 2, channel_axis=-1, seed=0)
    np.testing.assert_array_equal(four.labels, expected_block_labels())
    assert four.counts.tolist() == [256] * 4 and four.palette.k == 4
    pixels = image.reshape(-1, 3).astype(np.float64)
    sse = ((pixels - four.centers[four.labels.ravel() - 1]) ** 2).sum()
    assert four.compactness == pytest.approx(sse, rel=1e-6)  # cv2 sums the fit's in float32
    assert four.palette.fit["edits"] == [{"split": joined, "n": 2, "seed": 0}]


def test_edits_replay_from_their_record_and_keep_left_out_pixels():
    image = np.concatenate([make_blocks(), np.full((32, 32, 1), 255, np.uint8)], axis=-1)
    image[:2, :, 3] = 0  # transparent rows: left out, and kept as they were
    result = quantize(image, 4, channel_axis=-1, seed=1)
    edited = split(merge(result, [3, 4]), image, 3, 2, channel_axis=-1, seed=5)
    replayed = result
    for edit in edited.palette.fit["edits"]:
        if "merge" in edit:
            replayed = merge(replayed, edit["merge"])
        else:
            replayed = split(replayed, image, edit["split"], edit["n"], channel_axis=-1,
                             seed=edit["seed"])  # fmt: skip
    np.testing.assert_array_equal(replayed.labels, edited.labels)
    np.testing.assert_array_equal(replayed.quantized, edited.quantized)
    assert (edited.labels[:2] == 0).all()
    np.testing.assert_array_equal(edited.quantized[:2], image[:2])  # left out: unchanged
    np.testing.assert_array_equal(edited.quantized[..., 3], image[..., 3])  # alpha kept
    assert sorted(np.unique(edited.labels[2:])) == list(range(1, edited.palette.k + 1))


def test_bad_edits_name_the_parameter():
    image = make_blocks()
    result = quantize(image, 4, channel_axis=-1, seed=1)
    with pytest.raises(ValueError, match="give at least 2 different clusters"):
        merge(result, [2, 2])
    with pytest.raises(ValueError, match=r"between 1 and 4, got \[5\]"):
        merge(result, [1, 5])
    with pytest.raises(TypeError, match="labels must be cluster labels"):
        merge(result, "12")
    with pytest.raises(TypeError, match="result must be a QuantizeResult"):
        merge(result.palette, [1, 2])
    with pytest.raises(ValueError, match="n must be a whole number of at least 2"):
        split(result, image, 1, 1, channel_axis=-1)
    with pytest.raises(ValueError, match="spatial shape"):
        split(result, image[:16], 1, channel_axis=-1)
    with pytest.raises(ValueError, match="label must be between 1 and 4"):
        split(result, image, 9, channel_axis=-1)
    tiny = quantize(image[:1, :3], 3, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match="too few to split"):
        split(tiny, image[:1, :3], 1, 2, channel_axis=-1)
    import dask.array as da

    lazy = result.palette.apply(da.from_array(image, chunks=16), channel_axis=-1)
    with pytest.raises(ValueError, match="edits work on computed results"):
        merge(lazy, [1, 2])


def test_recolour_changes_the_picture_not_the_numbers():
    from napari_kquant import recolour

    image = np.concatenate([make_blocks(), np.full((32, 32, 1), 200, np.uint8)], axis=-1)
    result = quantize(image, 4, channel_axis=-1, seed=1)
    shown = recolour(result, 2, "#ff00ff")
    blue = expected_block_labels() == 2
    assert (shown.quantized[blue][:, :3] == [255, 0, 255]).all()
    np.testing.assert_array_equal(shown.quantized[~blue], result.quantized[~blue])
    assert (shown.quantized[..., 3] == 200).all()  # alpha kept
    np.testing.assert_array_equal(shown.centers, result.centers)  # measurements unchanged
    np.testing.assert_array_equal(shown.labels, result.labels)
    assert shown.table()["count"].tolist() == result.table()["count"].tolist()
    assert shown.palette.fit["display"] == {"2": "#ff00ff"}
    again = merge(shown, [1, 2])  # a merge repaints from the centres
    assert "display" not in again.palette.fit
    with pytest.raises(ValueError, match="is not a hex colour"):
        recolour(result, 2, "#ff00zz")
    with pytest.raises(ValueError, match="colour has 1 channels, the palette 3"):
        recolour(result, 2, [0.5])
    with pytest.raises(ValueError, match=r"label must be between 1 and 4, got \[0\]"):
        recolour(result, 0, "#000000")


def test_recolour_paints_a_hex_colour_in_the_images_units():
    """A kept palette's dtype may not be the image's: '#ffffff' is the image's white."""
    from napari_kquant import Palette, recolour

    palette = Palette.from_colors(["#000000", "#ffffff"])  # uint8
    floats = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    result = palette.apply(floats, channel_axis=-1)
    np.testing.assert_array_equal(recolour(result, 1, "#ffffff").quantized[result.labels == 1], 1)
    with pytest.raises(ValueError, match="the result's palette is in uint8 units, the image fl"):
        split(result, floats, 2, channel_axis=-1)  # the image it was made from: said so
    deep = (floats * 65535).astype(np.uint16)
    result = palette.apply(deep, channel_axis=-1)
    shown = recolour(result, 2, "#808080").quantized[result.labels == 2]
    np.testing.assert_array_equal(shown, 128 * 257)
    grey = quantize(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000, 2, seed=0)
    shown = recolour(grey, 1, "#808080")  # one channel: a grey, as palette.hex shows it
    np.testing.assert_array_equal(shown.quantized[grey.labels == 1], 128 * 257)
    with pytest.raises(ValueError, match="colour has 3 channels, the palette 1"):
        recolour(grey, 1, "#808081")


def test_auto_k_reports_progress_can_be_stopped_and_checks_options_first():
    from skimage import data

    photo = data.astronaut()[::4, ::4]
    calls = []

    class Stop(Exception):
        pass

    def hook(done, message):
        calls.append(message)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        quantize(photo, "auto", channel_axis=-1, target=0.5, progress=hook)
    assert calls == ["K = 1 fitted", "K = 2 fitted", "K = 4 fitted"]  # stopped at once
    with pytest.raises(ValueError, match="max_iter must be between 2 and 100, got 1"):
        quantize(photo, "auto", channel_axis=-1, max_iter=1, progress=hook)
    assert len(calls) == 3  # refused before any fit


def test_auto_k_is_one_for_a_single_pixel_or_a_flat_image():
    assert quantize(make_blocks()[:1, :1], "auto", channel_axis=-1).palette.k == 1
    flat = np.full((20, 20, 3), 100, np.uint8)
    assert quantize(flat, "auto", channel_axis=-1, seed=0).palette.k == 1


def test_edits_follow_the_results_channel_axis_and_check_their_inputs():
    from napari_kquant import recolour

    rng = np.random.default_rng(0)
    channels_first = rng.integers(0, 256, (3, 3, 8, 8), np.uint8)  # (C, Z, Y, X), Z == C
    result = quantize(channels_first, 4, channel_axis=0, seed=0)
    for edited in (merge(result, [1, 2]), split(result, channels_first, 1, channel_axis=0,
                                                seed=0)):  # fmt: skip
        colours = np.clip(np.rint(edited.centers), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(np.moveaxis(edited.quantized, 0, -1),
                                      colours[edited.labels - 1])  # fmt: skip
    shown = recolour(result, 1, "#ff00ff")
    assert (np.moveaxis(shown.quantized, 0, -1)[result.labels == 1] == [255, 0, 255]).all()
    flat = np.zeros((20, 20, 3), np.uint8)
    flat[:, 10:] = (200, 50, 50)
    two = quantize(flat, 2, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match="cluster 1 has 1 distinct colour: too few to split"):
        split(two, flat, 1, channel_axis=-1)
    with pytest.raises(
        ValueError,
        match=r"image has 1 colour channels \(channel_axis=None\), the result's palette 3",
    ):
        split(two, flat[..., 0], 1)
    with pytest.raises(ValueError, match="image is uint16, the result was made from uint8"):
        split(two, flat.astype(np.uint16), 1, channel_axis=-1)
    for bad in (None, 5, [True, 0, 0]):
        with pytest.raises(TypeError, match="colour must be '#rrggbb' or one number per"):
            recolour(two, 1, bad)


def test_a_small_pyramid_still_gives_one_result_per_level():
    image = np.tile(make_blocks(), (2, 2, 1))  # 64 x 64: smaller than the sample
    result = quantize([image, image[::2, ::2]], 4, channel_axis=-1, seed=1)
    assert isinstance(result.labels, list) and len(result.labels) == 2
    assert result.labels[1].shape == (32, 32)


def test_auto_k_refuses_values_it_would_clip_before_measuring():
    image = np.random.default_rng(2).uniform(0, 1, (32, 32, 3))
    for bad in (image - 1, image * 1e300, image * 2):
        with pytest.raises(ValueError, match=r"k='auto' measures CIEDE2000 .* from 0 to 1, but"):
            quantize(bad, "auto", target=2, channel_axis=-1)
        with pytest.raises(ValueError, match=r"target measures CIEDE2000"):
            k_curve(bad, range(2, 5), channel_axis=-1, target=2.0)
    fine = make_blocks() / 255.0  # the same kind of input, in range: measured
    assert quantize(fine, "auto", target=3, channel_axis=-1, seed=0).palette.k > 1
    signed = (image * 200).astype(np.int16) - 50
    with pytest.raises(ValueError, match=r"from 0 to 32767, but the image has values from -50"):
        quantize(signed, "auto", channel_axis=-1)


def test_the_curve_leaves_out_colour_differences_it_cannot_measure():
    """A float photo stored as 0..255 got the same meaningless delta_e2000 (10.74) at
    every K; the column is now left out with a warning, as for one channel."""
    image = make_blocks().astype(np.float32)  # 0..255 in floats
    with pytest.warns(UserWarning, match=r"delta_e2000 is left out: .* values from 0 to 255"):
        curve = k_curve(image, range(2, 5), channel_axis=-1, seed=0)
    assert curve.delta_e is None and "delta_e2000" not in curve.table().columns
    assert np.all(np.diff(curve.mse) <= 0)
    fine = k_curve(image / 255, range(2, 5), channel_axis=-1, seed=0)
    assert fine.table()["delta_e2000"].notna().all()


def test_edits_refuse_an_image_or_colour_of_other_units():
    """split re-clustered a uint8 image's pixels into a result made from float32 (centres of
    0-1 and 177 side by side) when its palette of given colours had no dtype; recolour put
    inf into a float32 picture for a colour of 1e308."""
    from napari_kquant import Palette, recolour

    photo = make_blocks()
    floats = photo.astype(np.float32) / 255
    given = Palette.from_colors([[0.0, 0, 0], [0.5, 0.5, 0.5], [1.0, 1, 1]])
    result = given.apply(floats, channel_axis=-1)
    with pytest.raises(ValueError, match="image is uint8, the result was made from float32"):
        split(result, photo, 2, 2, channel_axis=-1, seed=0)
    assert split(result, floats, 2, 2, channel_axis=-1, seed=0).palette.k == 4
    fitted = quantize(floats, 4, channel_axis=-1, seed=0)
    with pytest.raises(ValueError, match=r"colour must be numbers a float32 image can hold"):
        recolour(fitted, 1, [1e308, 0, 0])
    painted = recolour(fitted, 1, [1e30, 0, 0]).quantized  # float32 holds 1e30
    assert painted[fitted.labels == 1][0].tolist() == [np.float32(1e30), 0, 0]


def test_picture_delta_e_reads_the_kept_pixels_however_sparse():
    import dask.array as da

    from napari_kquant.analysis._choose import picture_delta_e
    from napari_kquant.core._colorspace import to_lab

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), np.uint8)
    picture = image // 32 * 32
    labels = np.zeros((64, 64), np.uint8)
    labels[1::2, 1::2] = 1  # no pixel of an even grid
    kept = labels.ravel() != 0
    lab = [to_lab(a.reshape(-1, 3)[kept], 255.0).astype(np.float64) for a in (image, picture)]
    expected = ciede2000(*lab).mean()
    assert picture_delta_e(image, picture, labels) == pytest.approx(expected, rel=1e-12)
    few = picture_delta_e(image, picture, labels, size=1024)  # (a grid of every 2nd pixel)
    assert few == pytest.approx(expected, rel=1e-12)
    assert picture_delta_e(image, picture, labels, size=500) == pytest.approx(expected, rel=0.05)
    lazy = [da.from_array(a, chunks=16) for a in (image, picture, labels)]
    assert picture_delta_e(*lazy) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(picture_delta_e(image, picture, np.zeros_like(labels)))
