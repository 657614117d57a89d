"""Dithering a 16.7 MP photo: napari-kquant beside Pillow and libimagequant, in one run.

    pip install -e ".[bench]"          # imagequant: libimagequant (pngquant's library)
    python benchmarks/bench_dither.py              # K = 16 and 64, 3 runs each (~1 minute)
    python benchmarks/bench_dither.py -k 8 --repeats 1

The photo is the bundled astronaut upscaled to 4096 x 4096 (16.7 MP, bicubic). For each K,
napari-kquant fits its palette once (`quantize` defaults, not timed here), and then:

- napari-kquant: `Palette.apply(image, dither=...)`: nearest-centre labels plus the dithered
  picture, for None, "floyd-steinberg" (serpentine, full strength) and "ordered" (8x8 Bayer);
- Pillow: `Image.quantize(palette=P, dither=Image.Dither.FLOYDSTEINBERG)` (and NONE) with the
  same palette rounded to 8 bits: the picture only, no labels;
- libimagequant (the `imagequant` package): `quantize_pil_image(image, max_colors=K,
  dithering_level=1.0)` (and 0.0). It makes its own palette of at most K colours, so its
  time includes its palette search: a different palette, shown for quality.

Time is the median of --repeats runs. MSE is the mean squared RGB difference from the photo;
"blurred MSE" the same after a Gaussian blur of both images (sigma 1.5 px), the usual halftone
measure: what the eye sees from a distance, where dithering is meant to help.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import cv2
import numpy as np

from _machine import cpu_and_memory, kquant_version
from napari_kquant import load_photo, quantize


def photo() -> np.ndarray:
    return cv2.resize(load_photo(), (4096, 4096), interpolation=cv2.INTER_CUBIC)


def blurred(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.5)


def errors(image, picture, image_blurred) -> tuple[float, float]:
    diff = image.astype(np.float32) - picture.astype(np.float32)
    mse = float((diff**2).sum(axis=-1).mean())
    blur = float(((image_blurred - blurred(picture)) ** 2).sum(axis=-1).mean())
    return mse, blur


def timed(function, repeats):
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def methods(image, palette, k):
    from PIL import Image

    eight = np.clip(np.rint(palette.centers), 0, 255).astype(np.uint8)
    pil_palette = Image.new("P", (1, 1))
    pil_palette.putpalette(eight.ravel().tolist())
    pil = Image.fromarray(image)

    def ours(dither):
        return lambda: palette.apply(image, channel_axis=-1, dither=dither).quantized

    def pillow(dither):
        return lambda: np.asarray(pil.quantize(palette=pil_palette, dither=dither).convert("RGB"))

    rows = [
        ("napari-kquant, no dithering", ours(None)),
        ("napari-kquant, Floyd-Steinberg", ours("floyd-steinberg")),
        ("napari-kquant, ordered (Bayer 8x8)", ours("ordered")),
        ("Pillow, same palette, no dithering", pillow(Image.Dither.NONE)),
        ("Pillow, same palette, Floyd-Steinberg", pillow(Image.Dither.FLOYDSTEINBERG)),
    ]
    try:
        import imagequant

        def liq(level):
            return lambda: np.asarray(
                imagequant.quantize_pil_image(pil, dithering_level=level, max_colors=k).convert(
                    "RGB"
                )
            )

        rows += [
            ("libimagequant, own palette, no dithering", liq(0.0)),
            ("libimagequant, own palette, dithering 1.0", liq(1.0)),
        ]
    except ImportError:
        print("(imagequant is not installed: pip install imagequant for its rows)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpu, memory = cpu_and_memory()
    print(
        f"napari-kquant {kquant_version()}, Python {platform.python_version()}, "
        f"{cpu}, {memory:.0f} GiB"
    )
    image = photo()
    image_blurred = blurred(image)
    print(f"photo: astronaut upscaled to {image.shape[1]}x{image.shape[0]} (16.7 MP)")
    # numba's first call (compile or cache load) on a crop, before any timing
    warm = quantize(image[:64, :64], 4, channel_axis=-1, seed=0).palette
    for dither in ("floyd-steinberg", "ordered"):
        warm.apply(image[:64, :64], channel_axis=-1, dither=dither)
    for k in args.k:
        palette = quantize(image, k, channel_axis=-1, seed=0).palette
        print(f"\nK = {k}")
        print(f"{'method':<44} {'time s':>7} {'MSE':>8} {'blurred MSE':>12}")
        for name, function in methods(image, palette, k):
            seconds, picture = timed(function, args.repeats)
            mse, blur = errors(image, picture, image_blurred)
            print(f"{name:<44} {seconds:7.2f} {mse:8.1f} {blur:12.2f}")


if __name__ == "__main__":
    main()
