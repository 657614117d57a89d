"""Image layout: which dtypes we take, where the channels are, which pixels are usable.

Shared by fitting and applying, eager and lazy alike; numpy only.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._options import flag, scalar


@dataclass(frozen=True)
class Layout:
    """Where an image keeps its channels, and which of them are colour."""

    channel_axis: int | None  # non-negative, or None for one channel
    nchan: int
    has_alpha: bool

    @property
    def ncolour(self) -> int:
        return self.nchan - self.has_alpha


def check_dtype(dtype) -> np.dtype:
    """Integer, float32 or float64 (any byte order); the native equivalent."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype.itemsize > 8 or dtype == np.float16:
        raise TypeError(
            f"image dtype {dtype} is not supported; use an integer, float32 or float64 image"
        )
    return dtype.newbyteorder("=")


def layout(shape, dtype, channel_axis, alpha) -> Layout:
    """Check an image's dtype, size and channel options."""
    check_dtype(dtype)
    alpha = flag("alpha", alpha)
    ndim = len(shape)
    if ndim == 0:
        raise ValueError("image must be an array of pixels, got a single value (shape ())")
    if math.prod(shape) == 0:
        raise ValueError(f"image is empty (shape {tuple(shape)})")
    if channel_axis is None:
        if alpha:
            raise ValueError("alpha=True needs a channel_axis")
        return Layout(None, 1, False)
    channel_axis = scalar(channel_axis)
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an integer or None, got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim or ndim < 2:
        raise ValueError(
            f"channel_axis={channel_axis} is out of range for an image of shape {tuple(shape)}"
        )
    axis = int(channel_axis) % ndim
    nchan = shape[axis]
    has_alpha = (nchan == 4 and axis == ndim - 1) if alpha is None else alpha
    if has_alpha and nchan < 2:
        raise ValueError(f"alpha=True needs at least 2 channels, the image has {nchan}")
    return Layout(axis, nchan, has_alpha)


def check_image(image, channel_axis=None, alpha=None, mask=None, k=None) -> None:
    """What a run refuses of an image before any work, from its shape and dtype (and a
    numpy mask, counted): the dtype and the channels; with ``k`` (a fit), no usable pixel
    and a K above the pixels there are (an upper bound: alpha and non-finite values are not
    looked at). For a caller that starts the work elsewhere, as the dock does in its
    worker."""
    level = image[0] if is_multiscale(image) else image
    lay = layout(level.shape, level.dtype, channel_axis, alpha)
    spatial = spatial_shape(level.shape, lay)
    count = math.prod(spatial)
    if mask is not None:
        check_mask(mask, spatial)
        if not is_lazy(mask):
            count = int(np.count_nonzero(mask))
    if k is None:  # a palette applied: a mask with nothing in it labels nothing, rightly
        return
    if count == 0:
        raise ValueError("the image has no usable pixel (all masked, transparent or non-finite)")
    if k > count:
        raise ValueError(f"k={k} is larger than the number of usable pixels (at most {count})")


def spatial_shape(shape, lay: Layout) -> tuple[int, ...]:
    return tuple(s for axis, s in enumerate(shape) if axis != lay.channel_axis)


def unmask(image, lay: Layout, mask):
    """A numpy masked array's data, with its mask folded into ``mask`` (masked = left out)."""
    if not isinstance(image, np.ma.MaskedArray):
        return image, mask
    hidden = np.ma.getmaskarray(image)
    if lay.channel_axis is not None:
        hidden = hidden.any(axis=lay.channel_axis)
    data = np.ma.getdata(image)
    if mask is None:
        return data, ~hidden
    return data, np.asarray(check_mask(mask, hidden.shape)) & ~hidden


def check_mask(mask, spatial):
    """A boolean mask of the image's spatial shape (numpy or dask), or an error."""
    if not hasattr(mask, "dtype") or not hasattr(mask, "shape"):
        raise TypeError(f"mask must be a boolean array, got {type(mask).__name__}")
    if mask.dtype != bool:
        raise TypeError(f"mask must be a boolean array, got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(spatial):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the image's spatial shape "
            f"{tuple(spatial)}"
        )
    return mask


def pixels(image: np.ndarray, lay: Layout):
    """The image as C-contiguous (pixels, channels) in native byte order, and its spatial shape."""
    if not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))
    if lay.channel_axis is None:
        return np.ascontiguousarray(image).reshape(-1, 1), image.shape
    moved = np.moveaxis(image, lay.channel_axis, -1)
    return np.ascontiguousarray(moved).reshape(-1, lay.nchan), moved.shape[:-1]


def usable(pix, ncolour, spatial, mask):
    """Boolean (n,) of the pixels to cluster, or None when every pixel is."""
    valid = None
    if mask is not None:
        mask = np.asarray(check_mask(mask, spatial))
        valid = np.ascontiguousarray(mask).reshape(-1)
    if pix.shape[1] > ncolour:  # alpha: transparent pixels are left out
        opaque = pix[:, -1] != 0
        valid = opaque if valid is None else valid & opaque
    colours = pix[:, :ncolour]
    # min and max are NaN or infinite when any value is (and cost far less than isfinite)
    floats = pix.dtype.kind == "f" and len(pix)
    if floats and not np.isfinite([colours.min(), colours.max()]).all():
        finite = np.isfinite(colours).all(axis=1)
        valid = finite if valid is None else valid & finite
    if valid is not None and valid.all():
        return None
    return valid


def restore(out, shape, channel_axis):
    """(pixels, channels) back to the input's shape, channels where they were."""
    if channel_axis is None:
        return out.reshape(shape)
    spatial = list(shape)
    nchan = spatial.pop(channel_axis)
    arranged = out.reshape(*spatial, nchan)
    return np.ascontiguousarray(np.moveaxis(arranged, -1, channel_axis))


def is_lazy(image) -> bool:
    """A dask array, or a chunked array-like (zarr, h5py) that dask can wrap."""
    return not isinstance(image, np.ndarray) and getattr(image, "chunks", None) is not None


def check_known_chunks(array, name: str = "image") -> None:
    """Refuse a dask array whose chunk sizes are unknown (NaN, after boolean indexing)."""
    if any(math.isnan(c) for dim in array.chunks for c in dim):
        raise ValueError(
            f"{name} has unknown chunk sizes (NaN), e.g. after boolean indexing; call "
            f"{name}.compute_chunk_sizes() first"
        )


def is_multiscale(image) -> bool:
    """A list of arrays, finest first, each smaller than the one before (napari's convention)."""
    if not isinstance(image, list | tuple) or len(image) < 2:
        return False
    if not all(hasattr(level, "shape") and hasattr(level, "dtype") for level in image):
        return False
    sizes = [math.prod(level.shape) for level in image]
    same_ndim = len({len(level.shape) for level in image}) == 1
    return same_ndim and all(a > b for a, b in itertools.pairwise(sizes))
