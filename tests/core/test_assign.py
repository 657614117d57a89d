"""The 8-bit RGB search grid (`_assign.cells`): every pixel still gets its nearest centre.

Images here have at least `CELL_MIN_PIXELS` pixels, so the grid is used; the expected
labels come from a search of every centre in float64, the lowest index among equals.
"""

import dask.array as da
import numpy as np
import pytest

from napari_kquant import Palette
from napari_kquant.core._assign import CELL_MIN_PIXELS, cells


def nearest_by_search(pixels, centers):
    """1-based nearest centre of each row, every centre measured (in blocks of rows)."""
    out = np.empty(len(pixels), np.int64)
    for s in range(0, len(pixels), 4096):
        d = ((pixels[s : s + 4096, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
        out[s : s + 4096] = d.argmin(1) + 1
    return out


def random_image(seed, side=512):
    assert side * side >= CELL_MIN_PIXELS
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def check(palette, image):
    result = palette.apply(image, channel_axis=-1)
    pixels = image.reshape(-1, image.shape[-1])[:, :3]
    expected = nearest_by_search(pixels, palette.centers)
    np.testing.assert_array_equal(result.labels.ravel(), expected)
    np.testing.assert_array_equal(
        result.counts, np.bincount(expected, minlength=len(palette.centers) + 1)[1:]
    )
    d = ((pixels - palette.centers[expected - 1]) ** 2).sum()
    assert result.compactness == pytest.approx(d, rel=1e-9)
    return result


@pytest.mark.parametrize("k", [1, 2, 8, 64, 300])
def test_random_palettes_match_a_search_of_every_centre(k):
    centers = np.random.default_rng(k).random((k, 3)) * 255
    check(Palette.from_colors(centers, dtype="uint8"), random_image(k))


def test_equally_near_centres_keep_the_lowest_index():
    # whole-number centres one level apart: many pixels sit exactly between two
    centers = np.array([[x, y, z] for x in (100, 101) for y in (50, 51) for z in (7, 8)], float)
    centers = np.vstack([centers, centers[::-1], np.random.default_rng(0).random((40, 3)) * 255])
    image = np.random.default_rng(1).integers(95, 107, (512, 512, 3), dtype=np.uint8)
    image[..., 1] -= 50
    image[..., 2] = np.random.default_rng(2).integers(0, 16, (512, 512))
    result = check(Palette.from_colors(centers, dtype="uint8"), image)
    assert result.counts[8:16].sum() == 0  # duplicates of rows 0-7 never win


def test_a_palette_crowded_into_one_corner():
    centers = np.random.default_rng(3).random((500, 3)) * 4 + 250  # all near white
    centers[0] = (0, 0, 0)
    check(Palette.from_colors(centers, dtype="uint8"), random_image(3))


def test_alpha_and_masks_with_the_grid():
    image = np.dstack([random_image(4), np.full((512, 512), 255, np.uint8)])
    image[:10, :, 3] = 0  # transparent rows are left out
    palette = Palette.from_colors(np.random.default_rng(4).random((40, 3)) * 255, dtype="uint8")
    mask = np.ones((512, 512), bool)
    mask[:, :5] = False
    result = palette.apply(image, channel_axis=-1, alpha=True, mask=mask)
    usable = (image[..., 3] > 0) & mask
    assert (result.labels[~usable] == 0).all()
    expected = nearest_by_search(image[usable][:, :3], palette.centers)
    np.testing.assert_array_equal(result.labels[usable], expected)
    np.testing.assert_array_equal(result.quantized[..., 3], image[..., 3])


def test_lazy_chunks_share_one_grid_and_match_the_eager_result(monkeypatch):
    from napari_kquant.core import _assign

    image = random_image(5, 600)
    palette = Palette.from_colors(np.random.default_rng(5).random((256, 3)) * 255,
                                  dtype="uint8")  # fmt: skip
    eager = check(palette, image)
    built = []
    monkeypatch.setattr(_assign, "cells", lambda centers: built.append(1) or cells(centers))
    lazy = palette.apply(da.from_array(image, chunks=(480, 600, 3)), channel_axis=-1)
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)
    np.testing.assert_array_equal(np.asarray(lazy.quantized), eager.quantized)
    assert len(built) == 1  # once, by the first chunk large enough, for the 2 chunks


def test_the_grid_lists_every_centre_that_can_be_nearest():
    centers = np.random.default_rng(6).random((50, 3)) * 255
    starts, rows, nears = cells(centers)
    cube = np.stack(np.meshgrid(*[np.arange(0, 256, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    nearest = nearest_by_search(cube, centers) - 1
    code = (cube[:, 0] >> 3) << 10 | (cube[:, 1] >> 3) << 5 | (cube[:, 2] >> 3)
    for value, c, j in zip(cube, code, nearest, strict=True):
        listed = rows[starts[c] : starts[c + 1]]
        assert j in listed, value
    assert (np.diff(nears[starts[100] : starts[101]]) >= 0).all()  # nearest first


def test_the_grid_is_built_in_batches_at_any_k(monkeypatch):
    from napari_kquant.core import _assign

    centers = np.random.default_rng(8).random((300, 3)) * 255
    whole = cells(centers)
    monkeypatch.setattr(_assign, "_CELL_BATCH", 1)  # one row of cells at a time
    for a, b in zip(whole, cells(centers), strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_grid_for_a_palette_that_would_not_fit(monkeypatch):
    from napari_kquant.core import _assign

    monkeypatch.setattr(_assign, "CELL_MAX_ENTRIES", 10)
    assert cells(np.random.default_rng(7).random((20, 3)) * 255) is None
    palette = Palette.from_colors(np.random.default_rng(7).random((20, 3)) * 255,
                                  dtype="uint8")  # fmt: skip
    check(palette, random_image(7))  # a search of every centre instead


@pytest.mark.parametrize("k", [1, 5, 40, 300])
def test_initial_labels_are_the_nearest_centre_by_either_path(monkeypatch, k):
    from napari_kquant.core import _assign

    rows = np.random.default_rng(k).random((50_000, 3)).astype(np.float32) * 255
    centers = np.random.default_rng(k + 1).random((k, 3)) * 255
    centers[k // 2] = centers[0]  # equal centres: the lower index
    expected = nearest_by_search(rows, centers) - 1
    by_numpy = _assign.nearest_labels(rows, centers)
    monkeypatch.setattr(_assign, "NUMPY_PAIRS", 0)
    by_kernel = _assign.nearest_labels(rows, centers)
    for labels in (by_numpy, by_kernel):
        assert labels.dtype == np.int32 and labels.shape == (50_000, 1)
        np.testing.assert_array_equal(labels.ravel(), expected)
