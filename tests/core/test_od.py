"""color_space="od": clustering in optical density, for brightfield slides."""

import json

import numpy as np
import pytest
from skimage import color, data

from napari_kquant import Palette, fit, k_curve, merge, quantize, split
from napari_kquant.core._colorspace import OD_MAX, from_od, to_od

GLASS = 240.0
STAIN_A = np.array([0.65, 0.70, 0.29])  # haematoxylin-like OD per unit (R, G, B)
STAIN_B = np.array([0.27, 0.57, 0.78])  # DAB-like


def slide(noise=0.02, seed=0):
    """(48, 48, 3) uint8: glass, then stain A and stain B at known optical densities."""
    rng = np.random.default_rng(seed)
    od = np.zeros((48, 48, 3))
    od[16:32] = STAIN_A
    od[32:] = STAIN_B
    od += rng.normal(0, noise, od.shape)
    values = GLASS * 10.0 ** -np.clip(od, 0, None)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def test_optical_density_of_known_transmissions():
    white = np.array([255.0, 200.0, 100.0])
    od = np.array([[0.0, 1.0, 2.0], [0.5, 0.25, 3.0]])
    values = white * 10.0**-od
    np.testing.assert_allclose(to_od(values, white), od, atol=1e-6)
    np.testing.assert_allclose(from_od(od, white), values)
    # brighter than white is clear glass (0); black is capped at OD_MAX (0.1% transmission)
    capped = to_od(np.array([[255.0, 0.0, 0.0]]), np.array([200.0, 200.0, 200.0]))
    np.testing.assert_allclose(capped, [[0.0, OD_MAX, OD_MAX]], atol=1e-6)


def test_od_clusters_have_the_stains_mean_density():
    image = slide()
    result = quantize(image, 3, channel_axis=-1, seed=0, color_space="od", white=GLASS)
    expected = np.zeros((48, 48), int)
    expected[16:32], expected[32:] = 1, 2
    by_region = [int(np.bincount(result.labels[expected == r]).argmax()) for r in range(3)]
    assert sorted(by_region) == [1, 2, 3]  # one cluster per region, every pixel in it
    np.testing.assert_array_equal(result.labels, np.array(by_region)[expected])
    od = to_od(image.reshape(-1, 3).astype(float), [GLASS] * 3).astype(float)
    for region, label in enumerate(by_region):
        mean = od[(expected == region).ravel()].mean(axis=0)
        np.testing.assert_allclose(result.palette.od_centers[label - 1], mean, atol=1e-5)
    # the centres come back in RGB, and the table reports their optical density
    np.testing.assert_allclose(result.centers, from_od(result.palette.od_centers, [GLASS] * 3))
    table = result.table()
    np.testing.assert_allclose(
        table[["od_red", "od_green", "od_blue"]].to_numpy()[1:], result.palette.od_centers
    )
    assert result.palette.white == (GLASS, GLASS, GLASS)


def test_white_auto_is_the_glass_and_is_kept():
    image = slide()
    palette = fit(image, 3, channel_axis=-1, seed=0, color_space="od", white="auto")
    assert palette.white == (GLASS, GLASS, GLASS)
    assert palette.fit["white"] == "auto"
    default = fit(image, 3, channel_axis=-1, seed=0, color_space="od")
    assert default.white == (255.0, 255.0, 255.0)  # the dtype's maximum
    per_channel = fit(image, 3, channel_axis=-1, seed=0, color_space="od", white=(240, 241, 242))
    assert per_channel.white == (240.0, 241.0, 242.0)


def test_od_palette_round_trips_and_applies_across_dtypes(tmp_path):
    image = slide()
    palette = fit(image, 3, channel_axis=-1, seed=0, color_space="od", white="auto")
    for name in ("p.json", "p.csv"):
        palette.save(tmp_path / name)
        loaded = Palette.load(tmp_path / name)
        assert loaded.color_space == "od" and loaded.white == palette.white
        np.testing.assert_array_equal(loaded.centers, palette.centers)
    assert json.loads((tmp_path / "p.json").read_text())["white"] == [GLASS] * 3
    labels = palette.apply(image, channel_axis=-1).labels
    wide = palette.apply(image.astype(np.uint16) * 257, channel_axis=-1)
    np.testing.assert_array_equal(wide.labels, labels)  # white scaled with the dtype


def test_edits_and_the_k_curve_keep_the_od_space():
    image = slide()
    result = quantize(image, 3, channel_axis=-1, seed=0, color_space="od", white="auto")
    merged = merge(result, [2, 3])
    assert merged.palette.color_space == "od" and merged.palette.white == result.palette.white
    grown = split(merged, image, 2, channel_axis=-1, seed=0)
    assert grown.palette.color_space == "od" and grown.palette.k == 3
    curve = k_curve(image, [2, 3, 4], channel_axis=-1, seed=0, color_space="od", white="auto")
    assert curve.mse[1] < curve.mse[0]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"white": 0}, ValueError, "white must be finite and above 0"),
        ({"white": -3}, ValueError, "white must be finite and above 0"),
        ({"white": float("nan")}, ValueError, "white must be finite"),
        ({"white": float("inf")}, ValueError, "white must be finite"),
        ({"white": "bright"}, TypeError, "white must be None, 'auto'"),
        ({"white": True}, TypeError, "white must be None, 'auto'"),
        ({"white": [[1, 2, 3]]}, ValueError, "white must be None, 'auto'"),
        ({"white": (200, 200)}, ValueError, "white has 2 values"),
        ({"white": 300}, ValueError, "above uint8's maximum"),
        ({"white": 200, "color_space": "rgb"}, ValueError, "only for color_space='od'"),
    ],
)
def test_bad_white_levels_are_refused(options, error, match):
    options = {"color_space": "od", **options}
    with pytest.raises(error, match=match):
        quantize(slide(), 3, channel_axis=-1, seed=0, **options)


def eta_squared(labels, concentration):
    """The share of a stain's variance that the clusters' mean concentrations explain."""
    labels, concentration = labels.ravel(), concentration.ravel()
    sums = np.bincount(labels, concentration)
    counts = np.bincount(labels)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    between = (counts * (means - concentration.mean()) ** 2).sum()
    return between / ((concentration - concentration.mean()) ** 2).sum()


def test_od_clusters_follow_the_amount_of_dab_on_an_ihc_slide():
    """What "od" buys on scikit-image's IHC slide (benchmarks/bench_stains.py has the full
    study): its clusters explain more of the DAB concentration (rgb2hed) than "rgb" and
    "lab" clusters at the same K. They do not separate haematoxylin better: "lab" does."""
    image = data.immunohistochemistry()
    dab = color.rgb2hed(image)[..., 2]
    eta = {
        space: eta_squared(quantize(image, 4, channel_axis=-1, seed=0, color_space=space).labels,
                           dab)
        for space in ("rgb", "lab", "od")
    }  # fmt: skip
    assert eta["od"] > max(eta["rgb"], eta["lab"]) + 0.02


def test_extreme_white_levels_and_values_give_finite_centres():
    image = np.array([[[0, 0, 0], [10, 20, 30]], [[200, 100, 50], [255, 255, 255]]], np.uint8)
    tiny = fit(image, 1, channel_axis=-1, seed=0, color_space="od", white=1e-46)
    # every pixel is brighter than that white (OD 0) but black, capped at OD 3: mean 3/4
    np.testing.assert_allclose(tiny.od_centers, [[0.75, 0.75, 0.75]])
    huge = np.random.default_rng(0).random((20, 20, 3)) * 1e39
    result = quantize(huge, 3, channel_axis=-1, seed=0, color_space="od", white="auto")
    assert np.isfinite(result.centers).all() and np.isfinite(result.compactness)


def test_csv_white_columns_are_read_by_name(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "label,hex,dtype,red,green,blue,white_blue,white_green,white_red\n"
        "1,,uint8,10,20,30,250,200,100.0\n"
        "2,,uint8,90,80,70,250.0,200,100\n"
    )
    palette = Palette.load(path)
    assert palette.color_space == "od" and palette.white == (100.0, 200.0, 250.0)
    path.write_text("label,hex,dtype,red,green,blue,white_red,white_green,white_blue\n"
                    "1,,uint8,10,20,30,250,200,100\n2,,uint8,90,80,70,250,201,100\n")  # fmt: skip
    with pytest.raises(ValueError, match="same level on every row"):
        Palette.load(path)
