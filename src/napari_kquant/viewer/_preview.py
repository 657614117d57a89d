"""Live preview: quantize what is on screen, small and fast, with the form's settings.

The image is cut to the plane on screen (stacks) and thinned to at most
`PREVIEW_PIXELS` by a stride (or taken from a coarse level of a pyramid); the fit
uses one attempt on at most `PREVIEW_SAMPLE` pixels: about 80 ms at K = 16 on 2
cores. numpy only; napari is not imported here.
"""

from __future__ import annotations

import math

import numpy as np

from .._api import quantize

#: The preview's size: about a screen's worth of pixels.
PREVIEW_PIXELS = 512 * 512
PREVIEW_SAMPLE = 10_000


def screen_view(data, rgb: bool, fixed: dict[int, int], max_pixels: int = PREVIEW_PIXELS):
    """The 2-D plane on screen, thinned: (array, stride, level step).

    ``data`` is a layer's data (an array or a list of levels, finest first);
    ``fixed`` maps the spatial axes that are not displayed to their index. The
    stride is the same along both displayed axes; for a pyramid, ``level step``
    is how much coarser the chosen level is than the finest (1 otherwise).
    """
    levels = list(data) if isinstance(data, list) else [data]
    spatial = levels[0].ndim - (1 if rgb else 0)
    if spatial < 2:
        raise ValueError("the live preview needs an image of at least 2 dimensions")
    chosen, step = levels[0], 1
    for level in levels[1:]:  # the coarsest level that still fills the preview
        rows, cols = level.shape[spatial - 2 : spatial]
        if rows * cols < max_pixels:
            break
        chosen = level
        step = levels[0].shape[spatial - 1] / level.shape[spatial - 1]
    index = [  # the plane on screen, in the chosen level's own indices
        min(int(fixed.get(axis, 0) * chosen.shape[axis] / levels[0].shape[axis]),
            chosen.shape[axis] - 1)
        for axis in range(spatial - 2)
    ]  # fmt: skip
    rows, cols = chosen.shape[spatial - 2 : spatial]
    stride = max(1, math.ceil(math.sqrt(rows * cols / max_pixels)))
    view = chosen[(*index, slice(None, None, stride), slice(None, None, stride))]
    return np.asarray(view), stride, step


def preview(data, rgb: bool, fixed: dict[int, int], params: dict):
    """Quantize the screen view with the form's fit settings, made fast: (result, scale
    factor of the preview's pixels over the layer's, the settings used)."""
    view, stride, step = screen_view(data, rgb, fixed)
    fast = dict(params)
    fast["attempts"] = 1
    sample = fast.get("sample")
    auto = sample is None or isinstance(sample, str)  # None (all) or "auto"
    fast["sample"] = PREVIEW_SAMPLE if auto else min(sample, PREVIEW_SAMPLE)
    pixels = view.shape[0] * view.shape[1]
    fast["k"] = min(int(fast["k"]), pixels)
    result = quantize(view, channel_axis=-1 if rgb else None, **fast)
    return result, stride * step, {**fast, "seed": result.seed}
