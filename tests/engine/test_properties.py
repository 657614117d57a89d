"""Property-based tests over random shapes, dtypes, k, masks and sampling."""

import re
import warnings

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_kquant import quantize
from napari_kquant.core._colorspace import safe_scale

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]


@st.composite
def cases(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    spatial = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    shape = spatial if channels is None else (*spatial, channels)
    if dtype.kind == "f":
        elements = st.floats(-1e3, 1e3, width=dtype.itemsize * 8)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(max(info.min, -5000)), int(min(info.max, 5000)))
    image = draw(hnp.arrays(dtype, shape, elements=elements))
    mask = draw(st.none() | hnp.arrays(np.bool_, spatial))
    k = draw(st.integers(1, 6))
    sample = draw(st.sampled_from([None, 8, 40]))
    return image, channels, mask, max(k, 1), sample


def usable_count(image, channels, mask):
    valid = np.ones(image.shape[: image.ndim - (channels is not None)], bool)
    if mask is not None:
        valid &= mask
    if channels == 4:
        valid &= image[..., 3] != 0
    return int(valid.sum())


def as_clustered(image, channels, mask):
    """The usable pixels' colours, and the float32 values cv2.kmeans clusters (after the
    engine's scaling)."""
    pix = image.reshape(-1, 1) if channels is None else image.reshape(-1, channels)
    valid = np.ones(image.shape[: image.ndim - (channels is not None)], bool)
    if mask is not None:
        valid &= mask
    pix = pix[valid.ravel()]
    if channels == 4:
        pix = pix[pix[:, 3] != 0][:, :3]
    scale = safe_scale(float(np.abs(pix).max()))
    return pix, (pix.astype(np.float64) / scale).astype(np.float32)


def unresolvable_pair(image, channels, mask):
    """Whether two distinct usable colours are closer than cv2.kmeans' float32 squared
    distances resolve (their distance squares to 0 after the engine's scaling): no fit
    can tell them apart, and it may honestly warn that it found fewer than k clusters."""
    colours = np.unique(as_clustered(image, channels, mask)[1], axis=0)
    diff = colours[:, None, :] - colours[None, :, :]
    squared = (diff * diff).sum(axis=2, dtype=np.float32)
    np.fill_diagonal(squared, 1)
    return bool((squared == 0).any())


def underflows(image, channels, mask):
    """Whether usable values other than 0 read as 0 in float32 (beside far larger ones)."""
    pix, clustered = as_clustered(image, channels, mask)
    return np.count_nonzero(clustered == 0) > np.count_nonzero(pix == 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 1000))
@example(  # 0 and 1e-45 (CI, 2026-12-06): their distance squares to 0 in float32
    case=(np.array([[0, 1, 1e-45], [1e-45] * 3], np.float32), None, None, 3, None), seed=0
)
@example(  # 0 to 100 beside 1e80: float32 reads them all as 0
    case=(np.array([[1e80, 1, 2], [3, 4, 5]]), None, None, 3, None), seed=0
)
def test_quantize_invariants(case, seed):
    image, channels, mask, k, sample = case
    if sample is not None and sample < k:
        sample = k
    channel_axis = None if channels is None else -1
    n_usable = usable_count(image, channels, mask)
    before = image.copy()
    if n_usable < k:
        try:
            quantize(image, k, channel_axis=channel_axis, mask=mask, seed=seed, sample=sample)
        except ValueError as e:
            assert "usable pixel" in str(e)
        else:
            raise AssertionError("expected a ValueError for too few usable pixels")
        np.testing.assert_array_equal(image, before)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = quantize(image, k, channel_axis=channel_axis, mask=mask, seed=seed, sample=sample)
        except ValueError as e:  # values too far apart for float32 to hold k colours
            assert "too far apart for float32" in str(e) and underflows(image, channels, mask)
            np.testing.assert_array_equal(image, before)
            return
    for w in caught:
        message = str(w.message)
        if re.fullmatch(r"k=\d+, but the fit found fewer; \d+ clusters duplicate others", message):
            assert unresolvable_pair(image, channels, mask), message
        else:
            assert re.fullmatch(r"k=\d+, but the clustered pixels .* distinct colours.*", message)

    np.testing.assert_array_equal(image, before)
    spatial = image.shape if channels is None else image.shape[:-1]
    assert r.labels.shape == spatial
    assert r.quantized.shape == image.shape and r.quantized.dtype == image.dtype
    assert r.labels.min() >= 0 and r.labels.max() <= k
    assert r.counts.sum() == n_usable == np.count_nonzero(r.labels)
    np.testing.assert_array_equal(np.bincount(r.labels.ravel(), minlength=k + 1)[1:], r.counts)

    pix = image.reshape(-1, 1) if channels is None else image.reshape(-1, channels)
    out = r.quantized.reshape(pix.shape)
    lab = r.labels.ravel()
    left_out = lab == 0
    np.testing.assert_array_equal(out[left_out], pix[left_out])  # untouched where left out
    ncolour = pix.shape[1] - (channels == 4)
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        palette = np.clip(np.rint(r.centers), info.min, info.max).astype(image.dtype)
    else:
        palette = r.centers.astype(image.dtype)
    np.testing.assert_array_equal(out[~left_out, :ncolour], palette[lab[~left_out] - 1])
    if channels == 4:
        np.testing.assert_array_equal(out[:, 3], pix[:, 3])  # alpha kept as it was
