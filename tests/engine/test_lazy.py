"""dask, zarr and multiscale inputs: lazy results, sampled fits, bounded memory."""

import subprocess
import sys
import textwrap

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from napari_kquant import quantize
from napari_kquant.engine._sample import SAMPLE_CHUNKS

from conftest import expected_block_labels, make_blocks


def nearest(pixels, centers):
    d = ((pixels[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    return d.argmin(1) + 1


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.coffee()  # (400, 600, 3) uint8


def check_against_brute_force(image, result, channel_axis=-1):
    """Computed lazy results equal a nearest-centre search with the same centres."""
    labels, quantized, counts, compactness = dask.compute(
        result.labels, result.quantized, result.counts, result.compactness
    )
    moved = np.moveaxis(np.asarray(image), channel_axis, -1)
    pixels = moved.reshape(-1, moved.shape[-1])
    expected = nearest(pixels, result.centers)
    np.testing.assert_array_equal(labels.ravel(), expected)
    palette = np.clip(np.rint(result.centers), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.moveaxis(quantized, channel_axis, -1), palette[labels - 1])
    np.testing.assert_array_equal(counts, np.bincount(expected, minlength=len(palette) + 1)[1:])
    sse = ((pixels - result.centers[expected - 1]) ** 2).sum()
    assert compactness == pytest.approx(sse, rel=1e-9)


def test_dask_input_gives_lazy_results_with_its_chunking(photo):
    image = da.from_array(photo, chunks=(100, 128, 3))
    result = quantize(image, 6, channel_axis=-1, seed=0, sample=3000)
    for value in (result.quantized, result.labels, result.counts, result.compactness):
        assert isinstance(value, da.Array)
    assert result.quantized.chunks == image.chunks
    assert result.labels.chunks == image.chunks[:2]
    assert result.centers.shape == (6, 3) and isinstance(result.centers, np.ndarray)
    check_against_brute_force(photo, result)


def test_fit_reads_only_a_subset_of_chunks(photo):
    loads = []

    def load(block, block_info=None):
        loads.append(block_info[None]["chunk-location"])
        return block

    big = np.tile(photo, (3, 2, 1))  # 1200 x 1200: 12 x 10 = 120 chunks
    image = da.from_array(big, chunks=(100, 120, 3)).map_blocks(load, dtype=np.uint8)
    result = quantize(image, 5, channel_axis=-1, seed=1, sample=5000)
    assert 0 < len(set(loads)) <= SAMPLE_CHUNKS < 120
    loads.clear()
    result.labels.compute()
    assert len(set(loads)) == 120


def test_lazy_fit_is_reproducible_and_scheduler_independent(photo):
    image = da.from_array(photo, chunks=(128, 128, 3))
    a = quantize(image, 5, channel_axis=-1, seed=7, sample=4000)
    with dask.config.set(scheduler="synchronous"):
        b = quantize(image, 5, channel_axis=-1, seed=7, sample=4000)
        labels_b = b.labels.compute()
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels.compute(), labels_b)


def test_zarr_input(tmp_path, photo):
    store = zarr.open_array(
        tmp_path / "photo.zarr", mode="w", shape=photo.shape, chunks=(128, 128, 3), dtype="u1"
    )
    store[:] = photo
    result = quantize(store, 4, channel_axis=-1, seed=0, sample=3000)
    assert isinstance(result.labels, da.Array)
    assert result.labels.chunks == ((128, 128, 128, 16), (128, 128, 128, 128, 88))
    check_against_brute_force(photo, result)


def test_lazy_mask_alpha_and_channel_axis(photo):
    rgba = np.concatenate([photo, np.full((*photo.shape[:2], 1), 255, np.uint8)], axis=-1)
    rgba[:50, :50, 3] = 0
    mask = np.ones(photo.shape[:2], bool)
    mask[-30:] = False
    first = np.moveaxis(rgba, -1, 0)
    image = da.from_array(first, chunks=(4, 100, 100))
    result = quantize(
        image, 4, channel_axis=0, alpha=True, mask=da.from_array(mask, chunks=50), sample=3000,
        seed=2,
    )  # fmt: skip
    labels, quantized = dask.compute(result.labels, result.quantized)
    assert quantized.shape == first.shape
    np.testing.assert_array_equal(labels[:50, :50], 0)
    np.testing.assert_array_equal(labels[-30:], 0)
    np.testing.assert_array_equal(quantized[:, -30:], first[:, -30:])
    np.testing.assert_array_equal(quantized[3], first[3])  # alpha kept
    used = labels > 0
    expected = nearest(photo[used], result.centers)
    np.testing.assert_array_equal(labels[used], expected)


def test_lazy_grayscale_float_with_nan():
    rng = np.random.default_rng(0)
    image = np.where(np.arange(300)[None, :] < 150, 0.2, 0.8) + rng.normal(0, 0.01, (200, 300))
    image[5, 5] = np.nan
    result = quantize(da.from_array(image, chunks=64), 2, seed=0, sample=2000)
    labels = result.labels.compute()
    assert labels[5, 5] == 0 and np.isnan(result.quantized[5, 5].compute())
    np.testing.assert_array_equal(labels[:, :150][labels[:, :150] > 0], 1)
    np.testing.assert_array_equal(labels[:, 150:], 2)


def test_small_lazy_image_is_fitted_exactly_like_numpy():
    blocks = make_blocks()
    lazy = quantize(da.from_array(blocks, chunks=16), 4, channel_axis=-1, seed=3)
    eager = quantize(blocks, 4, channel_axis=-1, seed=3)
    assert isinstance(lazy.labels, da.Array) and lazy.labels.chunks == ((16, 16), (16, 16))
    np.testing.assert_array_equal(lazy.labels.compute(), expected_block_labels())
    np.testing.assert_array_equal(lazy.quantized.compute(), eager.quantized)
    assert float(lazy.compactness.compute()) == eager.compactness


def test_exact_mode_on_dask_is_refused(photo):
    with pytest.raises(ValueError, match=r"sample=None \(an exact fit\) needs every pixel"):
        quantize(da.from_array(photo), 4, channel_axis=-1, sample=None)


@pytest.mark.parametrize("lazy", [False, True])
def test_multiscale_levels_share_one_palette(photo, lazy):
    levels = [photo, photo[::2, ::2], photo[::4, ::4]]
    if lazy:
        levels = [da.from_array(level, chunks=(64, 64, 3)) for level in levels]
    result = quantize(levels, 5, channel_axis=-1, seed=0, sample=4000)
    assert isinstance(result.quantized, list) and len(result.labels) == 3
    for level, labels, quantized in zip(levels, result.labels, result.quantized, strict=True):
        assert isinstance(labels, da.Array) == lazy
        assert quantized.shape == level.shape
        pixels = np.asarray(level).reshape(-1, 3)
        np.testing.assert_array_equal(np.asarray(labels).ravel(), nearest(pixels, result.centers))
    counts = np.asarray(result.counts)
    assert counts.sum() == photo.shape[0] * photo.shape[1]


def test_runs_unchanged_on_a_distributed_cluster(photo):
    distributed = pytest.importorskip("distributed")
    image = da.from_array(photo, chunks=(100, 150, 3))
    local = quantize(image, 5, channel_axis=-1, seed=11, sample=4000)
    expected = local.labels.compute(scheduler="threads")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = quantize(image, 5, channel_axis=-1, seed=11, sample=4000)
        labels, counts = client.compute([result.labels, result.counts], sync=True)
    np.testing.assert_array_equal(result.centers, local.centers)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(counts, np.bincount(expected.ravel(), minlength=6)[1:])


BIG = textwrap.dedent(
    """
    import resource, sys
    import dask, dask.array as da, numpy as np, zarr
    from skimage import data
    from napari_kquant import quantize

    TILE = data.astronaut()

    def tile(block_info=None):
        (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
        return generate(y0, y1, x0, x1)

    def generate(y0, y1, x0, x1):
        ys = np.arange(y0, y1) % 512
        xs = (np.arange(x0, x1) + y0 // 2000 * 37) % 512
        return TILE[ys[:, None], xs[None, :]]

    side, chunk = 20_000, 2_000
    image = da.map_blocks(tile, chunks=((chunk,) * 10, (chunk,) * 10, (3,)), dtype=np.uint8)
    result = quantize(image, 16, channel_axis=-1, seed=0)
    out = sys.argv[1]
    dask.compute(
        da.to_zarr(result.quantized, out + "/q.zarr", compute=False),
        da.to_zarr(result.labels, out + "/l.zarr", compute=False),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    labels = zarr.open_array(out + "/l.zarr", mode="r")
    crop = labels[11_000:11_300, 13_000:13_400]
    pixels = generate(11_000, 11_300, 13_000, 13_400).reshape(-1, 3).astype(np.float64)
    d = ((pixels[:, None] - result.centers[None]) ** 2).sum(-1)
    assert (crop.ravel() == d.argmin(1) + 1).all(), "crop labels differ from nearest centre"
    q = zarr.open_array(out + "/q.zarr", mode="r")[11_000:11_300, 13_000:13_400]
    palette = np.clip(np.rint(result.centers), 0, 255).astype(np.uint8)
    assert (q == palette[crop - 1]).all()
    print(peak, image.nbytes)
    """
)


@pytest.mark.slow
def test_larger_than_memory_image_to_zarr_in_bounded_memory(tmp_path):
    """A lazily generated 20,000 x 20,000 RGB image (1.2 GB) quantized to zarr with a peak
    resident memory under two thirds of it: the image is never held (the process's own
    imports are about 0.3 GB; dask holds a few 12 MB chunks in flight)."""
    proc = subprocess.run(
        [sys.executable, "-c", BIG, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak, nbytes = map(int, proc.stdout.split())
    assert nbytes == 20_000 * 20_000 * 3
    assert peak < nbytes * 2 / 3, f"peak RSS {peak / 2**20:.0f} MB"


@pytest.mark.parametrize("k", [100, np.int64(100), np.uint16(100)])
def test_a_lazy_image_within_the_auto_sample_is_quantized_as_numpy_whatever_the_int_type(k):
    """75,000 pixels: over 50,000 but within k=100's auto sample of 100,000."""
    image = np.random.default_rng(3).integers(0, 256, (300, 250, 3), np.uint8)
    lazy = quantize(da.from_array(image, chunks=(100, 100, 3)), k, channel_axis=-1, seed=1)
    eager = quantize(image, 100, channel_axis=-1, seed=1)
    np.testing.assert_array_equal(lazy.centers, eager.centers)
    np.testing.assert_array_equal(np.asarray(lazy.labels), eager.labels)


def test_the_fit_of_a_large_image_reads_at_most_a_tenth_of_it(monkeypatch):
    """An image over LARGE_IMAGE bytes in 100 chunks: the first round reads 10 of them,
    which hold far more than the sample needs, and no more rounds follow."""
    from napari_kquant.engine import _sample

    monkeypatch.setattr(_sample, "LARGE_IMAGE", 2**20)  # 1 MiB here, 1 GiB by default
    loads = []

    def load(block, block_info=None):
        loads.append(block_info[None]["chunk-location"])
        return block

    tiles = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), np.uint8)
    image = da.from_array(tiles, chunks=(100, 100, 3)).map_blocks(load, dtype=np.uint8)
    result = quantize(image, 4, channel_axis=-1, seed=0, sample=5000)
    assert len(set(loads)) == 10 and result.centers.shape == (4, 3)
