"""Pictures for the web: napari-kquant beside libimagequant (pngquant's library), in one run.

    pip install -e ".[bench]"            # imagequant, scikit-image
    python benchmarks/bench_web.py       # 8 photographs of 0.26-1 MP (~4 minutes)
    python benchmarks/bench_web.py --photos rocket coffee --repeats 1

The photographs are scikit-image's at 0.26-1 MP (web pictures and GIFs): the three the
defaults were tuned on (astronaut, coffee, chelsea: 512 x 512 or upscaled to 0.26 MP) and
five they were not (rocket, immunohistochemistry, stereo_motorcycle, hubble_deep_field,
retina: native, or retina downscaled to 1 MP). Against the `imagequant` package
(libimagequant's Python binding: `quantize_pil_image(image, max_colors=K,
dithering_level=L)`), in the same process:

- K=256, no dithering: time (median of --repeats, from the array to the 8-bit picture;
  libimagequant's from a PIL image), mean CIEDE2000 (scikit-image, sRGB D65) and MSE
  against the photograph. Ours: `quantize(img, 256, channel_axis=-1)` with the defaults,
  with ``speed="fast"``, and with ``speed="fast", color_space="lab"`` (the web recipe:
  a quick fit, in the space CIEDE2000 measures).
- Dithered, K=16 and 256: mean CIEDE2000 and SSIM (scikit-image `structural_similarity`,
  colour, data_range 255) of our default dithering (``dither=True``: adaptive) and of
  Floyd-Steinberg, both with our default palette, against libimagequant at dithering
  level 1.0 (its own palette).
- Indexed PNG at K=64, dithered: `kquant --dither --indexed` against libimagequant's
  picture saved by Pillow with ``optimize=True``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import sys
import tempfile
from functools import partial

import cv2
import numpy as np

from _machine import cpu_and_memory, kquant_version
from bench_dither import timed
from bench_quality import mse

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "stereo_motorcycle", "hubble_deep_field", "retina")  # fmt: skip
TUNED = {"astronaut", "coffee", "chelsea"}
SMALLEST, LARGEST = 262_144, 1_000_000


def photo(name: str) -> np.ndarray:
    """A scikit-image photograph, resized into 0.26-1 MP when it is outside."""
    from skimage import data

    image = getattr(data, name)()
    image = (image[0] if isinstance(image, tuple) else image)[..., :3]  # stereo: the left
    pixels = image.shape[0] * image.shape[1]
    if not SMALLEST <= pixels <= LARGEST:
        scale = ((LARGEST if pixels > LARGEST else SMALLEST) / pixels) ** 0.5
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, size, interpolation=shrink)
    return np.ascontiguousarray(image)


def delta_e(image, picture) -> float:
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(deltaE_ciede2000(rgb2lab(image), rgb2lab(picture)).mean())


def ssim(image, picture) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(image, picture, channel_axis=-1, data_range=255))


def liq(image, k, level):
    import imagequant
    from PIL import Image

    pil = Image.fromarray(image)
    return lambda: imagequant.quantize_pil_image(pil, dithering_level=level, max_colors=k)


def png_sizes(name, image, folder) -> tuple[int, int]:
    """(ours, libimagequant's) indexed PNG bytes at K=64, dithered."""
    from napari_kquant.cli._main import main as kquant

    source = os.path.join(folder, f"{name}.png")
    cv2.imwrite(source, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ours = os.path.join(folder, f"{name}-64.png")
    argv = [source, "-k", "64", "--seed", "0", "--dither", "--indexed", "-o", ours]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = kquant(argv)
    if status != 0:
        raise RuntimeError(f"kquant {' '.join(argv)} failed")
    buffer = io.BytesIO()
    liq(image, 64, 1.0)().save(buffer, format="PNG", optimize=True)
    return os.path.getsize(ours), len(buffer.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import imagequant  # noqa: F401  (fail now, not after minutes)

    from napari_kquant import quantize

    cpu, memory = cpu_and_memory()
    print(f"# {datetime.date.today()} · napari-kquant {kquant_version()} · {cpu} · "
          f"{len(os.sched_getaffinity(0))} cores · {memory:.0f} GiB · "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    images = {name: photo(name) for name in args.photos}
    warm = images[args.photos[0]][:64, :64]
    for space in ("rgb", "lab"):  # numba's kernels loaded (or compiled) before any timing
        quantize(warm, 4, channel_axis=-1, seed=0, color_space=space, dither=True)
        quantize(images[args.photos[0]], 256, channel_axis=-1, seed=0, color_space=space,
                 speed="fast")  # fmt: skip
    quantize(images[args.photos[0]], 256, channel_axis=-1, seed=0)
    ours = {  # column title: options
        "ours": {},
        "fast": {"speed": "fast"},
        "fast + lab": {"speed": "fast", "color_space": "lab"},
    }

    print("\n## K=256, no dithering\n")
    print("| photo | tuned on | MP | ours time | ours ΔE00 | ours MSE | fast time | fast ΔE00 | "
          "fast + lab time | fast + lab ΔE00 | libimagequant time | its ΔE00 | "
          "its MSE |")  # fmt: skip
    print("| --- " * 13 + "|")
    for name, image in images.items():
        megapixels = image.shape[0] * image.shape[1] / 1e6
        row = [name, "yes" if name in TUNED else "no", f"{megapixels:.2f}"]
        for title, options in ours.items():
            run = partial(quantize, image, 256, channel_axis=-1, seed=0, **options)
            seconds, result = timed(run, args.repeats)
            row += [f"{seconds:.3f} s", f"{delta_e(image, result.quantized):.3f}"]
            if title == "ours":
                row.append(f"{mse(image, result.quantized):.1f}")
        seconds, theirs = timed(liq(image, 256, 0.0), args.repeats)
        theirs = np.asarray(theirs.convert("RGB"))
        row += [f"{seconds:.3f} s", f"{delta_e(image, theirs):.3f}", f"{mse(image, theirs):.1f}"]
        print("| " + " | ".join(row) + " |", flush=True)

    print("\n## Dithered: mean ΔE00 / SSIM against the photograph\n")
    print("| photo | K | ours, no dithering | ours, dither=True (adaptive) | ours, "
          "floyd-steinberg | libimagequant, level 1.0 |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for k in (16, 256):
        for name, image in images.items():
            palette = quantize(image, k, channel_axis=-1, seed=0).palette
            row = [name, str(k)]
            for dither in (None, True, "floyd-steinberg"):
                picture = palette.apply(image, channel_axis=-1, dither=dither).quantized
                row.append(f"{delta_e(image, picture):.3f} / {ssim(image, picture):.3f}")
            theirs = np.asarray(liq(image, k, 1.0)().convert("RGB"))
            row.append(f"{delta_e(image, theirs):.3f} / {ssim(image, theirs):.3f}")
            print("| " + " | ".join(row) + " |", flush=True)

    print("\n## Indexed PNG, K=64, dithered\n")
    print("| photo | kquant --dither --indexed | libimagequant + Pillow optimize | ours/theirs |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for name, image in images.items():
            ours, theirs = png_sizes(name, image, folder)
            print(f"| {name} | {ours:,} B | {theirs:,} B | {ours / theirs:.3f} |", flush=True)


if __name__ == "__main__":
    main()
