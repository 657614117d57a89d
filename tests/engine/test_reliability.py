"""Bad and extreme input to the engine: clear errors before any work, right numbers, no hangs."""

import threading
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_kquant import Palette, fit, fit_pooled, quantize
from napari_kquant.core._options import settings as fit_settings
from napari_kquant.engine._sample import sample_lazy

from conftest import expected_block_labels, make_blocks


def nearest(pixels, centers):
    d = ((pixels[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    return d.argmin(1) + 1


# --- extreme values --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32, np.uint32])
@pytest.mark.parametrize("sample", [None, 20])
def test_integers_at_their_limits_come_back_exactly(dtype, sample):
    info = np.iinfo(dtype)
    image = np.array([[info.min] * 30 + [info.max] * 30], dtype)
    result = quantize(image, 2, seed=0, sample=sample)
    np.testing.assert_array_equal(result.quantized, image)
    np.testing.assert_array_equal(result.labels, [[1] * 30 + [2] * 30])


@pytest.mark.parametrize("magnitude", [1e-30, 1e-12, 1e30, 1e300, -1e300])
@pytest.mark.parametrize("sample", [None, 100])
def test_huge_and_tiny_floats_are_clustered_correctly(magnitude, sample):
    rng = np.random.default_rng(0)
    base = np.repeat([[0.1, 0.2, 0.3], [0.9, 0.5, 0.7], [0.4, 0.95, 0.05]], 100, axis=0)
    pixels = (base + rng.normal(0, 0.01, base.shape)) * magnitude
    result = quantize(pixels[None], 3, channel_axis=-1, seed=1, sample=sample)
    truth = np.repeat([0, 1, 2], 100)
    for c in range(3):  # one label per true cluster
        assert len(np.unique(result.labels[0][truth == c])) == 1
    scaled = nearest(pixels / magnitude, result.centers / magnitude)  # no overflow in the check
    np.testing.assert_array_equal(result.labels[0], scaled)
    assert np.isfinite(result.centers).all()


@pytest.mark.parametrize("sample", [None, 100])
@pytest.mark.parametrize("value", [5e-324, 2.0**-1070, -5e-324])
def test_the_smallest_floats_are_fitted_without_dividing_by_zero(value, sample):
    """Found by the property test: a scale for subnormal data underflowed to 0."""
    image = np.array([[value, 0.0, value, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a divide-by-zero RuntimeWarning fails the test
        result = quantize(image, 2, seed=0, sample=sample)
    np.testing.assert_array_equal(np.sort(result.centers.ravel()), np.sort([value, 0.0]))
    np.testing.assert_array_equal(result.quantized, image)


@pytest.mark.parametrize("dither", [None, "adaptive", "floyd-steinberg", "ordered"])
@pytest.mark.parametrize("value", [5e-324, -5e-324, 1e-310, 1e-300, 1e-200, 1e-150])
def test_a_palette_of_tiny_floats_labels_by_nearest_centre(value, dither):
    """Found by an attack: applying a palette squared the distances in float64 unscaled,
    and below 1e-154 they all came out 0 (every pixel label 1)."""
    image = np.array([[value, 0.0, value, 0.0]])
    palette = fit(image, 2, seed=0, sample=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in the scaling
        result = palette.apply(image, dither=dither)
    centers = palette.centers.ravel()
    nearest = np.abs(image[..., None] - centers).argmin(-1) + 1  # no squares: no underflow
    np.testing.assert_array_equal(result.labels, nearest)
    assert len(np.unique(result.labels)) == 2
    np.testing.assert_array_equal(result.quantized, centers[result.labels - 1])


@pytest.mark.parametrize("dither", [None, "adaptive", "ordered"])
def test_pixels_far_beyond_a_tiny_palette_are_labelled_without_overflow(dither):
    """Found by the property test once tiny palettes were scaled up: 4 over a scale of
    2**-1022 overflowed (a RuntimeWarning, inf features, a NaN compactness)."""
    palette = Palette.from_colors(np.array([[0.0], [2.2250738585072014e-308]]))
    image = np.array([[0, 4, 0]], np.uint8)[..., None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = palette.apply(image, channel_axis=-1, alpha=False, dither=dither)
    assert result.labels[0, 0] == result.labels[0, 2] == 1  # 0 is centre 1 exactly
    assert result.counts.sum() == 3 and np.isfinite(result.compactness)


def test_big_endian_and_lazy_big_endian_match_native(blocks):
    swapped = blocks.astype(">u2")
    native = quantize(blocks.astype(np.uint16), 4, channel_axis=-1, seed=0)
    eager = quantize(swapped, 4, channel_axis=-1, seed=0)
    np.testing.assert_array_equal(eager.labels, native.labels)
    palette = native.palette
    lazy = palette.apply(da.from_array(swapped, chunks=(16, 16, 3)), channel_axis=-1)
    np.testing.assert_array_equal(lazy.labels.compute(), native.labels)


@pytest.mark.parametrize("dtype", [np.longdouble, np.float16, np.complex64, np.bool_, object])
def test_unsupported_dtypes_are_refused_up_front(dtype):
    if np.dtype(dtype).itemsize <= 8 and dtype is np.longdouble:
        pytest.skip("longdouble is float64 on this platform")
    image = np.zeros((4, 4), dtype)
    with pytest.raises(TypeError, match=r"image dtype .* is not supported"):
        quantize(image, 2)
    palette = Palette.from_colors(np.array([[0.0], [1.0]]))
    with pytest.raises(TypeError, match=r"image dtype .* is not supported"):
        palette.apply(image)
    with pytest.raises(TypeError, match=r"image dtype .* is not supported"):
        palette.apply(da.from_array(image, chunks=2))


def test_masked_arrays_are_honoured_or_refused(blocks):
    masked = np.ma.masked_array(blocks, mask=np.zeros_like(blocks, bool))
    masked.mask[0, :, 1] = True
    palette = fit(masked, 4, channel_axis=-1, seed=0)
    assert (palette.apply(masked, channel_axis=-1).labels[0] == 0).all()
    with pytest.raises(ValueError, match="masked arrays are not supported as multiscale"):
        palette.apply([masked, masked[::2, ::2]], channel_axis=-1)
    lazy = da.from_array(masked, chunks=(16, 16, 3), asarray=False)
    with pytest.raises(ValueError, match="masked arrays inside dask arrays"):
        palette.apply(lazy, channel_axis=-1)


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": "False"}, TypeError, "alpha must be True, False or None, got 'False'"),
        ({"alpha": 1}, TypeError, "alpha must be True, False or None, got 1"),
        ({"progress": 5}, TypeError, "progress must be a callable or None, got 5"),
        ({"criteria": ["eps"]}, ValueError, r"criteria must be one of .* got \['eps'\]"),
        ({"init": {}}, ValueError, r"init must be one of .* got \{\}"),
        ({"color_space": None}, ValueError, "color_space must be one of"),
        ({"k": 2**16 + 1}, ValueError, "k must be between 1 and 65535, got 65537"),
        ({"k": 3.0}, TypeError, "k must be an integer, got 3.0"),
        ({"epsilon": 10**400}, ValueError, "epsilon must be a finite number"),
        ({"epsilon": "1"}, TypeError, "epsilon must be a number or None"),
        ({"attempts": 2**31}, ValueError, "attempts must be between 1 and 1000"),
        ({"sample": 10**400}, ValueError, "sample must be between 1 and"),
        ({"sample": 3}, ValueError, "sample=3 is smaller than k=4"),
        ({"seed": 2**31}, ValueError, "seed must be between 0 and 2147483647"),
        ({"seed": np.int64(-1)}, ValueError, "seed must be between"),
        ({"max_iter": True}, TypeError, "max_iter must be an integer, got True"),
        ({"channel_axis": "last"}, TypeError, "channel_axis must be an integer or None"),
        ({"mask": [[True]]}, TypeError, "mask must be a boolean array, got list"),
    ],
)
def test_bad_options_are_refused_before_any_work(blocks, kwargs, error, match):
    calls = []
    options = {"k": 4, "channel_axis": -1, "progress": lambda *a: calls.append(a), **kwargs}
    with pytest.raises(error, match=match):
        quantize(blocks, **options)
    with pytest.raises(error, match=match):
        fit(blocks, **options)
    assert calls == []  # nothing ran


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match="fit\\(\\) got an unexpected option 'foo'"):
        fit(np.zeros((4, 4)), 2, foo=1)
    with pytest.raises(TypeError, match="fit_pooled\\(\\) got an unexpected option 'mask'"):
        fit_pooled([np.zeros((4, 4))], 2, mask=np.ones((4, 4), bool))
    with pytest.raises(TypeError, match="images must be a sequence of images"):
        fit_pooled(np.zeros((3, 4, 4)), 2)
    for path in ("photo.png", b"photo.png", bytearray(b"ab"), Path("photo.png")):  # not images
        with pytest.raises(TypeError, match="images must be a sequence of images, got the"):
            fit_pooled(path, 2)


# --- lazy input ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [3, 30])
def test_many_tiny_chunks_are_merged_and_labelled_right(side):
    image = np.tile(make_blocks(), (10, 10, 1))[:300, :300]  # 300 x 300
    lazy = da.from_array(image, chunks=(side, side, 3))  # 10,000 or 100 chunks
    result = quantize(lazy, 4, channel_axis=-1, seed=0, sample=2000)
    assert result.labels.numblocks == (1, 1)  # 90,000 pixels: one task
    expected = np.tile(expected_block_labels(), (10, 10))[:300, :300]
    np.testing.assert_array_equal(result.labels.compute(), expected)


def test_unknown_chunk_sizes_are_a_clear_error():
    x = da.from_array(np.arange(100.0), chunks=10)
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        quantize(x[x > 10.5], 2)


@pytest.mark.parametrize("where", ["one corner", "sparse grid"])
def test_lazy_sample_reaches_its_size_when_usable_pixels_are_few_or_gathered(where):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), np.uint8)
    mask = np.zeros((300, 400), bool)
    if where == "one corner":
        mask[:60, :60] = True  # 3600 usable pixels in one or two of 35 chunks
    else:
        mask[::5, ::5] = True  # 4800 usable pixels spread thin
    lazy = da.from_array(image, chunks=(64, 64, 3))
    opts = fit_settings(4, seed=3, sample=3000)
    _, _, sample, n_usable = sample_lazy(lazy, -1, None, mask, opts)
    assert len(sample) == 3000
    assert n_usable == mask.sum()
    in_memory = fit(image, 4, channel_axis=-1, mask=mask, seed=3, sample=3000)
    lazy_fit = fit(lazy, 4, channel_axis=-1, mask=mask, seed=3, sample=3000)
    assert lazy_fit.k == in_memory.k == 4  # both fit; the samples differ, not their size


# --- threads ---------------------------------------------------------------------------------


def run_in_thread(target):
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=target()), daemon=True)
    thread.start()
    return thread, box


def test_a_progress_hook_may_call_quantize_again(blocks):
    inner = []

    def hook(fraction, message):
        if not inner:
            inner.append(quantize(blocks, 4, channel_axis=-1, seed=1))

    thread, box = run_in_thread(
        lambda: quantize(blocks, 4, channel_axis=-1, seed=1, progress=hook)
    )
    thread.join(120)
    assert not thread.is_alive(), "deadlock: a hook that calls quantize never returned"
    np.testing.assert_array_equal(box["value"].labels, inner[0].labels)


def test_a_slow_hook_in_one_thread_does_not_block_another(blocks):
    other_done = threading.Event()

    def slow(fraction, message):
        other_done.wait(120)  # holds this run until the other thread's run has finished

    big = np.tile(blocks, (64, 64, 1))  # several assignment blocks: the hook runs between them
    first, _ = run_in_thread(lambda: quantize(big, 4, channel_axis=-1, seed=0, progress=slow))
    second, box = run_in_thread(lambda: quantize(big, 4, channel_axis=-1, seed=0))
    second.join(120)
    other_done.set()
    first.join(120)
    assert "value" in box, "the second run waited for the first one's hook"
    assert not first.is_alive()


# --- properties ------------------------------------------------------------------------------


@st.composite
def palettes_and_images(draw):
    channels = draw(st.integers(1, 4))
    k = draw(st.integers(1, 6))
    colours = draw(hnp.arrays(np.float64, (k, channels), elements=st.floats(0, 255)))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=9))
    top = 255 if dtype != np.uint16 else 65535
    image = draw(hnp.arrays(dtype, (*shape, channels), elements=st.integers(0, top).map(dtype)))
    return colours, image


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(palettes_and_images())
def test_apply_is_a_nearest_centre_search(case):
    colours, image = case
    palette = Palette.from_colors(colours)  # in the image's units
    result = palette.apply(image, channel_axis=-1, alpha=False)
    pixels = image.reshape(-1, image.shape[-1])
    d = ((pixels[:, None, :].astype(np.float64) - colours[None]) ** 2).sum(-1)
    labels = result.labels.ravel()
    # the label's centre is a nearest one (ties may go either way)
    np.testing.assert_allclose(d[np.arange(len(d)), labels - 1], d.min(1), rtol=1e-6, atol=1e-6)
    assert result.counts.sum() == len(pixels)
