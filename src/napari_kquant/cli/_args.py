"""``kquant``'s arguments: the parser, and what its values must be. Every option is
checked by the parser or by the engine's own checks before any file is read.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..core._options import (
    AUTO_SAMPLE_TEXT,
    COLOR_SPACES,
    CRITERIA,
    DEFAULT_ATTEMPTS,
    DEFAULT_SAMPLE,
    DITHERS,
    FAST_ATTEMPTS,
    FAST_MAX_ITER,
    FAST_SAMPLE_TEXT,
    INITS,
    MAX_ITER,
    MIN_ITER,
    SPEEDS,
)

#: Exit status when some files of a batch failed and the others were written.
SOME_FAILED = 1
USAGE = 2


class CLIError(Exception):
    """A problem the user can fix; reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the whole usage
        raise CLIError(f"{message} (see kquant --help)")


def _sample(text: str) -> int | str | None:
    if text == "all":
        return None
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, 'auto' or 'all', got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="kquant",
        description="Reduce the colours of images by K-means clustering (OpenCV). With one "
        "IMAGE and -o, quantize it; with several and --out-dir, fit one palette across all "
        "of them (or apply --palette) and write each. With no IMAGE, the photograph bundled "
        "with napari-kquant is used; with no output (-o, --labels, --table, --out-dir), "
        "napari opens.",
        allow_abbrev=False,  # --whi must not pass for --white past the --palette check
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or a .zarr array")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("-k", type=int, default=8, help="number of colours (default: 8)")
    p.add_argument(
        "-o", "--output", help="write the quantized image here (.png, .tif, ..., or .zarr)"
    )
    p.add_argument(
        "--labels", help="also write the cluster labels (1..k) here (.png, .tif, .zarr)"
    )
    p.add_argument(
        "--out-dir", help="batch: write <name>.png (and <name>-labels.png) for each IMAGE here"
    )
    p.add_argument(
        "--write-labels", action="store_true", help="batch: also write each image's labels"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="batch: replace files already in --out-dir (without it a batch replaces none)",
    )
    p.add_argument("--palette", help="apply this saved palette (.json, .gpl, .csv): no fit")
    p.add_argument("--save-palette", help="keep the fitted palette in this file (.json, ...)")
    p.add_argument("--mask", help="image file whose non-zero pixels are the ones to cluster")
    p.add_argument(
        "--table",
        help="write the per-cluster measurements (counts, shares, areas) to this .csv; "
        "batch: one table, a 'file' column first",
    )
    p.add_argument(
        "--background",
        type=int,
        action="append",
        default=[],
        metavar="LABEL",
        help="--table: this cluster is background (left out of foreground_share); repeatable",
    )
    p.add_argument(
        "--pixel-size",
        type=_pixel_size,
        metavar="SIZE",
        help="--table: the pixel size (SIZE, or ROW,COLUMN) for areas in --unit squared",
    )
    p.add_argument("--unit", help="--table: the unit of --pixel-size (default: µm)")
    p.add_argument("--criteria", choices=list(CRITERIA), default="eps+max_iter")
    p.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help=f"{MIN_ITER} to {MAX_ITER} (default: {MAX_ITER}; {FAST_MAX_ITER} with --speed fast)",
    )
    p.add_argument(
        "--epsilon", type=float, default=None, help="default: 1/1000 of the value range"
    )
    p.add_argument(
        "--attempts",
        type=int,
        default=None,
        help=f"default: {DEFAULT_ATTEMPTS} ({FAST_ATTEMPTS} with --speed fast)",
    )
    p.add_argument("--init", choices=list(INITS), default="kmeans++")
    p.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    p.add_argument(
        "--sample",
        type=_sample,
        default=DEFAULT_SAMPLE,
        help=f"pixels to fit on, 'auto' ({AUTO_SAMPLE_TEXT}; with --speed fast "
        f"{FAST_SAMPLE_TEXT}) or 'all' for an exact fit (default: auto)",
    )
    p.add_argument("--color-space", choices=list(COLOR_SPACES), default="rgb")
    p.add_argument(
        "--speed",
        choices=list(SPEEDS),
        default="default",
        help=f"fast: a quick fit for web pictures (a sample of {FAST_SAMPLE_TEXT}; "
        f"{FAST_ATTEMPTS} attempt; at most {FAST_MAX_ITER} iterations; give the options to "
        "change any)",
    )
    p.add_argument(
        "--white",
        type=_white,
        help="--color-space od: the white level (clear glass): a value, R,G,B, or 'auto' "
        "(the brightest 1%% of pixels; default: the dtype's maximum)",
    )
    looks = p.add_argument_group("outputs")
    looks.add_argument(
        "--dither",
        nargs="?",
        const=DITHERS[0],
        type=_dither,
        metavar="{" + ",".join(DITHERS) + "}",
        help=f"dither the picture (the labels stay as they are); alone: {DITHERS[0]} (error "
        "diffusion in flat areas only)",
    )
    looks.add_argument("--dither-strength", type=float, help="0 to 1 (default: 1)")
    looks.add_argument(
        "--min-size", type=int, help="regions of fewer pixels join the neighbour they border most"
    )
    looks.add_argument("--smooth", type=int, help="majority filter of this radius on the labels")
    looks.add_argument(
        "--indexed",
        action="store_true",
        help="write -o and --labels as palette files (.png, .gif, .tif; .gif always is)",
    )
    p.add_argument(
        "--quality",
        metavar="MIN-MAX",
        type=_quality,
        help="as pngquant's: 0 (worst) to 100 (perfect); the fewest colours (up to 256) that "
        "reach MAX, and exit status 99 with no output if even 256 fall short of MIN. Quality "
        "is 100 - 10 x the mean CIEDE2000 colour difference (70: a mean of 3, the k=auto "
        "default; 90: 1, a just noticeable difference)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this dask.distributed scheduler (e.g. tcp://10.0.0.5:8786; needs the "
        "distributed package): whole slides and .zarr arrays are then worked on its workers",
    )
    return p


def _version() -> str:
    """The installed version, with the OpenCV and numpy it runs on."""
    import cv2

    from .. import __version__

    return f"{__version__} (OpenCV {cv2.__version__}, numpy {np.__version__})"


def _dither(text: str) -> str:
    if text not in DITHERS:  # often the input, read as the method: `--dither in.png`
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a dithering method ({', '.join(DITHERS)}); to dither with the "
            f"default, put --dither after the input or write --dither={DITHERS[0]}"
        )
    return text


def _white(text: str):
    if text.strip() == "auto":
        return "auto"
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or not all(np.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"must be 'auto', a positive value, or three as R,G,B, got {text!r}"
        )
    return values[0] if len(values) == 1 else values


def _quality(text: str) -> tuple[int, int]:
    """pngquant's MIN-MAX (or MAX alone, with MIN 0): whole numbers, 0 <= MIN <= MAX <= 100."""
    parts = text.split("-")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = [0, *values]
    if len(values) != 2 or not 0 <= values[0] <= values[1] <= 100:
        raise argparse.ArgumentTypeError(
            f"must be MIN-MAX (or MAX), whole numbers 0 <= MIN <= MAX <= 100, got {text!r}"
        )
    return values[0], values[1]


def _pixel_size(text: str) -> tuple[float, float]:
    try:
        sizes = tuple(float(t) for t in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or not all(np.isfinite(s) and s > 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"must be a positive size, or two as ROW,COLUMN (e.g. 0.5,0.25), got {text!r}"
        )
    return sizes
