"""The search grid (`_assign.cells`): every pixel still gets its nearest centre, whatever
its dtype or space (8-bit, 16-bit, float, L*a*b*, optical density).

Images here have at least `CELL_MIN_PIXELS` pixels, so the grid is used from `CELL_MIN_K`
centres (below, every centre is measured, three channels written out); the expected
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


@pytest.mark.parametrize("extra", [40, 0])  # K=56 (the grid) and K=16 (every centre)
def test_equally_near_centres_keep_the_lowest_index(extra):
    # whole-number centres one level apart: many pixels sit exactly between two
    centers = np.array([[x, y, z] for x in (100, 101) for y in (50, 51) for z in (7, 8)], float)
    more = np.random.default_rng(0).random((extra, 3)) * 255
    centers = np.vstack([centers, centers[::-1], more])
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
    built = []
    monkeypatch.setattr(_assign, "cells", lambda *a: built.append(1) or cells(*a))
    eager = check(palette, image)
    lazy = palette.apply(da.from_array(image, chunks=(480, 600, 3)), channel_axis=-1)
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)
    np.testing.assert_array_equal(np.asarray(lazy.quantized), eager.quantized)
    assert len(built) == 1  # once in this process: for the eager image and both chunks


def test_a_grid_is_built_once_per_process_whatever_copies_of_the_palette_arrive(monkeypatch):
    """A dask.distributed worker unpickles its own copy of the assigner for every chunk
    task: the grid still is built once (kept by what it depends on, not by the copy)."""
    import pickle

    from napari_kquant.core import _assign
    from napari_kquant.engine._apply import assigner

    palette = Palette.from_colors(np.random.default_rng(11).random((64, 3)) * 255,
                                  dtype="uint8")  # fmt: skip
    built = []
    monkeypatch.setattr(_assign, "cells", lambda *a: built.append(1) or cells(*a))
    image = random_image(11)
    pix = image.reshape(-1, 3)
    labels = [pickle.loads(pickle.dumps(assigner(palette, np.uint8))).assign(pix, None)[0]
              for _ in range(3)]  # fmt: skip
    assert len(built) == 1
    np.testing.assert_array_equal(labels[0], nearest_by_search(pix, palette.centers))
    np.testing.assert_array_equal(labels[0], labels[2])


def test_the_grid_lists_every_centre_that_can_be_nearest():
    centers = np.random.default_rng(6).random((50, 3)) * 255
    _, _, starts, rows, nears = cells(centers)
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


def check_in_space(palette, image, every=7):
    """Every ``every``-th pixel has the label of its nearest centre, measured where the
    palette measures (the whole image goes through the grid)."""
    from napari_kquant.engine._apply import assigner

    labels = palette.apply(image, channel_axis=-1).labels.ravel()
    asg = assigner(palette, image.dtype)
    pix = image.reshape(-1, image.shape[-1])[::every, :3]
    features = pix if asg.to_features is None else asg.to_features(pix)
    expected = nearest_by_search(np.asarray(features, np.float64), asg.centers)
    np.testing.assert_array_equal(labels[::every], expected)


def photo_like(seed, side=512):
    """Smooth colour fields with noise: values spread over the whole range, as in a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(3 * x + c) * np.cos(2 * y - c) for c in (0, 1, 2)], -1) * 0.5 + 0.5
    return np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1)


@pytest.mark.parametrize(
    "kind", ["uint16", "uint16 12-bit", "int16", "float32", "float64 wide", "lab", "od"]
)
@pytest.mark.parametrize("k", [5, 256])
def test_every_three_channel_space_gets_the_nearest_centre(kind, k):
    unit = photo_like(k)
    options = {}
    if kind == "uint16":
        image = (unit * 65535).astype(np.uint16)
    elif kind == "uint16 12-bit":
        image = (unit * 4095).astype(np.uint16)
    elif kind == "int16":
        image = (unit * 2000 - 1000).astype(np.int16)
    elif kind == "float32":
        image = unit.astype(np.float32)
    elif kind == "float64 wide":
        image = unit * 1e6 - 3e5
    else:
        image = (unit * 255).astype(np.uint8)
        options["color_space"] = kind
    if options:  # centres fitted in that space
        from napari_kquant import fit

        palette = fit(image, k, channel_axis=-1, seed=1, **options)
    else:  # centres on pixels, and the fitted range
        pick = np.random.default_rng(k).choice(512 * 512, k, replace=False)
        palette = Palette.from_colors(image.reshape(-1, 3)[pick], dtype=str(image.dtype))
    check_in_space(palette, image)


def test_pixels_beyond_the_grid_and_on_cell_edges():
    from napari_kquant.core import _assign

    centers = np.random.default_rng(9).random((40, 3))
    palette = Palette(centers=centers, dtype="float64", value_range=(0.0, 1.0))
    lo, width = _assign.box(centers, np.array([[0.0] * 3, [1.0] * 3]), False)
    rng = np.random.default_rng(10)
    edges = lo + width * rng.integers(0, 33, (300_000, 3))  # exactly on cell boundaries
    beyond = rng.normal(0.5, 2.0, (300_000, 3))  # far outside the box (and the fitted range)
    image = np.concatenate([edges, beyond]).reshape(600, 1000, 3)
    check_in_space(palette, image, every=1)


def test_integer_grids_start_on_whole_numbers_and_cover_the_dtype_when_as_fine():
    from napari_kquant.core import _assign

    limits8 = np.array([[0.0] * 3, [255.0] * 3])
    lo, width = _assign.box(np.array([[30.0, 40, 50], [200, 210, 220]]), limits8, True)
    assert lo.tolist() == [0, 0, 0] and width.tolist() == [8, 8, 8]  # the 8-bit cube
    limits16 = np.array([[0.0] * 3, [65535.0] * 3])
    lo, width = _assign.box(np.array([[100.0, 100, 100], [4000, 4000, 3000]]), limits16, True)
    assert (width == 2 ** np.round(np.log2(width))).all() and (lo % width == 0).all()
    assert (lo <= 100).all() and (lo + 32 * width > 4000).all() and width.max() <= 256
