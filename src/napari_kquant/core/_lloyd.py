"""Weighted Lloyd iterations over the distinct pixels: how a sampled fit is refined.

`distinct` turns (n, d) feature rows into their distinct rows (exactly: no two different
rows merge) with their counts; `lloyd` runs exact weighted Lloyd iterations from given
centres until no value changes cluster, skipping the values whose nearest centre cannot
have changed (Yinyang bounds).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ._assign import compiled, in_threads


def distinct(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, counts, index of each row's value): ``values`` (m, d) float64, the distinct
    rows of ``data``. Each channel's values are ranked (whole numbers by their offset from
    the smallest, others by `np.unique`), and the ranks packed into one int64 key while
    they fit (8-bit or 16-bit channels, floats of three channels); beyond that, rows are
    compared whole."""
    n, d = data.shape
    if n <= 1:
        return data.astype(np.float64), np.ones(n), np.arange(n)
    key = np.zeros(n, np.int64)
    room = 2**63 - 1
    for ch in range(d):
        column = data[:, ch]
        low, high = column.min().item(), column.max().item()  # Python numbers: no wrap
        if high - low < 1 << 20 and np.array_equal(column, np.floor(column)):  # whole numbers
            wide = column.astype(np.int64) if column.dtype.kind == "i" else column  # 127 - -128
            rank, levels = (wide - wide.dtype.type(low)).astype(np.int64), int(high - low) + 1
        else:
            _, rank = np.unique(column, return_inverse=True)
            levels = int(rank.max()) + 1
        if room // levels < 1:
            key = None  # the ranks do not fit one int64: rows compared whole
            break
        room //= levels
        key = key * levels + rank.ravel()
    rows, axis = (data, 0) if key is None else (key, None)
    _, first, index, counts = np.unique(rows, axis=axis, return_index=True, return_inverse=True,
                                        return_counts=True)  # fmt: skip
    return data[first].astype(np.float64), counts.astype(np.float64), index.ravel()


#: The points are split into this many parts, each with its own cluster sums, run on
#: threads; always this many (whatever the cores), so that the sums add up in one order and
#: a fit is the same on every machine.
PARTS = 8


def lloyd(points, weights, centers, max_iter: int, epsilon: float, groups: np.ndarray,
          stop=None):  # fmt: skip
    """Weighted Lloyd from ``centers`` on ``points``: (centres, labels, iterations), or None
    once ``stop`` (a `threading.Event`) is set: it is looked at between iterations.

    Stops when no point changes cluster, after ``max_iter`` iterations, or when no
    centre moves more than ``epsilon`` (cv2's own criteria). A cluster left empty takes
    the point farthest from its centre (as cv2.kmeans does), or keeps its centre when
    every point is alone in its cluster. Labels are each point's nearest centre, the
    lowest index among equals.
    ``groups`` (k,) numbers each centre's group (0..g-1, centres near each other): each
    point keeps a lower bound of its distance to each group (Ding et al.'s Yinyang
    k-means), so an iteration measures a point only against the groups that may hold a
    nearer centre than its own. The bounds are kept in a form that needs no update per
    iteration: with ``travel[j]`` how far centre j has moved in all, ``shift[g]`` the sum
    of group g's largest moves and ``worst`` the sum of all groups' largest, a point's
    distance to its centre j is at most ``upper[i] + travel[j]``, to group g's others at
    least ``lower[i, g] - shift[g]``, to every other centre at least ``least[i] -
    worst``. An iteration then costs a few operations for most points, and the clusters'
    sums are updated only for the points that change cluster. The points' passes run in
    `PARTS` parts on threads; the centres move between passes.
    """
    if stop is not None and stop.is_set():
        return None
    points = np.ascontiguousarray(points, np.float64)
    weights = np.ascontiguousarray(weights, np.float64)
    centers = np.array(centers, np.float64)
    n, d = points.shape
    k = len(centers)
    labels = np.empty(n, np.int32)
    groups = np.ascontiguousarray(groups, np.int64)
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(groups.max() + 2))
    ng = len(bounds) - 1
    nparts = max(1, min(PARTS, n))
    edges = np.linspace(0, n, nparts + 1).astype(np.int64)
    upper, lower, least = np.empty(n), np.empty((n, ng)), np.empty(n)
    travel, shift, drift = np.zeros(k), np.zeros(ng), np.zeros(ng)
    worst = 0.0
    sums, total = np.zeros((nparts, k, d)), np.zeros((nparts, k))
    now, changed = np.empty((nparts, ng)), np.zeros(nparts, np.int64)
    # The bounds are sums and differences of distances: at a tie, rounding can put a
    # bound a few ulps above the distance it bounds. A bound must pass the best distance
    # by ``slack`` to skip a search (far more than any rounding: a lower index among
    # equals is never skipped, and the slack costs nothing measurable).
    slack = 1e-9 * np.sqrt(d) * max(np.abs(points).max(initial=0.0), np.abs(centers).max())
    search = (points, centers, groups, order, bounds, labels, slack)
    hubs, reach = _hubs(centers, order, bounds)
    in_threads(nparts, partial(_start_kernel, *search, weights, hubs, reach, upper, lower,
                               least, shift, sums, total, now, edges))  # fmt: skip
    iterations = 0
    while iterations < max_iter:
        if stop is not None and stop.is_set():
            return None
        iterations += 1
        sums_all, total_all = sums.sum(axis=0), total.sum(axis=0)
        for j in np.flatnonzero(total_all == 0):  # an empty cluster takes the farthest value
            i = _farthest(points, weights, centers, labels, total_all)
            if i < 0:  # every value is alone in its cluster
                continue
            m, w, part = labels[i], weights[i], np.searchsorted(edges, i, "right") - 1
            for t, s in ((total[part], sums[part]), (total_all, sums_all)):
                t[m] -= w
                t[j] += w
                s[m] -= w * points[i]
                s[j] += w * points[i]
            labels[i] = j
            upper[i], lower[i], least[i] = np.inf, -np.inf, -np.inf  # measured afresh
        most = _move_kernel(centers, sums_all, total_all, travel, groups, drift)
        shift += drift
        worst += most
        in_threads(nparts, partial(_pass_kernel, *search, weights, upper, lower, least, travel,
                                   shift, worst, sums, total, now, edges, changed))  # fmt: skip
        if most <= epsilon or not changed.any():  # (no change: the centres are the means)
            break
    return centers, labels, iterations  # each value labelled by its nearest final centre


@compiled
def _start_kernel(points, centers, groups, order, bounds, labels, slack, weights, hubs, reach,
                  upper, lower, least, shift, sums, total, now, edges, b0, b1):  # fmt: skip
    """Parts ``b0`` to ``b1``: each point's nearest centre, its bounds, and its part's sums."""
    d = points.shape[1]
    for p in range(b0, b1):
        mine = now[p]
        for i in range(edges[p], edges[p + 1]):
            _guess(points, i, hubs, reach, mine)
            upper[i] = _scan(points, i, centers, groups, order, bounds, labels, slack, mine, -1,
                             np.inf)  # fmt: skip
            least[i] = _settle(lower, i, mine, shift, 0.0)
            j = labels[i]
            total[p, j] += weights[i]
            for c in range(d):
                sums[p, j, c] += weights[i] * points[i, c]


@compiled
def _move_kernel(centers, sums, total, travel, groups, drift):
    """Each centre to its cluster's mean; adds the steps to ``travel``, each group's
    largest to ``drift``; returns the largest step."""
    drift[:] = 0.0
    most = 0.0
    for j in range(centers.shape[0]):
        if total[j] > 0:
            s = 0.0
            for c in range(centers.shape[1]):
                new = sums[j, c] / total[j]
                s += (new - centers[j, c]) ** 2
                centers[j, c] = new
            step = np.sqrt(s)
            travel[j] += step
            drift[groups[j]] = max(drift[groups[j]], step)
            most = max(most, step)
    return most


@compiled
def _pass_kernel(points, centers, groups, order, bounds, labels, slack, weights, upper,
                 lower, least, travel, shift, worst, sums, total, now, edges, changed, b0,
                 b1):  # fmt: skip
    """One iteration's pass over the points of parts ``b0`` to ``b1``: those whose bounds
    allow a nearer centre are measured; ``changed[p]`` counts part p's moves."""
    d = points.shape[1]
    ng = shift.shape[0]
    for p in range(b0, b1):
        mine = now[p]
        moved = 0
        for i in range(edges[p], edges[p + 1]):
            j = labels[i]
            bound = least[i] - worst - slack
            if upper[i] + travel[j] < bound:  # (at a tie a lower index may win)
                continue
            s = 0.0
            for c in range(d):
                s += (points[i, c] - centers[j, c]) ** 2
            exact = np.sqrt(s)
            upper[i] = exact - travel[j]
            if exact < bound:
                continue
            for g in range(ng):
                mine[g] = lower[i, g] - shift[g]
            best = _scan(points, i, centers, groups, order, bounds, labels, slack, mine, j, exact)
            least[i] = _settle(lower, i, mine, shift, worst)
            m = labels[i]
            upper[i] = best - travel[m]
            if m != j:
                moved += 1
                w = weights[i]
                total[p, j] -= w
                total[p, m] += w
                for c in range(d):
                    sums[p, j, c] -= w * points[i, c]
                    sums[p, m, c] += w * points[i, c]
        changed[p] = moved


@compiled
def _hubs(centers, order, bounds):
    """Each group's mean centre and the distance from it to the group's farthest."""
    ng, d = len(bounds) - 1, centers.shape[1]
    hubs = np.zeros((ng, d))
    reach = np.zeros(ng)
    for g in range(ng):
        count = bounds[g + 1] - bounds[g]
        for m in range(bounds[g], bounds[g + 1]):
            for c in range(d):
                hubs[g, c] += centers[order[m], c] / count
        for m in range(bounds[g], bounds[g + 1]):
            s = 0.0
            for c in range(d):
                s += (centers[order[m], c] - hubs[g, c]) ** 2
            reach[g] = max(reach[g], np.sqrt(s))
    return hubs, reach


@compiled
def _guess(points, i, hubs, reach, now):
    """Lower bounds of point ``i``'s distance to each group: to its hub, less its reach."""
    for g in range(len(reach)):
        s = 0.0
        for c in range(points.shape[1]):
            s += (points[i, c] - hubs[g, c]) ** 2
        now[g] = max(0.0, np.sqrt(s) - reach[g])


@compiled
def _farthest(points, weights, centers, labels, total):
    """The value farthest from its centre (the lowest index among equals) among those whose
    cluster keeps other values, to move into an empty cluster as cv2.kmeans does; -1 when
    no value can move (fewer distinct values than clusters)."""
    n, d = points.shape
    far, where = 0.0, -1
    for i in range(n):
        m = labels[i]
        if total[m] - weights[i] <= 0:
            continue
        s = 0.0
        for c in range(d):
            s += (points[i, c] - centers[m, c]) ** 2
        if s > far:
            far, where = s, i
    return where


@compiled
def _settle(lower, i, now, shift, worst):
    """Store point ``i``'s current group bounds ``now``; returns its stored least bound."""
    smallest = np.inf
    for g in range(len(now)):
        lower[i, g] = now[g] + shift[g]
        smallest = min(smallest, now[g])
    return smallest + worst


@compiled
def _scan(points, i, centers, groups, order, bounds, labels, slack, lower, own, own_d):
    """Point ``i``'s nearest centre (written to ``labels[i]``; returns its distance),
    searching the groups whose bound in ``lower`` (ng,) is below the best distance so
    far plus ``slack``; ``own`` (-1: none) is its current centre, at ``own_d``. Leaves
    ``lower[g]`` a lower bound of the distance to every centre of group g but the nearest."""
    best, where = own_d, own
    ng = len(bounds) - 1
    start = 0
    for g in range(ng):  # the most promising group first
        if lower[g] < lower[start]:
            start = g
    for step in range(ng):
        g = (start + step) % ng
        if lower[g] > best + slack:  # (at a tie a lower index in g may win)
            continue
        first, second, first_j = np.inf, np.inf, -1
        for m in range(bounds[g], bounds[g + 1]):
            j = order[m]
            if j == where:
                continue
            s = 0.0
            for c in range(points.shape[1]):
                s += (points[i, c] - centers[j, c]) ** 2
            s = np.sqrt(s)
            if s < first or (s == first and j < first_j):
                second, first, first_j = first, s, j
            elif s < second:
                second = s
        if first < best or (first == best and first_j < where):
            lower[g] = second
            if where >= 0:  # the previous best is now one of its group's others
                lower[groups[where]] = min(lower[groups[where]], best)
            best, where = first, first_j
        else:
            lower[g] = first
    labels[i] = where
    return best
