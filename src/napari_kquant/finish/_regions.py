"""Regions of a label plane and their merging (``min_size``): 8-connected components by
union-find in parallel strips, each small region merged into the neighbour it shares
the longest border with, in rounds. Numba kernels; `_clean.clean_labels` calls
`_merge_small` per plane.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ..core._assign import compiled
from ..core._options import MAX_MIN_SIZE

_STRIP = 256  # rows per parallel strip of the connected-component labelling
_NO_KEY = np.iinfo(np.int64).max
_SURE, _GROUP, _LABEL = 0, 1, 2  # how a pick may differ from the whole plane's


def _in_threads(kernel, nitems, *args):
    """``kernel(*args, start, stop)`` over items [0, nitems), in slices on threads."""
    nthreads = min(numba.config.NUMBA_NUM_THREADS, nitems)
    if nthreads < 2:
        kernel(*args, 0, nitems)
        return
    bounds = np.linspace(0, nitems, min(nitems, 4 * nthreads) + 1).astype(np.int64)
    with ThreadPoolExecutor(nthreads) as pool:
        jobs = [pool.submit(kernel, *args, a, b) for a, b in itertools.pairwise(bounds)]
        for job in jobs:
            job.result()


# --- regions and their merging ---------------------------------------------------------


def _merge_small(plane, min_size, cut=(False,) * 4, core=None):
    """Merge the small regions of one C-contiguous plane.

    Returns (new plane or None when nothing changed, exact). ``cut`` says which
    sides (top, bottom, left, right) of the plane are cut out of a larger one;
    regions that touch them count as large. ``core`` (y0, y1, x0, x1) is the part
    that must be exact; with it, ``exact`` says whether it is.
    """
    ny, nx = plane.shape
    if plane.size == 0:
        return None, True
    if plane.size > MAX_MIN_SIZE:
        raise ValueError(
            f"min_size: a plane of {ny} x {nx} pixels has too many to number in int32; "
            "clean it in chunks with clean_lazy"
        )
    region = np.empty(plane.size, np.int32)
    _in_threads(_components_kernel, -(-ny // _STRIP), plane, region, _STRIP)
    _seams_kernel(plane, region, _STRIP)
    size, first = _regions_kernel(region)
    count = size.size
    if count == 0:
        return None, True
    label = plane.ravel()[first].astype(np.int64)
    open_ = np.zeros(count, np.bool_)
    rows = region.reshape(ny, nx)
    for side, edge in zip(cut, (rows[0], rows[-1], rows[:, 0], rows[:, -1]), strict=True):
        if side:
            open_[edge[edge >= 0]] = True
    small = (size < min_size) & ~open_
    unsure = open_ & (size < min_size)
    track = core is not None and any(cut)
    if not small.any() and not (track and unsure.any()):
        return None, True
    indptr, neighbour, border, contact = _adjacency_kernel(rows, small | unsure)
    sure_large = ~small & ~unsure
    final, certain = _merge_kernel(
        np.where(open_, np.maximum(size, min_size), size), label, first, min_size,
        indptr, neighbour, border, contact, unsure, sure_large, open_, True if track else None,
    )  # fmt: skip
    exact = True
    if track:
        inner = rows[core[0] : core[1], core[2] : core[3]]
        in_core = np.bincount(inner[inner >= 0], minlength=count).astype(np.bool_)
        exact = bool(certain[in_core].all())
    if np.array_equal(final, label):
        return None, exact
    lut = np.append(final, 0).astype(np.uint16)  # region -1 (label 0) takes the last
    return lut[region].reshape(ny, nx), exact


# _find and _union are compiled once and called: inlined into the kernels (inline="always")
# they cost a first clean-up 0.2-0.3 s more compiling, for no measurable speed.
@numba.njit(nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(nogil=True)
def _union(parent, a, b):
    """Join the sets of a and b under the lower root: a root is its set's first index."""
    a = _find(parent, a)
    b = _find(parent, b)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@compiled
def _components_kernel(lab, parent, rows, start, stop):
    """Union-find over the pixels of strips ``start:stop`` of ``rows`` rows of a plane,
    8-connected, same label >= 1; `_seams_kernel` then joins the strips. Every set's
    root is its first pixel in raster order, and parent[i] <= i; parent[i] = -1 for
    label 0.
    """
    ny, nx = lab.shape
    for s in range(start, stop):
        y0 = s * rows
        for y in range(y0, min(ny, y0 + rows)):
            for x in range(nx):
                i = y * nx + x
                v = lab[y, x]
                if v == 0:
                    parent[i] = -1
                    continue
                parent[i] = i
                up = y > y0
                if up and lab[y - 1, x] == v:  # W, NW and NE all touch N
                    parent[i] = _find(parent, i - nx)  # i is a root: join N's set
                    continue
                if x > 0 and lab[y, x - 1] == v:  # NW touches W
                    _union(parent, i, i - 1)
                elif up and x > 0 and lab[y - 1, x - 1] == v:
                    _union(parent, i, i - nx - 1)
                if up and x + 1 < nx and lab[y - 1, x + 1] == v:
                    _union(parent, i, i - nx + 1)


@compiled
def _seams_kernel(lab, parent, rows):
    ny, nx = lab.shape
    for s in range(1, (ny + rows - 1) // rows):
        y = s * rows
        for x in range(nx):
            v = lab[y, x]
            if v == 0:
                continue
            i = y * nx + x
            for dx in range(-1, 2):
                if 0 <= x + dx < nx and lab[y - 1, x + dx] == v:
                    _union(parent, i, i - nx + dx)


@compiled
def _regions_kernel(parent):
    """Turn the union-find forest into region numbers in place (-1 stays for label 0),
    in raster order of the regions' first pixels; returns their sizes and first pixels.
    A pixel's parent comes before it, so it is already numbered."""
    count = 0
    for i in range(parent.size):
        count += parent[i] == i
    size = np.zeros(count, np.int64)
    first = np.zeros(count, np.int64)
    k = 0
    for i in range(parent.size):
        q = parent[i]
        if q < 0:
            continue
        if q == i:
            r = k
            first[r] = i
            k += 1
        else:
            r = parent[q]
        parent[i] = r
        size[r] += 1
    return size, first


@compiled
def _adjacency_kernel(region, small):
    """Neighbours of every small region: CSR ``indptr``, and per neighbour its region,
    the border (4-neighbour pixel pairs) and the first pair's raster key 2 * i + d
    (d = 0 for the pair (i, i + 1), 1 for (i, i + nx))."""
    ny, nx = region.shape
    n = small.size
    count = np.zeros(n + 1, np.int64)
    for y in range(ny):
        for x in range(nx):
            a = region[y, x]
            if a < 0:
                continue
            if x + 1 < nx:
                b = region[y, x + 1]
                if b >= 0 and b != a:
                    count[a + 1] += small[a]
                    count[b + 1] += small[b]
            if y + 1 < ny:
                b = region[y + 1, x]
                if b >= 0 and b != a:
                    count[a + 1] += small[a]
                    count[b + 1] += small[b]
    fill = count  # its running sum, in place (np.cumsum would compile 0.2 s more at first use)
    for a in range(n):
        fill[a + 1] += fill[a]
    neighbour = np.empty(fill[n], np.int32)
    key = np.empty(fill[n], np.int64)
    for y in range(ny):  # in raster order, so each neighbour's first entry has its lowest key
        for x in range(nx):
            a = region[y, x]
            if a < 0:
                continue
            for d in range(2):
                if d == 0 and x + 1 < nx:
                    b = region[y, x + 1]
                elif d == 1 and y + 1 < ny:
                    b = region[y + 1, x]
                else:
                    continue
                if b < 0 or b == a:
                    continue
                k = 2 * (y * nx + x) + d
                if small[a]:
                    neighbour[fill[a]] = b
                    key[fill[a]] = k
                    fill[a] += 1
                if small[b]:
                    neighbour[fill[b]] = a
                    key[fill[b]] = k
                    fill[b] += 1
    # fill[a] is now where a's entries end: gather each region's entries by neighbour
    indptr = np.zeros(n + 1, np.int64)
    border = np.zeros(fill[n] if n else 0, np.int64)
    slot = np.full(n, -1, np.int64)
    w = 0
    start = 0
    for a in range(n):
        end = fill[a]
        indptr[a] = w
        first = w
        for j in range(start, end):
            b = neighbour[j]
            if slot[b] < 0:
                slot[b] = w
                neighbour[w] = b
                key[w] = key[j]
                border[w] = 1
                w += 1
            else:
                border[slot[b]] += 1
        for j in range(first, w):
            slot[neighbour[j]] = -1
        start = end
    indptr[n] = w
    return indptr, neighbour[:w].copy(), border[:w].copy(), key[:w].copy()


@numba.njit(inline="always")
def _better(b1, s1, l1, k1, b2, s2, l2, k2):
    """A longer border, then a larger (capped) size, then a lower label, then an earlier
    first pixel pair."""
    if b1 != b2:
        return b1 > b2
    if s1 != s2:
        return s1 > s2
    if l1 != l2:
        return l1 < l2
    return k1 < k2


@compiled
def _merge_kernel(
    size,
    label,
    first,
    min_size,
    indptr,
    neighbour,
    border,
    contact,
    unsure,
    sure_large,
    cut,
    track,
):
    """The rounds of `clean_labels`' Notes; returns the final label of every region and,
    with ``track`` True, whether it is certainly the label the whole plane would give.
    ``track`` None leaves that out: every array and line of the tracking stands under
    ``if track is not None``, which numba prunes before compiling (keep new tracking
    there: a whole plane's first clean-up compiles this kernel in 1.3 s, against 1.9 s
    when the arrays stood outside and only the branches were pruned).

    ``size`` counts regions that touch a cut side as at least ``min_size``. Those with
    fewer pixels inside are ``unsure``: in the whole plane they may be small. What they
    may change is followed round by round, all conservatively:

    - ``rt[r]``: region r may belong to another group in the whole plane, and
      ``ld[r]``: with another label;
    - ``gt[g]``: group g may have other members (so another size, other borders);
    - ``pt[g]``: g's pick may differ (_LABEL): g's members, a region next to g, or a
      neighbour's size or label may differ (a neighbour rooted in a ``sure_large``
      region is large with its own label whatever joins it), or the ``cut``
      neighbours of one label (regions that touch a cut side: they may be pieces
      of one region), taken as one, would beat the pick; or it is a cut region
      with other cut pieces of its label around: then only the group may differ,
      not the label (_GROUP);
    - a group whose pick, or any pick along its chain, may differ has all its
      members marked ``rt`` (and ``ld`` unless only groups may differ) and marks the
      group it joins ``gt``; the groups next to it are marked ``gt`` too (in the
      plane it might join them instead);
    - an idle group (large here, not rooted in a ``sure_large`` region, with members
      that may differ, so perhaps small in the plane) marks its members ``rt`` and
      ``ld`` and the groups next to it ``gt`` every round: in the plane it might pick.
    """
    n = size.size
    parent = np.empty(n, np.int64)  # not np.arange: its compilation costs a first use 0.3 s
    for i in range(n):
        parent[i] = i
    gsize = size.copy()
    glabel = label.copy()
    gfirst = first.copy()
    after = np.full(n, -1, np.int64)  # members of a group: a linked list from its root
    last = parent.copy()
    acc = np.zeros(n, np.int64)
    acc_key = np.full(n, _NO_KEY, np.int64)
    touched = np.empty(n, np.int64)
    pick = np.full(n, -1, np.int64)
    end = np.full(n, -1, np.int64)
    chain = np.empty(n, np.int64)
    active = _where((gsize < min_size) & ~unsure)
    if track is not None:
        rt = unsure.copy()
        ld = unsure.copy()
        gt = unsure.copy()
        pt = np.zeros(n, np.int8)  # _SURE, _GROUP or _LABEL
        et = np.zeros(n, np.int8)
        seen = np.zeros(n, np.bool_)
        marks = np.empty(indptr[n], np.int64)  # regions whose groups become gt after the unions
        nlabels = label.max() + 1 if n else 0
        stamp = np.zeros(nlabels, np.int64)  # per label: the cut pieces next to a group
        piece_acc = np.zeros(nlabels, np.int64)
        piece_key = np.zeros(nlabels, np.int64)
        pieces = np.zeros(nlabels, np.int64)
        visit = 0
        idle = _where(unsure)
    while True:
        if track is not None:
            _idle_marks(idle, parent, gt, rt, ld, sure_large, after, indptr, neighbour)
        if active.size == 0:
            break
        for g in active:  # 1. every small group picks a neighbour
            nt = 0
            doubt = _SURE
            if track is not None and gt[g]:
                doubt = _LABEL
            m = g
            while m >= 0:
                for j in range(indptr[m], indptr[m + 1]):
                    h = _find(parent, neighbour[j])
                    if h == g:
                        continue
                    if track is not None and rt[neighbour[j]]:
                        doubt = _LABEL
                    if acc[h] == 0:
                        touched[nt] = h
                        nt += 1
                    acc[h] += border[j]
                    acc_key[h] = min(acc_key[h], contact[j])
                m = after[m]
            best = -1
            bb, bs, bl, bk = 0, 0, 0, 0
            if track is not None:
                visit += 1
                for t in range(nt):  # cut pieces of one label may be one region: add them up
                    h = touched[t]
                    if rt[h] or (gt[h] and not sure_large[h]):
                        doubt = _LABEL
                    if cut[h]:  # a cut region is its group's root: it never joins
                        v = glabel[h]
                        if stamp[v] != visit:
                            stamp[v] = visit
                            piece_acc[v] = 0
                            piece_key[v] = _NO_KEY
                            pieces[v] = 0
                        pieces[v] += 1
                        piece_acc[v] += acc[h]
                        piece_key[v] = min(piece_key[v], acc_key[h])
            for t in range(nt):
                h = touched[t]
                hs = min(gsize[h], min_size)
                if best < 0 or _better(acc[h], hs, glabel[h], acc_key[h], bb, bs, bl, bk):
                    best, bb, bs, bl, bk = h, acc[h], hs, glabel[h], acc_key[h]
                acc[h] = 0
                acc_key[h] = _NO_KEY
            if track is not None and best >= 0:  # another label's cut pieces, as one, win?
                own = glabel[best] if cut[best] else -1
                for t in range(nt):
                    h = touched[t]
                    v = glabel[h]
                    beats = _better(piece_acc[v], min_size, v, piece_key[v], bb, bs, bl, bk)
                    if cut[h] and v != own and beats:
                        doubt = _LABEL
                if own >= 0 and pieces[own] > 1:  # another piece of its region, maybe
                    doubt = max(doubt, _GROUP)
            pick[g] = best
            if track is not None:
                pt[g] = doubt
            end[g] = -1
        for g in active:  # 2. follow the chains of picks to their ends
            if end[g] >= 0:
                continue
            nc = 0
            h = g
            while True:
                chain[nc] = h
                nc += 1
                p = pick[h]
                if p < 0:
                    t, doubt = h, _SURE
                    break
                if gsize[p] >= min_size:
                    t, doubt = p, _SURE
                    break
                if end[p] >= 0:
                    t = end[p]
                    if track is not None:
                        doubt = et[p]
                    break
                if pick[p] == h:  # two small groups picked each other
                    t = h
                    if gsize[p] != gsize[h]:
                        if gsize[p] > gsize[h]:
                            t = p
                    elif glabel[p] != glabel[h]:
                        if glabel[p] < glabel[h]:
                            t = p
                    elif gfirst[p] < gfirst[h]:
                        t = p
                    end[p] = t
                    if track is not None:
                        doubt = max(pt[p], pt[h])
                        et[p] = doubt
                    break
                if nc > active.size:  # cannot happen: the tie-breaks leave no longer cycle
                    t, doubt = h, _LABEL
                    break
                h = p
            for c in range(nc - 1, -1, -1):
                end[chain[c]] = t
                if track is not None:
                    doubt = max(doubt, pt[chain[c]])
                    et[chain[c]] = doubt
        if track is not None:
            nmarks = 0
            for g in active:
                if pt[g] != _SURE:  # in the plane g might join any of its neighbours
                    m = g
                    while m >= 0:
                        for j in range(indptr[m], indptr[m + 1]):
                            marks[nmarks] = neighbour[j]
                            nmarks += 1
                        m = after[m]
                if et[g] != _SURE:
                    m = g
                    while m >= 0:
                        rt[m] = True
                        ld[m] = ld[m] or et[g] == _LABEL
                        m = after[m]
                    gt[end[g]] = True
                if gt[g]:
                    gt[end[g]] = True
        for g in active:  # 3. join the chains' ends, all at once
            t = end[g]
            if t != g:
                parent[g] = t
                gsize[t] += gsize[g]
                gfirst[t] = min(gfirst[t], gfirst[g])
                after[last[t]] = g
                last[t] = last[g]
        if track is not None:
            for i in range(nmarks):
                gt[_find(parent, marks[i])] = True
        was = active
        active = np.empty(was.size, np.int64)
        nactive = 0
        for g in was:
            if parent[g] == g and gsize[g] < min_size and pick[g] >= 0:
                active[nactive] = g
                nactive += 1
        active = active[:nactive]
        if track is not None:  # the next idle groups: former ones, this round's that stop
            for g in active:
                seen[g] = True
            nidle = 0
            for i in range(idle.size + was.size):
                g = _find(parent, idle[i] if i < idle.size else was[i - idle.size])
                if not seen[g]:
                    seen[g] = True
                    touched[nidle] = g
                    nidle += 1
            idle = touched[:nidle].copy()
            for g in idle:
                seen[g] = False
            for g in active:
                seen[g] = False
    final = np.empty(n, np.int64)
    for r in range(n):
        final[r] = glabel[_find(parent, r)]
    if track is None:
        return final, None
    certain = np.ones(n, np.bool_)
    for r in range(n):
        root = _find(parent, r)
        certain[r] = not (ld[r] or ld[root] or (gt[root] and not sure_large[root]))
    return final, certain


@numba.njit(inline="always")
def _where(flags):
    out = np.empty(flags.size, np.int64)
    n = 0
    for i in range(flags.size):
        if flags[i]:
            out[n] = i
            n += 1
    return out[:n]


@numba.njit(inline="always")
def _idle_marks(idle, parent, gt, rt, ld, sure_large, after, indptr, neighbour):
    for x in idle:
        if parent[x] != x or sure_large[x] or not gt[x]:
            continue
        m = x
        while m >= 0:
            rt[m] = True
            ld[m] = True
            for j in range(indptr[m], indptr[m + 1]):
                h = _find(parent, neighbour[j])
                if h != x:
                    gt[h] = True
            m = after[m]
