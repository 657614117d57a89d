"""``kquant``: quantize image files from the command line, one or a batch.

A thin shell: it reads files (`files`), calls `quantize`, `fit_pooled` or
`Palette.apply`, and writes files (`files`). Every path and option is checked
before any work; a problem is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from ..core._layout import is_lazy
from ..core._options import (
    FIT_OPTIONS,
    MAX_AUTO_K,
    finish,
    settings,
)
from ..engine._apply import label_dtype, output_colours
from ..files._batch import batch_outputs, written_as
from ..files._files import FORMATS, FileError, is_zarr, plan, read_image, write_all
from ..files._photos import photo_path
from ._args import SOME_FAILED, CLIError, build_parser


def _check_indexed(planned, image, channel_axis, mask, k) -> None:
    """What an indexed picture cannot hold, found in the input before any work: partial
    transparency (one alpha per colour), a transparent entry beside 256 colours, a GIF
    side over 65535 pixels."""
    for output in planned:
        if not output.indexed:
            continue
        if output.path.lower().endswith(".gif") and max(image.shape[:2]) > 65535:
            raise CLIError(f"cannot write {output.path!r}: a GIF is at most 65535 pixels a side")
        if output.what != "output" or is_lazy(image):
            continue
        alpha = image[..., -1] if channel_axis is not None and image.shape[-1] == 4 else None
        top = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
        if alpha is not None and ((alpha != 0) & (alpha != top)).any():
            raise CLIError(
                f"cannot write {output.path!r} as an indexed file: the image is partly "
                "transparent (an indexed file holds one alpha per colour); write RGBA instead"
            )
        see_through = (mask is not None and not mask.all()) or (
            alpha is not None and (alpha == 0).any()
        )
        if see_through and k >= 256:
            raise CLIError(
                f"cannot write {output.path!r} as an indexed file: 256 colours leave no entry "
                "for the transparent (left-out) pixels; use -k 255 or fewer"
            )


def _finish_options(args) -> dict:
    """--dither, --dither-strength, --min-size and --smooth, checked (before any work)."""
    if args.dither_strength is not None and args.dither is None:
        raise CLIError("--dither-strength goes with --dither: give the method too")
    strength = 1.0 if args.dither_strength is None else args.dither_strength
    options = {"dither": args.dither, "dither_strength": strength,
               "min_size": args.min_size, "smooth": args.smooth}  # fmt: skip
    finish(**options)
    return options


def colour_axis(image) -> int | None:
    """-1 for RGB(A) files (3 or 4 channels last), None for gray images and stacks."""
    return -1 if image.ndim == 3 and image.shape[-1] in (3, 4) else None


def heard(done, message):
    """The CLI's progress hook, which hears nothing: given one, the fit runs cv2.kmeans in
    a helper thread while the main thread waits in short steps, where SIGTERM and Ctrl-C
    reach it (the helper is abandoned; a bare call would finish first, for minutes)."""


class QualityNotMet(Exception):
    """--quality's MIN cannot be met: nothing is written, exit status 99 (as pngquant)."""


def quality_target(quality: int) -> float:
    """The mean CIEDE2000 of a pngquant-style quality (0 worst, 100 perfect: a difference
    no fit reaches, so that 256 colours are tried)."""
    return max((100 - quality) / 10, 1e-6)


def _check_quality(quality, reached, k) -> str:
    """The quality of the picture to be written (its mean CIEDE2000 ``reached``, measured
    on it: the fit with every option, dithering and clean-up); QualityNotMet below MIN."""
    low, _ = quality
    if not reached <= quality_target(low):  # (NaN: no pixel to measure, not met)
        raise QualityNotMet(
            f"quality {low} not met: {k} colours reach a mean CIEDE2000 of "
            f"{reached:.2f} (quality {100 - 10 * reached:.0f}); nothing was written"
        )
    return f"quality {100 - 10 * reached:.0f}"


def _fit_options(args) -> dict:
    return {name: getattr(args, name) for name in FIT_OPTIONS}


def _fit_given(args, parser) -> list[str]:
    """Fit options the user typed, even at their default values (they do not go with
    --palette)."""
    flags = ["-k", *(f"--{name.replace('_', '-')}" for name in FIT_OPTIONS)]
    typed = getattr(args, "argv", [])
    return [f for f in flags if any(t == f or t.startswith(f + "=") for t in typed)] + (
        ["-k"] if any(t.startswith("-k") and t != "-k" for t in typed) else []
    )


def _load_palette(args):
    from ..engine._palette import Palette

    try:
        return Palette.load(args.palette)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _palette_text(path, palette) -> str:
    from ..engine._palette_files import text

    try:
        return text(path, palette)
    except ValueError as e:
        raise CLIError(f"--save-palette {path!r}: {e}") from None


def _check_not_empty(args) -> None:
    """A path (or unit) option given as an empty string is a mistake, never "not given"."""
    given = (("-o", args.output), ("--labels", args.labels), ("--out-dir", args.out_dir),
             ("--mask", args.mask), ("--palette", args.palette),
             ("--save-palette", args.save_palette), ("--table", args.table),
             ("--unit", args.unit))  # fmt: skip
    for flag, value in given:
        if value is not None and not value.strip():
            what = "a unit such as µm" if flag == "--unit" else "a path"
            blank = "empty" if not value else f"blank ({value!r})"  # spaces: shown
            raise CLIError(f"{flag} is {blank}: give {what}")


def _texts(args) -> list[tuple[str, str]]:
    """The text files asked for: (path, what)."""
    pairs = ((args.save_palette, "palette"), (args.table, "table"))
    return [(path, what) for path, what in pairs if path is not None]


def _check_texts(args, inputs, new_folder=None):
    """--save-palette and --table: their formats, then the checks every output path gets
    (not an input or inside one, not a folder, the folder exists and is writable)."""
    from ..engine._palette_files import FORMATS

    path = args.save_palette
    if path is not None and os.path.splitext(path)[1].lower() not in FORMATS:
        raise CLIError(
            f"--save-palette {path!r}: use a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file"
        )
    if args.table is not None and os.path.splitext(args.table)[1].lower() != ".csv":
        raise CLIError(f"--table {args.table!r}: the table is written as CSV: use a .csv file")
    plan([], inputs, new_folder, texts=_texts(args))


def _check_table_options(args, k):
    """--table's options, before any work."""
    given = [f for f, v in (("--background", args.background), ("--pixel-size", args.pixel_size))
             if v]  # fmt: skip
    if given and args.table is None:
        verb = "go" if len(given) > 1 else "goes"
        raise CLIError(f"{' and '.join(given)} {verb} with --table: give --table OUT.csv too")
    if args.unit is not None and args.pixel_size is None:
        raise CLIError("--unit goes with --pixel-size: give the pixel size too")
    from ..engine._measure import check_background

    try:
        check_background(args.background, k)
    except (TypeError, ValueError) as e:
        raise CLIError(f"--background: {e}") from None


def _table_options(args) -> dict:
    if args.pixel_size is None:
        return {}
    return {"pixel_size": args.pixel_size, "unit": args.unit or "µm"}


def _table_csv(frames) -> str:
    import pandas as pd

    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def _table(palette, plane_counts, ndim, args, source=None):
    """The measurement table of one image (a DataFrame); with ``source``, a ``file`` column
    first (batches)."""
    import pandas as pd

    from ..engine._measure import cluster_table, totals

    columns = cluster_table(
        palette,
        totals(plane_counts),
        background=args.background,
        ndim=ndim,
        **_table_options(args),
    )
    frame = pd.DataFrame(columns)
    if source is not None:
        frame.insert(0, "file", os.path.basename(source))
    return frame


def _summary(source, image, channel_axis, k, how, seconds, compactness, written) -> str:
    shape = "x".join(str(s) for s in image.shape[:2][::-1])
    kind = {None: "gray"}.get(channel_axis, "RGBA" if image.shape[-1] == 4 else "RGB")
    return (
        f"{os.path.basename(source)}: {shape} {kind} {image.dtype}, k={k}, {how}: "
        f"{seconds:.2f} s, compactness {float(compactness):.4g} -> {', '.join(written)}"
    )


# --- one image ------------------------------------------------------------------------------


def run(args: argparse.Namespace, parser=None) -> str:
    """One image: quantize (or apply --palette) and write -o and --labels."""
    parser = parser or build_parser()
    source = args.images[0] if args.images else photo_path()
    inputs = [source, *(p for p in (args.mask, args.palette) if p)]
    if args.palette and _fit_given(args, parser):
        raise CLIError(
            f"--palette applies a saved palette; drop {', '.join(_fit_given(args, parser))}"
        )
    if args.quality is not None:
        clash = [f for f in _fit_given(args, parser) if f == "-k"]
        clash = ["--palette"] if args.palette else clash
        if clash:
            raise CLIError(f"--quality chooses K: drop {clash[0]}")
    if not args.palette:
        settings(1 if args.quality is not None else args.k, **_fit_options(args))  # no file read
    palette = _load_palette(args) if args.palette else None
    k = palette.k if palette is not None else args.k
    if args.quality is not None:
        k = MAX_AUTO_K  # at most; the labels are planned for it, then for the K chosen
    _check_table_options(args, k)
    _check_texts(args, inputs)
    finishing = _finish_options(args)
    image = read_image(source)
    channel_axis = colour_axis(image)
    nchan = image.shape[-1] if channel_axis is not None else 1
    ncolour = nchan - (nchan == 4)
    if args.quality is not None and ncolour != 3:
        raise CLIError(f"--quality measures colour differences: {source!r} is not an RGB image")
    cleaned = [f for f, v in (("--min-size", args.min_size), ("--smooth", args.smooth)) if v]
    if args.quality is not None and cleaned:  # (its quality is no guide to K: not monotone)
        raise CLIError(f"--quality chooses K by colour difference, which {cleaned[0]} then "
                       "changes (more colours can clean up worse): give -k with it")  # fmt: skip
    lossy = args.output and not FORMATS.get(os.path.splitext(args.output)[1].lower(), "ok")[-1]
    if args.quality is not None and lossy:
        raise CLIError(f"--quality measures the picture written: -o {args.output!r} is lossy "
                       "(its encoding changes the colours after); use .png or .tif")  # fmt: skip
    if args.save_palette and args.save_palette.lower().endswith(".gpl") and ncolour != 3:
        raise CLIError(f"--save-palette {args.save_palette!r}: a GIMP palette holds RGB colours")
    flat_files = [p for p in (args.output, args.labels) if p and not is_zarr(p)]
    if flat_files and image.ndim - (channel_axis is not None) != 2:
        raise CLIError(
            f"{source!r} has shape {tuple(image.shape)}: an image file holds a 2-D image; "
            f"write {flat_files[0]!r} as .zarr instead"
        )

    def outputs_for(k):  # -o and --labels planned for K colours
        wanted = [(args.output, "output", image.dtype, nchan),
                  (args.labels, "labels", label_dtype(k), 1)]  # fmt: skip
        return plan([w for w in wanted if w[0] is not None], inputs, texts=_texts(args),
                    indexed=args.indexed, k=k)  # fmt: skip

    mask = None
    if args.mask:
        mask_image = read_image(args.mask, indices=True)
        mask = (mask_image != 0).any(axis=-1) if mask_image.ndim == 3 else mask_image != 0
    # --quality: K is chosen later, up to 256, or 255 where the outputs hold no more
    # (labels in an 8-bit or indexed file, a transparent entry beside the colours)
    for most in (k, k - 1) if args.quality is not None else (k,):
        try:
            planned = outputs_for(most)
            _check_indexed(planned, image, channel_axis, mask, most)
            break
        except (FileError, CLIError):
            if most == k - 1 or args.quality is None:
                raise
    k = most
    start = time.perf_counter()
    if palette is None:
        from .._api import quantize

        chosen = {}
        if args.quality is not None:
            chosen = {"target": quality_target(args.quality[1])}
        with warnings.catch_warnings():
            if args.quality is not None:  # a MAX out of reach is the user's range, not a fault
                warnings.filterwarnings("ignore", "k='auto': no K up to", UserWarning)
            result = quantize(
                image, "auto" if chosen else args.k, channel_axis=channel_axis, mask=mask,
                **_fit_options(args), progress=heard, **finishing, **chosen,
            )  # fmt: skip
            if chosen and result.palette.k > k:  # the outputs hold K colours at most
                result = quantize(image, k, channel_axis=channel_axis, mask=mask,
                                  **_fit_options(args), progress=heard, **finishing)  # fmt: skip
        usable = result.labels  # label 0: left out (mask, alpha 0); lazy: counted as all
        usable = usable.size if is_lazy(usable) else int(np.count_nonzero(usable))
        drawn = min(result.palette.fit["sample"] or 0, usable)
        fit = "all pixels" if args.sample is None else f"sample {drawn} px"
        how = f"{fit}, seed {result.seed}"
        if args.quality is not None:
            from ..analysis._choose import picture_delta_e

            k = result.palette.k
            reached = picture_delta_e(image, result.quantized, result.labels, channel_axis)
            how = f"{_check_quality(args.quality, reached, k)}, {how}"
            planned = outputs_for(k)
    else:
        result = palette.apply(image, channel_axis=channel_axis, mask=mask, **finishing)
        how = f"palette {os.path.basename(args.palette)}"
    arrays = {"output": result.quantized, "labels": result.labels}
    texts = []
    if args.save_palette is not None:
        texts.append((args.save_palette, _palette_text(args.save_palette, result.palette)))
    ndim = image.ndim - (channel_axis is not None)

    def all_texts(extra):  # the table needs the counts of the same pass
        if args.table is None:
            return texts
        table = _table(result.palette, extra[1], ndim, args)
        return [*texts, (args.table, _table_csv([table]))]

    compactness, _ = write_all(
        planned,
        [arrays[o.what] for o in planned],
        [result.compactness, None if args.table is None else result.plane_counts],
        all_texts,
        colours=output_colours(result.centers, image.dtype)[1:],
        labels=result.labels,
    )
    seconds = time.perf_counter() - start
    written = [o.path for o in planned] + [path for path, _ in _texts(args)]
    return _summary(source, image, channel_axis, k, how, seconds, compactness, written)


# --- a batch --------------------------------------------------------------------------------


def run_batch(args: argparse.Namespace, parser) -> int:
    """Several images: one pooled palette (or --palette), each image written into --out-dir."""
    from tqdm import tqdm

    if args.quality is not None:
        raise CLIError("--quality chooses K for one image; a batch takes -k (or --palette)")
    if any(v is not None for v in (args.output, args.labels, args.mask)):
        raise CLIError(
            "with several images use --out-dir (and --write-labels), not -o/--labels/--mask"
        )
    if not args.out_dir:
        raise CLIError("several images need --out-dir DIR")
    if not args.images:
        raise CLIError(f"--out-dir {args.out_dir!r} is for a batch: give the IMAGE files")
    new_folder = None
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise CLIError(f"--out-dir {args.out_dir!r} is a file, not a folder")
    if os.path.lexists(args.out_dir) and not os.path.exists(args.out_dir):
        raise CLIError(f"--out-dir {args.out_dir!r} is a symbolic link to nothing")
    if not os.path.exists(args.out_dir):
        parent = os.path.dirname(os.path.abspath(args.out_dir))
        if not os.path.isdir(parent):
            raise CLIError(f"--out-dir {args.out_dir!r}: its parent folder does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CLIError(f"--out-dir {args.out_dir!r}: its parent folder is not writable")
        new_folder = args.out_dir  # made once every check has passed
    if any(is_zarr(p) for p in args.images):
        raise CLIError("a batch takes image files; quantize a .zarr array on its own with -o")
    if args.palette and _fit_given(args, parser):
        raise CLIError(
            f"--palette applies a saved palette; drop {', '.join(_fit_given(args, parser))}"
        )
    inputs = [*args.images, *(p for p in (args.palette,) if p)]
    settings(args.k, **_fit_options(args))  # every option checked before any file is read
    finishing = _finish_options(args)
    _check_texts(args, inputs, new_folder)
    palette = _load_palette(args) if args.palette else None
    k = palette.k if palette else args.k
    _check_table_options(args, k)
    # names before any work: two inputs must not share an output
    outputs = batch_outputs(args.images, args.out_dir, args.write_labels)
    # (a float or signed image's <name>.tif instead of .png is checked when it is read)
    every = [(p, what) for wanted in outputs.values() for p, what in wanted]
    there = [p for p, _ in every if os.path.lexists(p)]
    if there and not args.force:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise CLIError(
            f"--out-dir: {there[0]!r} exists{more}: a batch replaces no file unless --force "
            "is given (or choose an empty or new folder)"
        )
    plan(
        [
            (p, what, *((np.uint8, 3) if what == "output" else (label_dtype(k), 1)))
            for p, what in every
        ],
        inputs,
        new_folder,
        texts=_texts(args),
        indexed=args.indexed,
        k=k,
    )

    failed = {}
    pooled = palette is None
    if pooled:
        palette = _pooled_palette(args, failed, tqdm)
    if new_folder is not None:
        try:
            os.makedirs(new_folder, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot make --out-dir {new_folder!r}: {e.strerror}") from None
    try:
        return _apply_batch(
            args, palette, pooled, outputs, inputs, label_dtype(k), failed, tqdm, finishing
        )
    finally:  # a folder kquant made and nothing landed in (failures, SIGTERM): not left behind
        if new_folder is not None and os.path.isdir(new_folder) and not os.listdir(new_folder):
            os.rmdir(new_folder)


def _apply_batch(
    args, palette, pooled, outputs, inputs, labels_dtype, failed, tqdm, finishing
) -> int:
    """The batch's writes: each image, the palette kept with the first that lands (none
    lands: no palette), the table."""
    keep = []  # the --save-palette file, until it lands with an image
    if args.save_palette is not None:
        keep = [(args.save_palette, _palette_text(args.save_palette, palette))]
    tables = []
    bar = tqdm(args.images, desc="applying", unit="image", disable=None, file=sys.stderr)
    for path in bar:
        if path in failed:
            continue
        start = time.perf_counter()
        try:
            image = read_image(path)
            channel_axis = colour_axis(image)
            nchan = image.shape[-1] if channel_axis is not None else 1
            wanted = outputs[path]
            planned = plan(
                [
                    (
                        written_as(p, what, image.dtype),
                        what,
                        image.dtype if what == "output" else labels_dtype,
                        nchan if what == "output" else 1,
                    )
                    for p, what in wanted
                ],
                inputs,
                indexed=args.indexed,
                k=palette.k,
            )
            there = [o.path for o in planned if os.path.lexists(o.path)]
            if there and not args.force:  # made by someone else since the batch was checked
                raise FileError(f"{there[0]!r} exists: not replaced (no --force)")
            result = palette.apply(image, channel_axis=channel_axis, **finishing)
            arrays = {"output": result.quantized, "labels": result.labels}
            compactness, counts = write_all(
                planned,
                [arrays[o.what] for o in planned],
                [result.compactness, None if args.table is None else result.plane_counts],
                texts=keep,
                colours=output_colours(result.centers, image.dtype)[1:],
                labels=result.labels,
            )
            if keep:
                what = f"pooled palette: k={palette.k}, seed {palette.seed}"
                tqdm.write(f"{what if pooled else 'palette'} -> {args.save_palette}")
                keep = []
            if args.table is not None:
                ndim = image.ndim - (channel_axis is not None)
                tables.append(_table(palette, counts, ndim, args, source=path))
        except Exception as e:  # one bad file must not stop the batch
            if interrupt_in(e) is not None:  # SIGTERM or Ctrl-C: the batch stops
                raise
            failed[path] = str(e) or type(e).__name__
            tqdm.write(f"kquant: {os.path.basename(path)}: failed: {e}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        how = "pooled palette" if not args.palette else f"palette {os.path.basename(args.palette)}"
        tqdm.write(
            _summary(
                path,
                image,
                channel_axis,
                palette.k,
                how,
                seconds,
                compactness,
                [o.path for o in planned],
            )
        )
    if args.table is not None and tables:
        write_all([], [], texts=[(args.table, _table_csv(tables))])
        tqdm.write(f"table of {len(tables)} images -> {args.table}")
    if failed:
        names = ", ".join(failed)
        print(
            f"kquant: error: {len(failed)} of {len(args.images)} files failed: {names}",
            file=sys.stderr,
        )
        return SOME_FAILED
    return 0


def interrupt_in(error: BaseException) -> BaseException | None:
    """The SIGTERM or Ctrl-C (an exception that is not an ``Exception``) in the chain of
    ``error``: a signal handled while numba hands a kernel's arrays back to Python
    surfaces as a SystemError, with the handler's exception at the root of its chain."""
    while error is not None:
        if not isinstance(error, Exception | GeneratorExit | SystemExit):
            return error
        error = error.__cause__ or error.__context__
    return None


def _pooled_palette(args, failed, tqdm):
    """One palette from a sample pooled across the readable images; unreadable ones noted."""
    from ..engine._fit import fit_pooled

    kinds = []

    def readable():
        for path in tqdm(
            args.images, desc="sampling", unit="image", disable=None, file=sys.stderr
        ):
            try:
                image = read_image(path)
            except FileError as e:
                failed[path] = str(e)
                tqdm.write(f"kquant: {os.path.basename(path)}: failed: {e}", file=sys.stderr)
                continue
            kind = (colour_axis(image), image.shape[-1] if image.ndim == 3 else 1, image.dtype)
            if kinds and kind != kinds[0][1]:
                first, (_, channels, dtype) = kinds[0]
                raise CLIError(
                    f"{path!r} ({kind[2]}, {kind[1]} channels) is not like {first!r} ({dtype}, "
                    f"{channels} channels): one palette needs images alike"
                )
            kinds.append((path, kind))
            yield image

    images = readable()
    first = next(images, None)
    if first is None:
        raise CLIError("no image could be read: " + "; ".join(failed.values()))

    def chain():
        yield first
        yield from images

    try:
        return fit_pooled(chain(), args.k, channel_axis=colour_axis(first), progress=heard,
                          **_fit_options(args))  # fmt: skip
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
