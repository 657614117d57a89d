"""``kquant`` on whole slides: an OME-Zarr or pyramidal TIFF input, or an ``-o NAME.ome.zarr``
output. The pyramid is read lazily, fitted on a coarse level and applied to every level;
the result is one NGFF image with its cluster labels inside (`files._ome_write`).
"""

from __future__ import annotations

import argparse
import math
import os
import time

from ..files._ome import (
    TIFF_SLIDES,
    Opened,
    grown,
    is_ome_zarr,
    is_pyramid_tiff,
    open_image,
)
from ..files._ome_write import write_ome_zarr
from ._args import CLIError
from ._run import (
    _check_table_options,
    _check_texts,
    _finish_options,
    _fit_given,
    _fit_options,
    _load_palette,
    _palette_text,
    _table_csv,
    _table_options,
    colour_axis,
    heard,
)


def is_ome_output(path) -> bool:
    return bool(path) and path.rstrip("/\\").lower().endswith(".ome.zarr")


def wants_slide(args: argparse.Namespace) -> bool:
    """An OME-Zarr or pyramidal TIFF input, or an OME-Zarr output."""
    source = args.images[0] if args.images else None
    if is_ome_output(args.output):
        return True
    return source is not None and (is_ome_zarr(source) or is_pyramid_tiff(source))


def _plain(source) -> Opened:
    """An ordinary image file as a one-level `Opened` (pixels as units)."""
    import dask.array as da

    from ..files._files import read_image

    image = read_image(source)
    axes = "yx" if colour_axis(image) is None else "yxc"
    if image.ndim != len(axes):
        raise CLIError(f"{source!r}: an OME-Zarr output takes a 2-D gray or colour image")
    return Opened([da.asarray(image)], axes, [(1.0,) * len(axes)], (None,) * len(axes), source)


def run_slide(args: argparse.Namespace, parser) -> str:
    """Quantize a whole slide (or apply --palette) and write -o NAME.ome.zarr and --table."""
    source = args.images[0]
    output = args.output
    if output is not None and not is_ome_output(output):
        raise CLIError(
            f"{source!r} is a pyramid: write it as -o NAME.ome.zarr (every level, labels inside)"
        )
    refused = [flag for flag, given in (("--labels", args.labels), ("--mask", args.mask),
               ("--indexed", args.indexed), ("--quality", args.quality)) if given]  # fmt: skip
    if refused:
        inside = " (the labels go inside the OME-Zarr image, as labels/clusters)"
        raise CLIError(f"{', '.join(refused)} does not go with a whole slide{inside}")
    if output is None and args.table is None:
        raise CLIError("give -o NAME.ome.zarr (and/or --table OUT.csv) to write the result")
    if args.palette and _fit_given(args, parser):
        raise CLIError(
            f"--palette applies a saved palette; drop {', '.join(_fit_given(args, parser))}"
        )
    palette = _load_palette(args) if args.palette else None
    k = palette.k if palette is not None else args.k
    _check_table_options(args, k)
    inputs = [source, *(p for p in (args.palette,) if p)]
    _check_texts(args, inputs)
    if output is not None:
        real = os.path.realpath(output)
        for path in inputs:
            given = os.path.realpath(path)
            if given == real or given.startswith(real + os.sep):
                raise CLIError(f"-o {output!r} is an input (or holds one): choose another path")
            if real.startswith(given + os.sep):
                raise CLIError(f"-o {output!r} is inside the input {path!r}: choose another path")
        if os.path.lexists(output):
            raise CLIError(f"-o {output!r} exists: choose a new path for the OME-Zarr image")
        parent = os.path.dirname(os.path.abspath(output))
        if os.path.lexists(parent) and not os.path.isdir(parent):
            raise CLIError(f"-o {output!r}: {parent!r} is not a folder")
        if not os.path.isdir(parent):
            raise CLIError(f"-o {output!r}: the folder {parent!r} does not exist")
    finishing = _finish_options(args)
    slide = is_ome_zarr(source) or os.path.splitext(source)[1].lower() in TIFF_SLIDES
    opened = open_image(source) if slide else _plain(source)
    if output is not None and "?" in opened.axes:
        opened.close()
        raise CLIError(f"{source!r}: an axis has a name NGFF does not know ({opened.axes})")
    with grown(opened) as opened:  # one level: a pyramid built by halving
        try:
            return _quantize_slide(args, opened, palette, finishing, source, output, k)
        except (RuntimeError, OSError, KeyError) as e:  # a chunk or tile that cannot be read
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise CLIError(
                f"{source!r}: part of it could not be read ({type(e).__name__}: {first}); "
                "nothing was written"
            ) from None


def _quantize_slide(args, opened, palette, finishing, source, output, k) -> str:
    start = time.perf_counter()
    if palette is None:
        from .._api import quantize

        result = quantize(opened.image, args.k, channel_axis=opened.channel_axis,
                          progress=heard, **_fit_options(args), **finishing)  # fmt: skip
        how = f"sample {result.palette.fit['sample']} px, seed {result.seed}"
    else:
        result = palette.apply(opened.image, channel_axis=opened.channel_axis, **finishing)
        how = f"palette {os.path.basename(args.palette)}"

    def table(counts):
        from ..engine._measure import cluster_table

        options = _table_options(args)  # --pixel-size, else the file's own
        if not options and opened.pixel_size is not None:
            options = {"pixel_size": opened.pixel_size, "unit": opened.unit}
        return cluster_table(result.palette, [0, *counts], background=args.background,
                             ndim=2, **options)  # fmt: skip

    texts, written = [], []
    if args.save_palette is not None:
        texts.append((args.save_palette, _palette_text(args.save_palette, result.palette)))
    if output is not None:
        counts = write_ome_zarr(output, result, opened, lambda c: _rows(table(c)))
        written.append(output)
    else:
        import dask

        counts = dask.compute(result.counts)[0]
    if args.table is not None:
        import pandas as pd

        texts.append((args.table, _table_csv([pd.DataFrame(table(counts))])))
    if texts:
        from ..core._staged import write_texts

        write_texts(texts)
        written += [path for path, _ in texts]
    seconds = time.perf_counter() - start
    shape = opened.levels[0].shape
    size = "x".join(str(shape[opened.axes.index(a)]) for a in "xy")
    return (
        f"{os.path.basename(source)}: {size} {opened.axes}, {len(opened.levels)} level(s), "
        f"k={k}, {how}: {seconds:.2f} s -> {', '.join(written)}"
    )


def _rows(columns) -> list[dict]:
    """The measurement table's rows for labels 1..K, as JSON values (NaN as None)."""
    names = [n for n in columns if n != "label"]
    rows = []
    for i in range(1, len(columns["label"])):
        row = {}
        for name in names:
            value = columns[name][i]
            value = value.item() if hasattr(value, "item") else value
            row[name] = None if isinstance(value, float) and not math.isfinite(value) else value
        rows.append(row)
    return rows
