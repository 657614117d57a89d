"""The engine's half of `quantize`: a fitted palette applied to the image it was fitted on.

When the fit labelled every usable pixel (an exact fit: cv2's own partition; a sampled fit
refined on all of them: each pixel's nearest centre), its labels are painted; otherwise the
palette is applied as `Palette.apply` applies it (`apply_palette`, with the `Finish`
options checked once by the caller).
"""

from __future__ import annotations

import numpy as np

from ..core._layout import layout
from ..core._options import Finish
from ._apply import assigner, result
from ._fit import Fitted
from ._palette import apply_palette
from ._result import QuantizeResult
from ._sample import Drawn, as_dask


def quantize_fitted(
    fitted: Fitted, drawn: Drawn | None, image, done: Finish, channel_axis, alpha, mask,
    progress, apply_hook,
) -> QuantizeResult:  # fmt: skip
    """The result of `quantize` from its fit (``drawn``: the pixels the fit labelled, all
    of them)."""
    palette = fitted.palette
    if drawn is None:
        return apply_palette(palette, image, channel_axis, alpha, mask, apply_hook, done)
    # the fit labelled every usable pixel: its partition, painted
    asg = assigner(palette, drawn.pixels.dtype)
    labels = np.zeros(len(drawn.pixels), asg.label_dtype)
    if drawn.valid is None:
        labels[:] = fitted.labels
    else:
        labels[drawn.valid] = fitted.labels
    out = asg.paint(labels, drawn.pixels)
    counts = np.bincount(labels, minlength=palette.k + 1)
    compactness = fitted.compactness
    if done.anything:
        labels, out, counts, compactness = asg.finish(
            drawn.pixels, drawn.valid, drawn.spatial, labels, out, counts, compactness, done
        )
    if progress is not None:
        progress(1.0, "done")
    return result(
        palette, drawn.image.shape, drawn.layout.channel_axis,
        labels.reshape(drawn.spatial), out, counts, compactness, drawn.image.dtype,
    )  # fmt: skip


def small_lazy(image, sample: int | None, channel_axis, alpha) -> np.ndarray | None:
    """A lazy image with no more pixels than ``sample``, read into memory (to be quantized
    exactly as numpy input would be); None for larger ones."""
    image = as_dask(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    if sample is None or image.size // lay.nchan > sample:
        return None
    return np.asarray(image)


def as_lazy_result(eager: QuantizeResult, image, channel_axis, alpha) -> QuantizeResult:
    """The result of an image quantized in memory, as dask arrays chunked like ``image``."""
    import dask.array as da

    image = as_dask(image)
    lay = layout(image.shape, image.dtype, channel_axis, alpha)
    spatial_chunks = tuple(c for axis, c in enumerate(image.chunks) if axis != lay.channel_axis)
    return QuantizeResult(
        quantized=da.from_array(eager.quantized, chunks=image.chunks),
        labels=da.from_array(eager.labels, chunks=spatial_chunks),
        centers=eager.centers,
        counts=da.from_array(eager.counts),
        compactness=da.from_array(np.asarray(eager.compactness)),
        seed=eager.seed,
        epsilon=eager.epsilon,
        palette=eager.palette,
        channel_axis=eager.channel_axis,
    )
