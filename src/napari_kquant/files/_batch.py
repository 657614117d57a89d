"""Many image files through one palette, for the dock's "Apply to many…": each file read,
the palette applied, the quantized picture (and its labels) written into an output folder,
and one table of every file's clusters.

The rules are `kquant --out-dir`'s, through the same `plan` and `write_all`: every output
is checked before any work (no input overwritten, no two files written to one name), and
more strictly, no existing file is replaced at all; each file's outputs land whole or not
at all; an output folder is made only once the checks
have passed, and removed again if nothing landed in it. A file that fails is reported and
the others go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..engine._apply import output_colours
from ..engine._measure import cluster_table, totals
from ._files import FileError, is_zarr, plan, read_image, write_all

#: What a folder's images are recognised by (files are then judged by their content).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
#: The table's columns for each file (the full table has more; see `cluster_table`).
TABLE_COLUMNS = ("file", "label", "hex", "count", "share", "area", "area_unit")


class Stopped(Exception):
    """The batch was cancelled between two files."""


@dataclass(frozen=True)
class Batch:
    """A checked batch: the images, and per image its outputs (path, what)."""

    images: tuple[str, ...]
    out_dir: str
    outputs: dict = field(repr=False)
    new_folder: str | None = None


@dataclass
class BatchResult:
    table: object  # a pandas DataFrame: TABLE_COLUMNS, one block of rows per image
    written: list[str]
    failed: dict[str, str]


def images_in(folder) -> list[str]:
    """The image files of a folder (not its sub-folders or hidden files), sorted by name."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileError(f"{folder!r} is not a folder of images")
    names = sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
    )
    paths = [os.path.join(folder, name) for name in names]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise FileError(f"{folder!r} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def batch_outputs(images, out_dir, write_labels) -> dict[str, list[tuple[str, str]]]:
    """Per image, its outputs in ``out_dir`` as (path, "output" or "labels"):
    ``<name>.png`` and ``<name>-labels.png``. A FileError when two images would write
    one path (``a.png`` and ``a.tif``; ``a.png``'s labels and ``a-labels.png``)."""
    outputs, written = {}, {}
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        wanted = [(os.path.join(out_dir, f"{stem}.png"), "output")]
        if write_labels:
            wanted.append((os.path.join(out_dir, f"{stem}-labels.png"), "labels"))
        for target, what in wanted:
            if target in written:
                other, other_what = written[target]
                raise FileError(
                    f"{other!r} ({_NAMED[other_what]}) and {path!r} ({_NAMED[what]}) would "
                    f"both be written to {target!r}: rename one of them"
                )
            written[target] = (path, what)
        outputs[path] = wanted
    return outputs


_NAMED = {"output": "its quantized picture", "labels": "its labels"}


def plan_batch(images, out_dir, k: int, write_labels: bool = True) -> Batch:
    """Check the whole batch before any work; a FileError names the problem."""
    images = [os.fspath(p) for p in images]
    out_dir = os.fspath(out_dir)
    if not images:
        raise FileError("no images to apply the palette to")
    if any(is_zarr(p) for p in images):
        raise FileError("a batch takes image files; quantize a .zarr array on its own")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileError(f"the output folder {out_dir!r} is a file")
    if os.path.lexists(out_dir) and not os.path.exists(out_dir):
        raise FileError(f"the output folder {out_dir!r} is a symbolic link to nothing")
    new_folder = None
    if not os.path.exists(out_dir):
        parent = os.path.dirname(os.path.abspath(out_dir))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise FileError(f"cannot make the output folder {out_dir!r} in {parent!r}")
        new_folder = out_dir
    outputs = batch_outputs(images, out_dir, write_labels)
    label_dtype = np.uint8 if k <= 255 else np.uint16
    every = may_write(outputs)
    there = [target for target, _ in every if os.path.lexists(target)]
    if there:
        raise FileError(
            f"{there[0]!r} exists: choose an empty or new output folder (a batch from the "
            "dock never replaces a file)"
        )
    plan(
        [(p, what, np.uint8 if what == "output" else label_dtype, 3 if what == "output" else 1)
         for p, what in every],
        images,
        new_folder,
    )  # fmt: skip
    return Batch(tuple(images), out_dir, outputs, new_folder)


def run_batch(batch: Batch, palette, progress=None, stop=None, **finishing) -> BatchResult:
    """Apply ``palette`` to every image of ``batch`` and write its outputs. ``progress(
    fraction, message)`` after each file; ``stop()`` true: stop before the next file (what
    was written stays, whole). ``finishing``: `Palette.apply`'s dithering and clean-up."""
    import pandas as pd

    if batch.new_folder is not None:
        try:
            os.makedirs(batch.new_folder, exist_ok=True)
        except OSError as e:
            raise FileError(f"cannot make the output folder {batch.new_folder!r}: {e}") from None
    written, failed, frames = [], {}, []
    label_dtype = np.uint8 if palette.k <= 255 else np.uint16
    try:
        for i, path in enumerate(batch.images):
            if stop is not None and stop():
                raise Stopped
            try:
                image = read_image(path)
                channel_axis = -1 if image.ndim == 3 and image.shape[-1] in (3, 4) else None
                nchan = image.shape[-1] if channel_axis is not None else 1
                planned = plan(
                    [(written_as(p, what, image.dtype), what,
                      image.dtype if what == "output" else label_dtype,
                      nchan if what == "output" else 1)
                     for p, what in batch.outputs[path]],
                    batch.images,
                )  # fmt: skip
                there = [o.path for o in planned if os.path.lexists(o.path)]
                if there:  # made by someone else since the batch was checked
                    raise FileError(f"{there[0]!r} exists now: not replaced")
                result = palette.apply(image, channel_axis=channel_axis, **finishing)
                arrays = {"output": result.quantized, "labels": result.labels}
                write_all(
                    planned, [arrays[o.what] for o in planned],
                    colours=output_colours(result.centers, image.dtype)[1:],
                    labels=result.labels,
                )  # fmt: skip
                written += [o.path for o in planned]
                columns = cluster_table(palette, totals(np.asarray(result.plane_counts)),
                                        ndim=result.labels.ndim)  # fmt: skip
                frame = pd.DataFrame(columns)
                frame.insert(0, "file", os.path.basename(path))
                frames.append(frame[list(TABLE_COLUMNS)])
            except (FileError, ValueError, TypeError, OSError) as e:
                failed[path] = str(e) or type(e).__name__
            if progress is not None:
                progress((i + 1) / len(batch.images), f"{i + 1} of {len(batch.images)} images")
    finally:  # a folder made here that nothing landed in is not left behind
        folder = batch.new_folder
        if folder is not None and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(TABLE_COLUMNS)
    )  # fmt: skip
    return BatchResult(table, written, failed)


def written_as(path: str, what: str, dtype) -> str:
    """Where a batch writes a planned ``<name>.png`` output for an image of ``dtype``: a
    picture a PNG cannot hold (signed or float values) goes to ``<name>.tif``."""
    if what == "labels" or np.dtype(dtype).kind == "u":
        return path
    return os.path.splitext(path)[0] + ".tif"


def may_write(outputs) -> list[tuple[str, str]]:
    """Every (path, what) a batch of `batch_outputs` may write, before the images' dtypes
    are known: each picture as a PNG and as a TIFF."""
    every = [(p, what) for wanted in outputs.values() for p, what in wanted]
    tifs = [(written_as(p, what, np.float32), what) for p, what in every if what == "output"]
    return every + tifs
