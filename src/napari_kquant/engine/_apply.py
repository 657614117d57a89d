"""Applying a palette to pixels: nearest-centre labels and quantized colours (eager).

The compiled kernels (`_assign`, numba) are imported on first use. The lazy
path (`_lazy`) runs the same `Assigner` on every chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..core._colorspace import OD_MAX, lab_features, rgb_scale, safe_scale_64, to_od
from ..core._layout import Layout, layout, pixels, restore, unmask, usable
from ..core._options import Finish
from ._result import QuantizeResult

#: numba's default (workqueue) thread pool must not run two kernels at once. It is
#: held only around a kernel call, never while user code (a progress hook) runs.
KERNEL_LOCK = threading.Lock()
_GRID_LOCK = threading.Lock()


def silent(*progress):
    """The progress hook when nobody listens."""


def label_dtype(k: int) -> np.dtype:
    return np.dtype(np.uint8 if k <= 255 else np.uint16)


def output_colours(centers: np.ndarray, dtype) -> np.ndarray:
    """(k + 1, channels) centres in ``dtype`` (rounded and clipped for integers); row 0 unused."""
    dtype = np.dtype(dtype)
    colours = np.zeros((len(centers) + 1, centers.shape[1]), dtype)
    if dtype.kind not in "ui":
        info = np.finfo(dtype)
        colours[1:] = np.clip(centers, info.min, info.max)  # a float64 palette on float32
        return colours
    info = np.iinfo(dtype)
    values = np.rint(centers)
    top, bottom = values >= float(info.max), values <= float(info.min)
    inside = ~(top | bottom)  # float(info.max) may round past the dtype: never cast it
    body = colours[1:]
    body[inside] = values[inside].astype(dtype)
    body[top], body[bottom] = info.max, info.min
    return colours


#: Scaled values are kept within this, so that squared distances stay finite: where a tiny
#: palette was scaled up, a pixel far beyond it is equally far from every centre (as in
#: unscaled float64, where its distances to them are equal too).
SCALED_MAX = 2.0**500


def _scaled(block, ncolour, scale):
    with np.errstate(over="ignore"):
        features = block[:, :ncolour].astype(np.float64) / scale
    return np.clip(features, -SCALED_MAX, SCALED_MAX, out=features)


@dataclass(frozen=True)
class Assigner:
    """A palette made ready for pixels of one dtype: centres in the distance space, colours."""

    ncolour: int
    centers: np.ndarray  # (k, features) float64: what distances are measured against
    colours: np.ndarray  # (k + 1, ncolour) in the image dtype
    to_features: Callable | None  # colour channels -> distance space; None: the values
    sse_factor: float  # squared distances back to the palette's clustering units
    #: (2, features) the values the distance space can hold (-inf/inf: any)
    limits: np.ndarray
    integer: bool  # the distance space holds whole numbers (the pixels themselves)

    @property
    def key(self) -> tuple:
        """What the search grid depends on: the centres and the space's limits."""
        return (self.centers.tobytes(), self.centers.shape, self.limits.tobytes(), self.integer)

    @property
    def label_dtype(self) -> np.dtype:
        return label_dtype(len(self.centers))

    def assign(self, pix, valid, report=silent):
        """Labels, quantized pixels, counts (index 0 = left out) and summed squared distances."""
        from ..core import _assign

        labels = np.empty(len(pix), self.label_dtype)
        out = np.empty_like(pix)
        grid = None
        k, nfeat = self.centers.shape
        if _assign.uses_cells(nfeat, k, len(pix), self.key in _GRIDS):
            grid = _grid(self)
        counts, sse = _assign.assign(
            pix, self.ncolour, self.centers, self.colours, valid, labels, out,
            self.to_features, report, KERNEL_LOCK, grid,
        )  # fmt: skip
        return labels, out, counts, sse * self.sse_factor

    def paint(self, labels, pix):
        """Quantized pixels for given labels; where a label is 0, the source pixel."""
        from ..core import _assign

        out = np.empty_like(pix)
        with KERNEL_LOCK:
            _assign.paint(labels, pix, self.ncolour, self.colours, out)
        return out

    def sse(self, labels, pix) -> float:
        """Summed squared distances of labelled pixels to their labels' centres."""
        from ..core import _assign

        total = _assign.sse(pix, self.ncolour, self.centers, labels, self.to_features,
                            KERNEL_LOCK)  # fmt: skip
        return total * self.sse_factor

    def finish(self, pix, valid, spatial, labels, out, counts, sse, done: Finish, origin=(0, 0)):
        """Labels, picture, counts and squared distances after cleaning or dithering.

        ``labels`` are flat; ``spatial`` their shape; ``origin`` the (row, column)
        of the first pixel in its plane (ordered dithering of a chunk).
        """
        if done.cleans:
            from ..finish._clean import clean_labels

            planes = labels.reshape(_planes(spatial))
            labels = clean_labels(planes, min_size=done.min_size, smooth=done.smooth).reshape(-1)
            out = self.paint(labels, pix)
            counts = np.bincount(labels, minlength=len(self.centers) + 1).astype(np.int64)
            sse = self.sse(labels, pix)
        if done.dither is not None and done.dither_strength > 0:
            from ..finish._dither import dither

            with KERNEL_LOCK:
                dither(pix, valid, spatial, self.ncolour, self.colours, done.dither,
                       done.dither_strength, out, origin)  # fmt: skip
        return labels, out, counts, sse


#: Search grids built in this process, by `Assigner.key`: a palette's grid is built once
#: per process, for every chunk of a lazy image, also where each chunk task unpickles its
#: own copy of the assigner (a dask.distributed worker). The newest few are kept.
_GRIDS: dict = {}
_GRIDS_KEPT = 8


def _grid(asg: Assigner):
    from ..core import _assign

    with _GRID_LOCK:
        if asg.key not in _GRIDS:
            while len(_GRIDS) >= _GRIDS_KEPT:
                _GRIDS.pop(next(iter(_GRIDS)))
            _GRIDS[asg.key] = _assign.grid(asg.centers, asg.limits, asg.integer)
        return _GRIDS[asg.key]


def _planes(spatial) -> tuple[int, int, int]:
    """(planes, rows, columns) of a spatial shape; a 1-D image is one row."""
    rows = spatial[-2] if len(spatial) >= 2 else 1
    return (-1, rows, spatial[-1])


def assigner(palette, dtype) -> Assigner:
    """Prepare ``palette`` for pixels of ``dtype``."""
    dtype = np.dtype(dtype)
    centers = palette.centers_for(dtype)
    colours = output_colours(centers, dtype)
    ncolour = palette.nchannels
    if palette.color_space == "lab":
        to_features = partial(lab_features, scale=rgb_scale(dtype))
        limits = np.array([[0.0, -np.inf, -np.inf], [100.0, np.inf, np.inf]])
        return Assigner(ncolour, palette.lab_centers, colours, to_features, 1.0, limits, False)
    if palette.color_space == "od":
        to_features = partial(to_od, white=palette.white_for(dtype))
        limits = np.array([[0.0] * ncolour, [OD_MAX] * ncolour])
        return Assigner(ncolour, palette.od_centers, colours, to_features, 1.0, limits, False)
    scale = safe_scale_64(float(np.abs(centers).max()))  # float64 distances
    if scale == 1.0:
        integer = dtype.kind in "ui"
        lo, hi = -np.inf, np.inf  # the dtype's range, or the values the palette was fitted on
        if integer:
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        elif palette.value_range is not None and palette.dtype == str(dtype):
            lo, hi = palette.value_range
        limits = np.array([[lo] * ncolour, [hi] * ncolour], np.float64)
        return Assigner(ncolour, np.ascontiguousarray(centers), colours, None, 1.0, limits,
                        integer)  # fmt: skip
    to_features = partial(_scaled, ncolour=ncolour, scale=scale)
    limits = np.array([[-np.inf] * ncolour, [np.inf] * ncolour])
    return Assigner(ncolour, centers / scale, colours, to_features, scale * scale, limits, False)


def check_channels(palette, lay: Layout) -> None:
    if lay.ncolour != palette.nchannels:
        alpha = " (plus alpha)" if lay.has_alpha else ""
        axis = lay.channel_axis
        where = "no channel_axis" if axis is None else f"channel_axis={axis}"
        raise ValueError(
            f"the palette has {palette.nchannels} colour channels, but the image has "
            f"{lay.ncolour}{alpha} ({where})"
        )


def result(palette, shape, channel_axis, labels, out, counts, sse, dtype) -> QuantizeResult:
    """The result of flat ``labels`` and ``out``; ``dtype``: the input's (its byte order,
    where the work was done in the native one)."""
    if out.dtype != dtype:
        out = out.astype(dtype)
    return QuantizeResult(
        quantized=restore(out, shape, channel_axis),
        labels=labels,
        centers=palette.centers_for(out.dtype),
        counts=counts[1:].astype(np.int64),
        compactness=float(sse),
        seed=palette.seed,
        epsilon=palette.epsilon,
        palette=palette,
        channel_axis=channel_axis,
    )


def apply_array(palette, image, channel_axis, alpha, mask, progress, done) -> QuantizeResult:
    """`Palette.apply` for an image in memory."""
    if not isinstance(image, np.ndarray):
        image = np.asarray(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    image, mask = unmask(image, lay, mask)
    check_channels(palette, lay)
    pix, spatial = pixels(image, lay)
    valid = usable(pix, lay.ncolour, spatial, mask)
    asg = assigner(palette, pix.dtype)
    report = silent if progress is None else (lambda done: progress(done, "assigning pixels"))
    labels, out, counts, sse = asg.assign(pix, valid, report)
    labels, out, counts, sse = asg.finish(pix, valid, spatial, labels, out, counts, sse, done)
    if progress is not None:
        progress(1.0, "done")
    return result(
        palette, image.shape, lay.channel_axis, labels.reshape(spatial), out, counts, sse,
        image.dtype,
    )  # fmt: skip
