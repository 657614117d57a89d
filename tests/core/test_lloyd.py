"""The refinement's weighted Lloyd over distinct values, against a plain numpy Lloyd."""

import numpy as np
import pytest

from napari_kquant.core._lloyd import distinct, lloyd

from conftest import numpy_lloyd


@pytest.mark.parametrize("k,ngroups", [(1, 1), (5, 1), (40, 1), (40, 3), (64, 4), (200, 12)])
def test_lloyd_is_lloyd_whatever_the_grouping(k, ngroups):
    rng = np.random.default_rng(k)
    points = rng.normal(0, 40, (3000, 3)) + rng.integers(0, 200, (3000, 1))
    weights = rng.integers(1, 9, 3000).astype(np.float64)
    start = points[rng.choice(3000, k, replace=False)] + 0.5
    groups = rng.integers(0, ngroups, k)
    groups[:ngroups] = np.arange(ngroups)  # every group has a centre
    expected, expected_labels = numpy_lloyd(points, weights, start, 100, 0.0)
    centers, labels, iterations = lloyd(points, weights, start, 100, 0.0, groups)
    np.testing.assert_allclose(centers, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(labels, expected_labels)
    assert 1 <= iterations <= 100


def test_lloyd_stops_at_max_iter_and_at_epsilon():
    rng = np.random.default_rng(5)
    points = rng.random((2000, 3)) * 255
    weights = np.ones(2000)
    start = points[:30].copy()
    groups = np.arange(30) % 2
    for max_iter, epsilon in [(1, 0.0), (3, 0.0), (100, 2.0)]:
        expected, expected_labels = numpy_lloyd(points, weights, start, max_iter, epsilon)
        centers, labels, _ = lloyd(points, weights, start, max_iter, epsilon, groups)
        np.testing.assert_allclose(centers, expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(labels, expected_labels)  # labels of the final centres


def test_an_empty_cluster_keeps_its_centre_and_ties_go_to_the_lower_index():
    points = np.array([[0.0, 0, 0], [10, 10, 10]])
    start = np.array([[0.0, 0, 0], [10, 10, 10], [5000, 5000, 5000], [10, 10, 10]])
    centers, labels, _ = lloyd(points, np.ones(2), start, 100, 0.0, np.zeros(4, np.int64))
    np.testing.assert_array_equal(centers, start)  # 3 is empty: it stays where it was
    np.testing.assert_array_equal(labels, [0, 1])  # 1 and 3 are equal: the lower index


def test_distinct_keeps_every_distinct_8_bit_colour_with_its_count():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (5000, 3)).astype(np.float32)
    rows[1000:2000] = rows[:1000]  # repeats
    values, counts, index = distinct(rows)
    unique, unique_counts = np.unique(rows, axis=0, return_counts=True)
    assert len(values) == len(unique) and counts.sum() == 5000
    np.testing.assert_array_equal(values[index], rows)  # each row's value is itself
    order = np.lexsort(values.T[::-1])
    np.testing.assert_array_equal(values[order], unique)
    np.testing.assert_array_equal(counts[order], unique_counts)


def test_distinct_means_rows_that_differ_by_less_than_its_resolution():
    rows = np.array([[0.0, 0.0], [1.0, 1.0], [1.0 + 1e-9, 1.0], [0.5, 0.25]])
    values, counts, index = distinct(rows)
    assert len(values) == 3
    np.testing.assert_allclose(values[index[1]], [1.0 + 5e-10, 1.0])
    assert counts[index[1]] == 2 and index[1] == index[2]
    one = np.full((7, 3), 4.0, np.float32)  # a single colour: one value
    values, counts, index = distinct(one)
    np.testing.assert_array_equal(values, [[4.0, 4.0, 4.0]])
    assert counts.tolist() == [7.0]
    many = np.random.default_rng(1).random((50, 30))  # more channels than a key holds
    values, counts, index = distinct(many)
    np.testing.assert_array_equal(values, many)
    assert (counts == 1).all()
