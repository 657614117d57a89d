"""``kquant``: quantize an image file from the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

from ._options import (
    COLOR_SPACES,
    CRITERIA,
    DEFAULT_ATTEMPTS,
    DEFAULT_SAMPLE,
    INITS,
    MAX_ITER,
)
from ._quantize import quantize
from ._sample_data import photo_path


class CLIError(Exception):
    """A problem the user can fix; reported as one line and exit status 2."""


def _usual_mode(path: str, mode: int) -> None:
    """Give a temporary file or folder the permissions a plain create would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _sample(text: str) -> int | None:
    return None if text == "all" else int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kquant",
        description="Reduce the colours of an image by K-means clustering (OpenCV). "
        "With no IMAGE, the photograph bundled with napari-kquant is used.",
    )
    p.add_argument("image", nargs="?", help="image file (PNG, TIFF, JPEG, ...) or .zarr array")
    p.add_argument("-k", type=int, default=8, help="number of colours (default: 8)")
    p.add_argument(
        "-o",
        "--output",
        help="write the quantized image here (.png, .tif, ..., or .zarr for a lazy, chunked "
        "write); without -o, open napari",
    )
    p.add_argument(
        "--labels", help="also write the cluster labels (1..k) here (.png, .tif, .zarr)"
    )
    p.add_argument("--mask", help="image file whose non-zero pixels are the ones to cluster")
    p.add_argument("--criteria", choices=list(CRITERIA), default="eps+max_iter")
    p.add_argument("--max-iter", type=int, default=MAX_ITER, help="2 to 100 (default: 100)")
    p.add_argument(
        "--epsilon", type=float, default=None, help="default: 1/1000 of the value range"
    )
    p.add_argument("--attempts", type=int, default=DEFAULT_ATTEMPTS)
    p.add_argument("--init", choices=list(INITS), default="kmeans++")
    p.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    p.add_argument(
        "--sample",
        type=_sample,
        default=DEFAULT_SAMPLE,
        help=f"pixels to fit on, or 'all' for an exact fit (default: {DEFAULT_SAMPLE})",
    )
    p.add_argument("--color-space", choices=list(COLOR_SPACES), default="rgb")
    return p


def is_zarr(path: str) -> bool:
    return path.rstrip("/").endswith(".zarr")


def read_image(path: str):
    """An image file as RGB(A) or grayscale, in its own bit depth; a .zarr array lazily."""
    if is_zarr(path):
        import dask.array as da

        try:
            return da.from_zarr(path)
        except Exception as e:  # zarr raises several kinds for a path that is not an array
            raise CLIError(f"cannot read {path!r}: not a zarr array ({e})") from None
    if not os.path.isfile(path):
        raise CLIError(f"cannot read {path!r}: no such file")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CLIError(f"cannot read {path!r}: not an image format OpenCV can decode")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def write_image(path: str, image: np.ndarray, protected: str) -> None:
    """Write atomically (a temporary file, then a rename); never over ``protected``."""
    if os.path.exists(path) and os.path.samefile(path, protected):
        raise CLIError(f"refusing to overwrite the input image {path!r}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    folder, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=ext, dir=folder)
    except OSError as e:
        raise CLIError(f"cannot write {path!r}: {e.strerror}") from None
    os.close(fd)
    try:
        _usual_mode(tmp, 0o666)  # mkstemp makes it private
        try:
            ok = cv2.imwrite(tmp, image)
        except cv2.error:
            ok = False
        if not ok:
            raise CLIError(
                f"cannot write {path!r}: OpenCV cannot encode a {image.dtype} image "
                f"as {ext or 'a file without extension'}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_zarr(items, protected: str, extra=()):
    """Write dask-able arrays to .zarr folders in one pass; each lands whole or not at all.

    Returns the computed ``extra`` values, computed in the same pass.
    """
    import dask
    import dask.array as da

    stores, temps = [], []
    try:
        for path, data in items:
            if os.path.exists(path) and os.path.samefile(path, protected):
                raise CLIError(f"refusing to overwrite the input image {path!r}")
            folder, name = os.path.split(os.path.abspath(path))
            try:
                tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=folder)
            except OSError as e:
                raise CLIError(f"cannot write {path!r}: {e.strerror}") from None
            temps.append(tmp)
            _usual_mode(tmp, 0o777)  # mkdtemp makes it private
            stores.append(da.to_zarr(da.asarray(data), tmp, overwrite=True, compute=False))
        values = dask.compute(*stores, *extra)[len(stores) :]
        for (path, _), tmp in zip(items, temps, strict=True):
            if os.path.isdir(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
        return values
    finally:
        for tmp in temps:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)


def colour_axis(image) -> int | None:
    """-1 for RGB(A) files (3 or 4 channels last), None for gray images and stacks."""
    return -1 if image.ndim == 3 and image.shape[-1] in (3, 4) else None


def run(args: argparse.Namespace) -> str:
    source = args.image or photo_path()
    image = read_image(source)
    mask = None
    if args.mask:
        mask_image = read_image(args.mask)
        mask = (mask_image != 0).any(axis=-1) if mask_image.ndim == 3 else mask_image != 0
    channel_axis = colour_axis(image)
    start = time.perf_counter()
    result = quantize(
        image,
        args.k,
        channel_axis=channel_axis,
        criteria=args.criteria,
        max_iter=args.max_iter,
        epsilon=args.epsilon,
        attempts=args.attempts,
        init=args.init,
        seed=args.seed,
        sample=args.sample,
        color_space=args.color_space,
        mask=mask,
    )
    outputs = [
        (p, d) for p, d in ((args.output, result.quantized), (args.labels, result.labels)) if p
    ]
    files = [(p, d) for p, d in outputs if not is_zarr(p)]
    # lazy results: the zarr stores, the arrays for the files and the compactness are
    # computed together, in one pass over the image (numpy results pass through as they are)
    *arrays, compactness = write_zarr(
        [(p, d) for p, d in outputs if is_zarr(p)],
        source,
        extra=[*(d for _, d in files), result.compactness],
    )
    for (path, _), data in zip(files, arrays, strict=True):
        write_image(path, np.asarray(data), protected=source)
    seconds = time.perf_counter() - start
    shape = "x".join(str(s) for s in image.shape[:2][::-1])
    kind = {None: "gray"}.get(channel_axis, "RGBA" if image.shape[-1] == 4 else "RGB")
    fit = "all pixels" if args.sample is None else f"sample {args.sample} px"
    written = ", ".join(p for p in (args.output, args.labels) if p)
    return (
        f"{os.path.basename(source)}: {shape} {kind} {image.dtype}, k={args.k}, {fit}, "
        f"seed {result.seed}: {seconds:.2f} s, compactness {float(compactness):.4g}"
        f" -> {written}"
    )


def open_viewer(args: argparse.Namespace):
    """A napari viewer with the image loaded and the widget docked, set to ``-k``."""
    try:
        import napari
    except ImportError:
        raise CLIError(
            "napari is not installed: pip install 'napari-kquant[all]', or give -o OUT"
        ) from None
    source = args.image or photo_path()
    image = read_image(source)
    viewer = napari.Viewer()
    name = os.path.splitext(os.path.basename(source))[0]
    viewer.add_image(image, name=name, rgb=colour_axis(image) is not None)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.k.value = args.k
    return viewer


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kquant`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.output:
            print(run(args))
        else:
            open_viewer(args)
            import napari

            napari.run()
    except (CLIError, ValueError, TypeError) as e:
        print(f"kquant: error: {e}", file=sys.stderr)
        return 2
    return 0
