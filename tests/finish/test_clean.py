"""Cleaning label maps: the majority filter, small regions merged away, and chunked
(dask) cleaning that gives the same labels as the whole plane."""

import re

import cv2
import dask.array as da
import numpy as np
import pytest
from skimage import data, measure

from napari_kquant import quantize
from napari_kquant.finish._clean import check_clean, clean_labels, clean_lazy


def field(shape=(12, 12), value=1, dtype=np.uint8):
    return np.full(shape, value, dtype)


# --- references: the documented rules, spelled out in plain Python -------------------


def reference_smooth(plane, r):
    out = plane.copy()
    for (y, x), v in np.ndenumerate(plane):
        if v == 0:
            continue
        window = plane[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].ravel()
        votes = np.bincount(window[window > 0])
        out[y, x] = v if votes[v] == votes.max() else np.argmax(votes)
    return out


def reference_merge(plane, min_size):
    """The rounds of clean_labels' Notes, on dicts (slow; small planes only)."""
    ny, nx = plane.shape
    region = np.full(plane.shape, -1)
    regions = []  # (first pixel, label, pixels)
    for v in np.unique(plane[plane > 0]):
        components = measure.label(plane == v, connectivity=2, background=0)
        for c in range(1, components.max() + 1):
            pixels = np.flatnonzero(components.ravel() == c)
            regions.append((pixels[0], int(v), pixels))
    regions.sort(key=lambda r: r[0])
    for i, (_, _, pixels) in enumerate(regions):
        region.ravel()[pixels] = i
    border, contact = {}, {}
    for y in range(ny):
        for x in range(nx):
            for d, (yy, xx) in enumerate(((y, x + 1), (y + 1, x))):
                if yy == ny or xx == nx:
                    continue
                a, b, key = region[y, x], region[yy, xx], 2 * (y * nx + x) + d
                if a >= 0 and b >= 0 and a != b:
                    for pair in ((a, b), (b, a)):
                        border[pair] = border.get(pair, 0) + 1
                        contact[pair] = min(contact.get(pair, key), key)
    group = list(range(len(regions)))
    members = {g: {g} for g in group}
    label = {g: regions[g][1] for g in group}
    while True:
        size = {g: sum(len(regions[m][2]) for m in ms) for g, ms in members.items()}
        first = {g: min(regions[m][0] for m in ms) for g, ms in members.items()}
        picks = {}
        for g, ms in members.items():
            if size[g] >= min_size:
                continue
            length, key = {}, {}
            for (a, b), n in border.items():
                if a in ms and group[b] != g:
                    h = group[b]
                    length[h] = length.get(h, 0) + n
                    key[h] = min(key.get(h, contact[a, b]), contact[a, b])
            if length:
                picks[g] = max(
                    length, key=lambda h: (length[h], min(size[h], min_size), -label[h], -key[h])
                )
        if not picks:
            break
        ends = {}
        for g in picks:
            h = g
            while True:
                p = picks[h]
                if size[p] >= min_size:
                    ends[g] = p
                    break
                if picks[p] == h:
                    ends[g] = min((h, p), key=lambda q: (-size[q], label[q], first[q]))
                    break
                h = p
        for g, t in ends.items():
            if t != g:
                for m in members.pop(g):
                    group[m] = t
                    members[t].add(m)
    out = plane.copy()
    for i, (_, _, pixels) in enumerate(regions):
        out.ravel()[pixels] = label[group[i]]
    return out


def random_labels(rng, dtype=np.uint8):
    """Blocks of a few labels (0 among them) sprinkled with noise: many small regions."""
    k = int(rng.integers(2, 6))
    blocks = rng.integers(0, k + 1, rng.integers(2, 6, 2)).astype(np.uint8)
    ny, nx = (int(n) for n in rng.integers(4, 17, 2))
    labels = cv2.resize(blocks, (nx, ny), interpolation=cv2.INTER_NEAREST).astype(dtype)
    noise = rng.random(labels.shape) < rng.random() * 0.5
    labels[noise] = rng.integers(0, k + 1, noise.sum())
    return labels * (257 if dtype == np.uint16 else 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_random_planes_follow_the_documented_rules(dtype):
    rng = np.random.default_rng(7)
    for _ in range(60):
        labels = random_labels(rng, dtype)
        smooth, min_size = int(rng.integers(0, 3)), int(rng.integers(2, 10))
        expected = reference_merge(reference_smooth(labels, smooth), min_size)
        got = clean_labels(labels, min_size=min_size, smooth=smooth)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == dtype


# --- min_size ---------------------------------------------------------------------------


def test_a_speck_smaller_than_min_size_disappears():
    labels = field((12, 12), 1)
    labels[4:6, 3:8] = 2  # 10 pixels
    np.testing.assert_array_equal(clean_labels(labels, min_size=20), field((12, 12), 1))
    np.testing.assert_array_equal(clean_labels(labels, min_size=11), field((12, 12), 1))
    np.testing.assert_array_equal(clean_labels(labels, min_size=10), labels)
    np.testing.assert_array_equal(clean_labels(labels, min_size=5), labels)


@pytest.mark.parametrize(("cols", "winner"), [(slice(3, 7), 1), (slice(5, 9), 3)])
def test_a_speck_joins_the_neighbour_with_the_longest_border(cols, winner):
    labels = field((12, 12), 1)
    labels[:, 6:] = 3
    halves = labels.copy()
    labels[4:7, cols] = 2  # 3 of its 4 columns in one half: 9 border pairs there, 5 in the other
    expected = halves.copy()
    expected[4:7, cols] = winner
    np.testing.assert_array_equal(clean_labels(labels, min_size=13), expected)


def test_equal_borders_with_large_neighbours_go_to_the_lower_label():
    labels = field((8, 12), 2)
    labels[:, 6:10] = 1  # 32 pixels against 48: both large, so equally large in a tie
    labels[:, 10:] = 0
    labels[3:5, 5:7] = 3  # 4 border pairs with each half
    expected = labels.copy()
    expected[3:5, 5:7] = 1
    np.testing.assert_array_equal(clean_labels(labels, min_size=5), expected)


def test_equal_borders_with_small_neighbours_go_to_the_larger_then_the_lower_label():
    labels = np.zeros((4, 8), np.uint8)
    labels[1, 1:3] = 1  # 2 pixels
    labels[1, 3] = 3  # the speck: one border pair with each side
    labels[1:3, 4:6] = 2  # 4 pixels: larger, so it takes the speck, and the speck's group
    expected = np.where(labels > 0, 2, 0).astype(np.uint8)
    np.testing.assert_array_equal(clean_labels(labels, min_size=10), expected)
    labels[2, 4:6] = 0  # now 2 pixels too: the lower label wins
    expected = np.where(labels > 0, 1, 0).astype(np.uint8)
    np.testing.assert_array_equal(clean_labels(labels, min_size=10), expected)


def test_a_diagonal_line_is_one_region():
    labels = field((10, 10), 1)
    labels[np.arange(1, 9), np.arange(1, 9)] = 2  # 8 pixels touching at corners
    np.testing.assert_array_equal(clean_labels(labels, min_size=8), labels)
    np.testing.assert_array_equal(clean_labels(labels, min_size=9), field((10, 10), 1))


def test_left_out_pixels_never_change_and_never_take_in_a_region():
    labels = field((10, 10), 0)
    labels[:, 7:] = 1
    labels[4:6, 5:7] = 2  # 4 pixels: 6 border pairs with 0, 2 with label 1
    expected = labels.copy()
    expected[4:6, 5:7] = 1
    np.testing.assert_array_equal(clean_labels(labels, min_size=5), expected)
    np.testing.assert_array_equal(clean_labels(labels, min_size=5, smooth=1) == 0, labels == 0)


def test_small_regions_with_no_labelled_neighbour_stay():
    labels = field((10, 10), 0)
    labels[2:4, 2:4] = 2  # surrounded by 0
    labels[7, 7] = 1  # one pixel, surrounded by 0 too
    np.testing.assert_array_equal(clean_labels(labels, min_size=50), labels)
    alone = field((6, 6), 0)
    alone[1:3, 1:3] = 4  # the only region of its plane
    np.testing.assert_array_equal(clean_labels(alone, min_size=50), alone)


def test_a_group_that_is_still_small_merges_again():
    labels = field((3, 12), 0)
    labels[1, 1:3] = 1  # 2 pixels
    labels[1, 3:5] = 2  # 2 pixels: 1 and 2 pick each other, a group of 4 labelled 1
    labels[1, 5] = 3  # 1 pixel: one pair with 2 and with 4; 4 is larger, it joins 4
    labels[1, 6:11] = 4  # 5 pixels: the group of 4 then joins it too
    expected = np.where(labels > 0, 4, 0).astype(np.uint8)
    np.testing.assert_array_equal(clean_labels(labels, min_size=5), expected)


def test_planes_of_a_stack_are_cleaned_on_their_own():
    stack = np.stack([field((8, 8), 1), field((8, 8), 3)])
    stack[:, 2:4, 2:7] = 2  # the same 10-pixel speck in both planes: 20 pixels if joined
    expected = np.stack([field((8, 8), 1), field((8, 8), 3)])
    np.testing.assert_array_equal(clean_labels(stack, min_size=15), expected)
    np.testing.assert_array_equal(clean_labels(stack[None], min_size=15), expected[None])


def test_uint16_labels_above_255():
    expected = field((12, 12), 300, np.uint16)
    expected[:, 8:] = 1000
    labels = expected.copy()
    labels[4:6, 3:8] = 7000  # 12 border pairs with 300, 2 with 1000
    labels[9, 2] = 65535  # salt
    got = clean_labels(labels, min_size=11)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)
    salted = expected.copy()
    salted[9, 2] = 65535
    got = clean_labels(salted, smooth=1)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)


# --- smooth -----------------------------------------------------------------------------


def test_smooth_removes_salt_and_pepper_and_keeps_a_tie():
    labels = np.array(
        [
            [1, 1, 1, 1, 2, 2],
            [1, 3, 1, 1, 2, 2],
            [1, 1, 1, 2, 2, 2],
            [1, 1, 2, 2, 2, 0],
        ],
        np.uint8,
    )
    expected = labels.copy()
    expected[1, 1] = 1  # 3 has one vote of 9, 1 has eight
    # (1, 3) keeps its 1 (5 votes against 4 for 2), (3, 2) its 2 (3 votes each, a tie),
    # and the 0 never changes
    np.testing.assert_array_equal(clean_labels(labels, smooth=1), expected)


def test_smooth_takes_the_lowest_of_the_most_frequent_labels():
    labels = np.array([[5, 5, 4], [4, 9, 5], [4, 0, 0]], np.uint8)
    expected = np.array([[5, 5, 5], [4, 4, 5], [4, 0, 0]], np.uint8)
    # (1, 1): 3 votes for 4 and for 5, its own 9 has one: the lower, 4;
    # (0, 2): 5 has 2 votes of 4 in its clipped window; (1, 0): 2 for 4 and 5: keeps 4
    np.testing.assert_array_equal(clean_labels(labels, smooth=1), expected)


def test_left_out_pixels_do_not_vote():
    labels = field((5, 5), 0)
    labels[2, 2] = 6  # eight 0s around it, one vote for 6
    labels[0, 0] = 2
    np.testing.assert_array_equal(clean_labels(labels, smooth=1), labels)


def test_smooth_then_min_size():
    labels = field((9, 9), 1)
    labels[4, 4] = 2  # the filter removes the salt first ...
    labels[0:3, 6:9] = 3  # ... and trims this block's corner to 8 pixels, below min_size=9
    expected = field((9, 9), 1)
    np.testing.assert_array_equal(clean_labels(labels, smooth=1, min_size=9), expected)
    only_min_size = labels.copy()
    only_min_size[4, 4] = 1
    np.testing.assert_array_equal(clean_labels(labels, min_size=9), only_min_size)


# --- options and inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"min_size": True}, TypeError, "min_size must be an integer, got True"),
        ({"min_size": 2.0}, TypeError, "min_size must be an integer, got 2.0"),
        ({"min_size": "64"}, TypeError, "min_size must be an integer, got '64'"),
        ({"min_size": 0}, ValueError, "min_size must be between 1 and 2147483647, got 0"),
        ({"min_size": -5}, ValueError, "min_size must be between 1 and 2147483647, got -5"),
        ({"min_size": 2**31}, ValueError, "min_size must be between 1 and 2147483647"),
        ({"smooth": False}, TypeError, "smooth must be an integer, got False"),
        ({"smooth": 1.5}, TypeError, "smooth must be an integer, got 1.5"),
        ({"smooth": "1"}, TypeError, "smooth must be an integer, got '1'"),
        ({"smooth": -1}, ValueError, "smooth must be between 0 and 50, got -1"),
        ({"smooth": 51}, ValueError, "smooth must be between 0 and 50, got 51"),
    ],
)
def test_bad_options_name_the_parameter_and_value(options, error, message):
    labels = field((4, 4), 1)
    for function in (check_clean, lambda **o: clean_labels(labels, **o)):
        with pytest.raises(error, match=re.escape(message)):
            function(**options)
    with pytest.raises(error, match="must be"):
        clean_lazy(da.from_array(labels), **options)


def test_check_clean_gives_python_ints_or_none():
    assert check_clean() == (None, None)
    assert check_clean(np.int64(64), np.uint8(2)) == (64, 2)
    assert type(check_clean(np.int64(64))[0]) is int


@pytest.mark.parametrize("function", [clean_labels, clean_lazy])
def test_bad_labels_are_refused(function):
    with pytest.raises(TypeError, match="labels must be uint8 or uint16, got dtype int32"):
        function(np.ones((4, 4), np.int32), min_size=2)
    with pytest.raises(ValueError, match=r"labels must have axes \(..., Y, X\), got shape \(4,\)"):
        function(np.ones(4, np.uint8), min_size=2)


@pytest.mark.parametrize(
    "options", [{}, {"min_size": 1}, {"smooth": 0}, {"min_size": 1, "smooth": 0}]
)
def test_no_op_options_return_an_equal_copy(options):
    labels = random_labels(np.random.default_rng(3))
    got = clean_labels(labels, **options)
    np.testing.assert_array_equal(got, labels)
    assert got is not labels and not np.shares_memory(got, labels)


def test_the_input_is_not_modified():
    labels = random_labels(np.random.default_rng(4))
    before = labels.copy()
    clean_labels(labels, min_size=6, smooth=1)
    clean_labels(labels[::-1, ::2], min_size=3)  # a view, not contiguous
    clean_lazy(da.from_array(labels, chunks=8), min_size=3, smooth=1).compute()
    np.testing.assert_array_equal(labels, before)


def test_empty_and_unlabelled_planes():
    assert clean_labels(np.zeros((0, 5), np.uint8), min_size=3, smooth=1).shape == (0, 5)
    zeros = np.zeros((3, 6, 6), np.uint16)
    np.testing.assert_array_equal(clean_labels(zeros, min_size=3, smooth=1), zeros)


# --- lazy: chunk by chunk, the same labels ------------------------------------------------


@pytest.fixture(scope="module")
def photo_labels():
    return quantize(data.astronaut(), 8, channel_axis=-1, seed=0).labels  # (512, 512)


@pytest.mark.parametrize("chunks", [(128, 128), (100, 160)])
@pytest.mark.parametrize(("min_size", "smooth"), [(64, None), (16, 1), (None, 2), (30, 2), (8, 3)])
def test_lazy_equals_eager_on_a_photo(photo_labels, chunks, min_size, smooth):
    expected = clean_labels(photo_labels, min_size=min_size, smooth=smooth)
    assert (expected != photo_labels).mean() > 0.03  # the cleaning does something
    lazy = clean_lazy(da.from_array(photo_labels, chunks=chunks), min_size=min_size, smooth=smooth)
    assert isinstance(lazy, da.Array) and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_lazy_stack_equals_eager(photo_labels):
    stack = np.stack([photo_labels, photo_labels.T, photo_labels[::-1]])
    expected = clean_labels(stack, min_size=20, smooth=1)
    lazy = clean_lazy(da.from_array(stack, chunks=(2, 200, 256)), min_size=20, smooth=1)
    assert lazy.chunks == ((2, 1), (200, 200, 112), (256, 256))
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_lazy_specks_across_chunk_borders():
    expected = field((64, 64), 1)
    expected[:, 40:] = 2
    labels = expected.copy()
    labels[30:34, 14:17] = 3  # across the row border at 32
    labels[10:13, 30:34] = 4  # across the column border at 32
    labels[31:33, 31:33] = 5  # on the corner of four chunks
    labels[20:23, 38:41] = 6  # 7 border pairs with 1, 5 with 2
    expected[20:23, 40] = 1
    eager = clean_labels(labels, min_size=13)
    np.testing.assert_array_equal(eager, expected)
    lazy = clean_lazy(da.from_array(labels, chunks=32), min_size=13)  # overlap 26
    assert lazy.chunks == ((32, 32), (32, 32))
    np.testing.assert_array_equal(lazy.compute(), expected)
    lazy = clean_lazy(da.from_array(labels, chunks=(32, 20)), min_size=13, smooth=1)
    np.testing.assert_array_equal(lazy.compute(), clean_labels(labels, min_size=13, smooth=1))


def test_lazy_merges_chunks_smaller_than_the_overlap(photo_labels):
    labels = photo_labels[200:296, 200:296]
    lazy = clean_lazy(da.from_array(labels, chunks=8), min_size=5, smooth=1)  # depth 11
    assert min(lazy.chunks[0]) >= 11 and min(lazy.chunks[1]) >= 11
    np.testing.assert_array_equal(lazy.compute(), clean_labels(labels, min_size=5, smooth=1))
    whole = clean_lazy(da.from_array(labels[:20, :20], chunks=8), min_size=20)  # depth 40
    assert whole.chunks == ((20,), (20,))


def test_lazy_without_options_is_the_input():
    labels = da.from_array(field((8, 8), 1), chunks=4)
    assert clean_lazy(labels) is labels
    assert clean_lazy(labels, min_size=1, smooth=0) is labels


def u_of_label_1(between):
    """Two arms of label 1 (columns 10-15 and 24-29) that meet at rows 180-199, with
    ``between`` in columns 16-23 above, and a speck of label 4 across the top with 5
    border pairs with each arm."""
    labels = field((200, 40), 2)
    labels[:, 10:30] = 1
    labels[:180, 16:24] = between
    labels[0:3, 14:26] = 4
    return labels


def test_lazy_refuses_a_chunk_it_cannot_clean_exactly():
    # The speck has 8 border pairs with label 3: fewer than with the whole label-1
    # region (10), more than with either arm, which is all the first chunk's overlap
    # (rows 0-179) shows of it.
    labels = u_of_label_1(between=3)
    eager = clean_labels(labels, min_size=40)
    assert (eager[0:3, 14:26] == 1).all()
    chunked = da.from_array(labels, chunks=(100, 40))
    with pytest.raises(ValueError, match="cannot be cleaned exactly from an overlap of 80"):
        clean_lazy(chunked, min_size=40).compute()
    whole = clean_lazy(chunked.rechunk({-2: -1, -1: -1}), min_size=40)
    np.testing.assert_array_equal(whole.compute(), eager)


def test_lazy_knows_a_choice_between_two_pieces_of_a_label():
    # With 0 between the arms, the speck joins one of them: label 1 whichever it is.
    labels = u_of_label_1(between=0)
    eager = clean_labels(labels, min_size=40)
    assert (eager[0:3, 14:26] == 1).all()
    lazy = clean_lazy(da.from_array(labels, chunks=(100, 40)), min_size=40)
    np.testing.assert_array_equal(lazy.compute(), eager)


def test_quantize_cleans_lazy_images_whole_plane_exactly(photos):
    """`quantize`'s lazy path cleans planes up to `_lazy.WHOLE_PLANE` pixels whole, so the
    chains of small regions that `clean_lazy` refuses across chunks cannot arise; the picture,
    the counts and the compactness follow the cleaned labels."""
    import dask
    import dask.array as da

    from napari_kquant import quantize

    image = photos["astronaut"]
    palette = quantize(image, 32, channel_axis=-1, seed=0).palette
    eager = palette.apply(image, channel_axis=-1, min_size=40, smooth=1)
    lazy = palette.apply(da.from_array(image, chunks=(30, 50, 3)), channel_axis=-1,
                         min_size=40, smooth=1)  # fmt: skip
    labels, quantized, counts, compactness = dask.compute(
        lazy.labels, lazy.quantized, lazy.counts, lazy.compactness
    )
    np.testing.assert_array_equal(labels, eager.labels)
    np.testing.assert_array_equal(quantized, eager.quantized)
    np.testing.assert_array_equal(counts, eager.counts)
    assert compactness == pytest.approx(eager.compactness)
    assert lazy.labels.chunks == ((30, 30, 30, 6), (50, 50, 28))  # the input's chunks
    plain = palette.apply(image, channel_axis=-1)
    assert (eager.labels != plain.labels).any() and eager.counts.sum() == plain.counts.sum()
    colours = np.rint(palette.centers).astype(np.uint8)
    np.testing.assert_array_equal(eager.quantized, colours[eager.labels - 1])


def test_big_endian_labels_are_cleaned_like_native_ones():
    labels = field((12, 12), 300, np.uint16)
    labels[4:6, 3:8] = 7000
    np.testing.assert_array_equal(
        clean_labels(labels.astype(">u2"), min_size=11), field((12, 12), 300, np.uint16)
    )


def test_lazy_labels_of_unknown_chunk_sizes_are_named():
    """dask's own AssertionError (assert_int_chunksize) reached the caller."""
    labels = da.from_array(np.random.default_rng(0).integers(1, 4, (20, 20), np.uint8), chunks=5)
    unknown = labels[labels.sum(axis=1) >= 0]
    with pytest.raises(ValueError, match=r"labels has unknown chunk sizes .*compute_chunk_sizes"):
        clean_lazy(unknown, min_size=4)
    unknown.compute_chunk_sizes()
    np.testing.assert_array_equal(
        clean_lazy(unknown, min_size=4).compute(), clean_labels(labels.compute(), min_size=4)
    )


def test_a_masked_array_is_refused_not_its_mask_dropped():
    labels = np.ma.array(np.ones((4, 4), np.uint8), mask=np.eye(4, dtype=bool))
    with pytest.raises(TypeError, match="labels must not be a masked array; set left-out pix"):
        clean_labels(labels, min_size=2)


def test_dask_and_zarr_labels_are_cleaned_as_numpy_ones():
    import zarr

    labels = np.random.default_rng(0).integers(0, 4, (30, 30)).astype(np.uint8)
    expected = clean_labels(labels, min_size=3, smooth=1)
    stored = zarr.create_array(store={}, shape=labels.shape, chunks=(10, 10), dtype="u1")
    stored[:] = labels
    for given in (da.from_array(labels, chunks=10), stored):
        np.testing.assert_array_equal(clean_labels(given, min_size=3, smooth=1), expected)
