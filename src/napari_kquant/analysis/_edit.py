"""Editing clusters: merge several into one, split one into several.

Every edit is an operation on a computed result that returns a new result (the
input is never modified): labels are renumbered dark to light without gaps, the
quantized image is repainted through a lookup table on the labels (no re-fit of
the other clusters), and the palette records the edit in ``fit["edits"]``, so a
script can replay the sequence. numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core._colorspace import from_lab, from_od, rgb_scale
from ..core._layout import is_lazy, layout, pixels, restore
from ..core._options import not_items, scalar, settings
from ..engine._apply import assigner, label_dtype
from ..engine._fit import cluster, dark_to_light
from ..engine._palette import Palette
from ..engine._result import QuantizeResult

#: Pixels of a cluster that `split` re-clusters at most (a seeded sample of them).
SPLIT_SAMPLE = 50_000


def merge(result: QuantizeResult, labels) -> QuantizeResult:
    """Merge clusters into one whose centre is their pixel-weighted mean.

    Parameters
    ----------
    result : QuantizeResult
        A computed (numpy) result.
    labels : sequence of int
        Two or more labels (1..k) to merge.

    Returns
    -------
    QuantizeResult
        k - len(labels) + 1 clusters, renumbered dark to light; the quantized
        image repainted; ``counts`` summed; ``compactness`` grows by each merged
        cluster's count times its squared distance to the new centre (exact when
        the centres are the means of their pixels, as after a converged fit).
    """
    _check_computed(result)
    palette = result.palette
    merged = _labels(labels, palette.k, at_least=2)
    counts = np.asarray(result.counts, np.float64)
    feats = palette.features
    weights = counts[[m - 1 for m in merged]]
    if weights.sum() == 0:
        weights = np.ones(len(merged))
    rows = [m - 1 for m in merged]
    centre = (feats[rows] * weights[:, None]).sum(axis=0) / weights.sum()
    growth = float((weights * ((feats[rows] - centre) ** 2).sum(axis=1)).sum())
    keep = [i for i in range(palette.k) if i + 1 not in merged]
    new_feats = np.vstack([feats[keep], centre[None]])
    old_to_row = np.empty(palette.k + 1, np.int64)  # old label -> row of new_feats
    old_to_row[0] = -1
    old_to_row[[i + 1 for i in keep]] = np.arange(len(keep))
    old_to_row[merged] = len(keep)
    edit = {"merge": merged}
    return _rebuild(result, new_feats, old_to_row, edit, growth)


def split(
    result: QuantizeResult,
    image,
    label: int,
    n: int = 2,
    *,
    channel_axis=None,
    alpha=None,
    seed: int | None = None,
) -> QuantizeResult:
    """Re-cluster the pixels of one cluster into ``n`` (k-means++, 3 attempts, on at most
    50,000 of them); every other pixel keeps its cluster.

    Parameters
    ----------
    result : QuantizeResult
        A computed result of ``image``.
    image : array_like
        The image the result was made from (its pixels are re-clustered).
    label : int
        The cluster (1..k) to split.
    n : int
        How many clusters it becomes (at least 2).
    channel_axis, alpha
        The image's layout, as given to `quantize`.
    seed : int, optional
        The seed of the re-clustering (None draws one; recorded in the edit).

    Returns
    -------
    QuantizeResult
        k + n - 1 clusters, renumbered dark to light, with the exact compactness.
    """
    _check_computed(result)
    palette = result.palette
    (label,) = _labels([label], palette.k, at_least=1, name="label")
    n = scalar(n)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be a whole number of at least 2, got {n!r}")
    if is_lazy(image) or isinstance(image, list):
        raise ValueError("split needs the image in memory (numpy), not a lazy or multiscale one")
    image = np.asarray(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    if lay.ncolour != palette.nchannels:
        raise ValueError(
            f"image has {lay.ncolour} colour channels (channel_axis={channel_axis!r}), the "
            f"result's palette {palette.nchannels}: give the image the result was made from"
        )
    made = None if result.quantized is None else np.asarray(result.quantized[:0]).dtype
    if made is not None and made != image.dtype:
        raise ValueError(
            f"image is {image.dtype}, the result was made from {made}: give the "
            "image the result was made from"
        )
    if palette.dtype is not None and np.dtype(palette.dtype) != image.dtype:
        raise ValueError(
            f"the result's palette is in {palette.dtype} units, the image {image.dtype} (a "
            "kept palette applied to another dtype): split works on a palette fitted to this "
            "image's dtype"
        )
    pix, spatial = pixels(image, lay)
    if tuple(spatial) != tuple(result.labels.shape):
        raise ValueError(
            f"image has spatial shape {tuple(spatial)}, the result's labels {result.labels.shape}"
        )
    flat = result.labels.reshape(-1)
    members = np.flatnonzero(flat == label)
    if len(members) < n:
        raise ValueError(f"cluster {label} has {len(members)} pixels: too few to split into {n}")
    opts = settings(
        int(n), seed=seed, sample=SPLIT_SAMPLE, color_space=palette.color_space,
        white=palette.white,
    )  # fmt: skip
    rng = np.random.default_rng(opts.seed)
    chosen = members if len(members) <= SPLIT_SAMPLE else rng.choice(members, SPLIT_SAMPLE, False)
    distinct = len(np.unique(pix[chosen, : lay.ncolour], axis=0))
    if distinct < n:
        raise ValueError(
            f"cluster {label} has {distinct} distinct colour{'s' * (distinct != 1)}: too few "
            f"to split into {n}"
        )
    dtype = palette.dtype or pix.dtype
    sub = cluster(pix[np.sort(chosen), : lay.ncolour], dtype, lay.ncolour, opts).palette
    sub = replace(sub, dtype=palette.dtype, value_range=palette.value_range)
    # the cluster's pixels go to the nearest of its new centres
    sub_labels, _, _, sse_new = assigner(sub, pix.dtype).assign(pix[members], None)
    old = assigner(_single(palette, label), pix.dtype).assign(pix[members], None)[3]
    feats = palette.features
    new_feats = np.vstack([np.delete(feats, label - 1, axis=0), sub.features])
    old_to_row = np.empty(palette.k + 1, np.int64)
    old_to_row[0] = -1
    others = [i for i in range(1, palette.k + 1) if i != label]
    old_to_row[others] = np.arange(len(others))
    old_to_row[label] = -2  # decided per pixel below
    rows = np.full(flat.shape, -1, np.int64)
    labelled = flat > 0
    rows[labelled] = old_to_row[flat[labelled]]
    rows[members] = len(others) + sub_labels.astype(np.int64) - 1
    edit = {"split": int(label), "n": int(n), "seed": opts.seed}
    growth = float(sse_new - old)
    return _rebuild(result, new_feats, rows, edit, growth, per_pixel=True)


def recolour(result: QuantizeResult, label: int, colour) -> QuantizeResult:
    """Show cluster ``label`` in another colour: its pixels in the quantized image take
    ``colour``; its centre (what the measurements use), its label and every number stay.

    Parameters
    ----------
    result : QuantizeResult
        A computed result.
    label : int
        The cluster (1..k).
    colour : str or sequence of float
        ``"#rrggbb"`` (8-bit RGB, scaled to the image's dtype; a grey one for a
        one-channel image), or one value per colour channel in the image's units.

    Returns
    -------
    QuantizeResult
        The same result with the quantized image repainted; the palette records
        the colour in ``fit["display"]`` (label -> colour) and the edit in
        ``fit["edits"]``. A later merge or split repaints from the centres.
    """
    _check_computed(result)
    palette = result.palette
    (label,) = _labels([label], palette.k, at_least=1, name="label")
    number = int | float | np.number
    if not isinstance(colour, str) and (
        not_items(colour)
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in colour)
    ):
        raise TypeError(
            f"colour must be '#rrggbb' or one number per colour channel, got {colour!r}"
        )
    shown = Palette.from_colors([colour] if isinstance(colour, str) else [list(colour)])
    grey = isinstance(colour, str) and len(set(shown.centers[0])) == 1
    if grey and palette.nchannels == 1:  # '#808080' for one channel, as palette.hex shows it
        shown = Palette.from_colors(shown.centers[:, :1], dtype=shown.dtype)
    if shown.nchannels != palette.nchannels:
        raise ValueError(
            f"colour has {shown.nchannels} channels, the palette {palette.nchannels}: {colour!r}"
        )
    target = np.dtype(palette.dtype or "float64")
    if result.quantized is not None:  # the image's units: a kept palette may be another's
        target = np.asarray(result.quantized[:0]).dtype
    values = shown.centers_for(target)[0]
    if target.kind in "ui" and not isinstance(colour, str):
        low, high = _limits(target)
        if not all(float(v).is_integer() and low <= v <= high for v in values):
            raise ValueError(
                f"colour must be whole numbers from {low} to {high} for a {target} image "
                f"(or '#rrggbb'), got {colour!r}"
            )
    with np.errstate(over="ignore"):
        held = values.astype(target) if target.kind == "f" else values
    if not np.isfinite(held).all():
        raise ValueError(f"colour must be numbers a {target} image can hold, got {colour!r}")
    fit = dict(palette.fit or {})
    hexa = shown.hex[0] if shown.hex else None
    fit["display"] = {**fit.get("display", {}), str(label): hexa or values.tolist()}
    fit["edits"] = [*fit.get("edits", []), {"recolour": label, "colour": hexa or values.tolist()}]
    palette = replace(palette, fit=fit)
    if result.quantized is None:  # no quantized image to repaint: the palette records it
        return replace(result, palette=palette)
    quantized = np.array(result.quantized, copy=True)
    axis = _channel_axis(result, quantized.shape, palette.nchannels)
    moved = quantized if axis is None else np.moveaxis(quantized, axis, -1)
    where = result.labels == label
    painted = np.clip(np.rint(values), *_limits(quantized.dtype)) if quantized.dtype.kind in "ui" \
        else values  # fmt: skip
    if axis is None:
        moved[where] = painted[0]
    else:
        moved[where, : palette.nchannels] = painted
    return replace(result, quantized=quantized, palette=palette)


def _limits(dtype):
    info = np.iinfo(dtype)
    return info.min, info.max


def _rebuild(result, feats, rows, edit, growth, per_pixel=False) -> QuantizeResult:
    """A result with clusters ``feats`` (clustering space), dark to light; ``rows`` maps
    each old label (or each pixel, ``per_pixel``) to its row of ``feats`` (-1: left out)."""
    old = result.palette
    centers = _centers(old, feats)
    order = dark_to_light(centers, centers.shape[1])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    fit = dict(old.fit or {})
    fit.pop("display", None)  # the clusters changed: shown in their centres' colours again
    fit["edits"] = [*fit.get("edits", []), edit]
    palette = Palette(
        centers=centers[order],
        color_space=old.color_space,
        lab_centers=feats[order] if old.color_space == "lab" else None,
        white=old.white,
        dtype=old.dtype,
        value_range=old.value_range,
        fit=fit,
        seed=old.seed,
        epsilon=old.epsilon,
        compactness=None,
        name=old.name,
    )
    lut = np.concatenate([[0], rank])  # row + 1 -> new label
    dtype = label_dtype(palette.k)
    if per_pixel:
        labels = lut[rows + 1].astype(dtype).reshape(result.labels.shape)
    else:
        labels = lut[rows + 1][result.labels].astype(dtype)
    counts = np.bincount(labels.ravel(), minlength=palette.k + 1)[1:].astype(np.int64)
    quantized = None if result.quantized is None else _repaint(result, palette, labels)
    return QuantizeResult(
        quantized=quantized,
        labels=labels,
        centers=palette.centers_for(palette.dtype if quantized is None else quantized.dtype),
        counts=counts,
        compactness=float(result.compactness) + growth,
        seed=result.seed,
        epsilon=result.epsilon,
        palette=palette,
        channel_axis=result.channel_axis,
    )


def _repaint(result, palette, labels):
    """The quantized image with every labelled pixel in its new cluster's colour; left-out
    pixels and alpha as they were."""
    quantized = np.asarray(result.quantized)
    axis = _channel_axis(result, quantized.shape, palette.nchannels)
    lay = layout(quantized.shape, quantized.dtype, axis, None if axis is None else False)
    pix, _ = pixels(quantized, lay)
    out = assigner(palette, pix.dtype).paint(labels.reshape(-1), pix)
    return restore(out, quantized.shape, lay.channel_axis)


def _channel_axis(result, shape, nchannels):
    """Where a quantized image keeps its channels: as the result says, or (a result made
    by hand) read from its shape and its labels' shape."""
    spatial = tuple(result.labels.shape)
    if len(shape) == len(spatial):
        return None
    if result.channel_axis is not None:
        return result.channel_axis % len(shape)
    fits = [
        axis for axis in range(len(shape))
        if shape[:axis] + shape[axis + 1:] == tuple(spatial)
        and shape[axis] in (nchannels, nchannels + 1)
    ]  # fmt: skip
    if not fits:
        raise ValueError(f"a quantized image of shape {shape} does not fit labels {spatial}")
    return fits[-1]  # channels last when the shape allows several readings


def _centers(palette, feats) -> np.ndarray:
    if palette.color_space == "lab":
        return from_lab(feats, rgb_scale(palette.dtype))
    if palette.color_space == "od":
        return from_od(feats, palette.white)
    return feats


def _single(palette, label) -> Palette:
    """A one-colour palette of cluster ``label``: its pixels' distances to their centre."""
    row = label - 1
    return Palette(
        centers=palette.centers[row : row + 1],
        color_space=palette.color_space,
        lab_centers=None if palette.lab_centers is None else palette.lab_centers[row : row + 1],
        white=palette.white,
        dtype=palette.dtype,
        value_range=palette.value_range,
    )


def _labels(labels, k, at_least, name="labels") -> list[int]:
    labels = scalar(labels)
    if isinstance(labels, int | np.integer) and not isinstance(labels, bool):
        labels = [labels]
    if not_items(labels):
        raise TypeError(f"{name} must be cluster labels (whole numbers 1..{k}), got {labels!r}")
    values = [scalar(v) for v in labels]
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be cluster labels (whole numbers 1..{k}), got {values!r}")
    chosen = sorted({int(v) for v in values})
    bad = [v for v in chosen if not 1 <= v <= k]
    if bad:
        raise ValueError(f"{name} must be between 1 and {k}, got {bad}")
    if len(chosen) < at_least:
        raise ValueError(f"{name}: give at least {at_least} different clusters, got {chosen}")
    return chosen


def _check_computed(result) -> None:
    if not isinstance(result, QuantizeResult):
        raise TypeError(f"result must be a QuantizeResult, got {type(result).__name__}")
    if is_lazy(result.labels) or isinstance(result.labels, list):
        raise ValueError(
            "edits work on computed results: compute a lazy or multiscale result first"
        )
