"""A kept palette applied to a folder of photos: napari-kquant beside ImageMagick and Pillow.

    pip install -e ".[bench]"                  # and ImageMagick: apt-get install imagemagick
    python benchmarks/bench_palette.py         # 20 images of 4 MP, K=16, 3 runs (a few minutes)
    python benchmarks/bench_palette.py --images 5 --repeats 1     # a quick look

The test images are the bundled photograph (`napari_kquant.load_photo`) and scikit-image's
coffee, chelsea and rocket, each cropped, flipped, tinted, brightened or darkened and given a
little camera-like noise at random, upscaled to --megapixels (4:3) and written as PNG files to
a temporary folder. One palette of --k colours is fitted once, on the first image (timed on its
own, not in the table), and every method then takes the folder of PNG files to a folder of
quantized PNG files, each with its tools' default PNG writer:

- cv2 read + write, no quantization: the input written back, the I/O under the napari-kquant
  rows (writing a quantized image is cheaper: fewer colours deflate faster);
- napari-kquant, apply kept palette: cv2.imread, `Palette.apply`, cv2.imwrite, per file;
- napari-kquant, fit per image: the same with `quantize` (a new fit on every image);
- ImageMagick ``convert IN +dither -remap palette.png OUT``, one process per image, and
  ``mogrify -path OUT +dither -remap palette.png FILES...``, one process for the whole folder;
  palette.png holds the palette's colours rounded to 8 bits, one pixel each;
- Pillow ``Image.quantize(palette=..., dither=Image.Dither.NONE)`` with the same 8-bit colours.

Times are the median of --repeats runs of the whole loop over the files (a method whose first
run takes over a minute runs once); the runs of the methods are interleaved, so a busy spell
on a shared machine falls on all of them. napari-kquant's first call (numba's compile, or
loading it from the on-disk cache) is made on a small crop before any timing and printed
apart. MSE is the squared RGB distance between output and input pixels, averaged over every
pixel of every image. Agreement is the share of pixels of one image (--check) whose output
colour is that of the nearest palette colour by brute-force search: nearest by the palette's
exact (float) centres, and nearest among its colours rounded to 8 bits (which is all that
ImageMagick and Pillow are given). For "fit per image" the palette is that image's own fit.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import cv2
import numpy as np

import napari_kquant
from _machine import cpu_and_memory, kquant_version
from napari_kquant import Palette, fit, quantize

SLOW_SECONDS = 60.0
BASELINE = "napari-kquant, apply kept palette"


# --- the test images -----------------------------------------------------------------------


def sources() -> list[np.ndarray]:
    """The photos the test images are cut from, RGB uint8."""
    photos = [napari_kquant.load_photo()]  # scikit-image's astronaut, bundled
    try:
        from skimage import data
    except ImportError:
        return photos
    return photos + [getattr(data, name)() for name in ("coffee", "chelsea", "rocket")]


def frame_size(megapixels: float) -> tuple[int, int]:
    """(width, height), 4:3, multiples of 16: 2304 x 1728 for 4 MP."""
    width = 16 * max(1, round((megapixels * 1e6 * 4 / 3) ** 0.5 / 16))
    return width, width * 3 // 4


def make_image(photo, size, rng, noise) -> np.ndarray:
    """A random crop of ``photo``, flipped or not, upscaled to ``size``, tinted and noisy."""
    h, w = photo.shape[:2]
    ch, cw = (int(n * rng.uniform(0.6, 1.0)) for n in (h, w))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    image = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_CUBIC)
    image = image.astype(np.float32) * rng.uniform(0.85, 1.15)  # contrast
    image *= rng.uniform(0.92, 1.08, 3).astype(np.float32)  # colour tint
    image += rng.uniform(-30, 30)  # brightness
    if noise:
        image += rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_images(folder, count, megapixels, noise, seed) -> list[str]:
    photos, size = sources(), frame_size(megapixels)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        image = make_image(photos[i % len(photos)], size, rng, noise)
        path = os.path.join(folder, f"image_{i + 1:03d}.png")
        if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cv2.imwrite failed for {path}")
        paths.append(path)
    return paths


def read_rgb(path) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cv2.imread could not read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path, rgb) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cv2.imwrite failed for {path}")


# --- the tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Magick:
    """How to run ImageMagick here: IM 7's ``magick``, or IM 6's ``convert`` and ``mogrify``."""

    convert: list[str]
    mogrify: list[str]
    version: str


def find_magick(path=None) -> Magick | None:
    """ImageMagick, checked by its -version (a ``convert`` on PATH may be something else)."""
    if path:
        candidates = [path]
    else:
        candidates = [shutil.which("magick"), "/usr/bin/convert", shutil.which("convert")]
    for exe in filter(None, candidates):
        try:
            proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        first = proc.stdout.strip().splitlines()[:1]
        if proc.returncode != 0 or not first or "ImageMagick" not in first[0]:
            continue
        version = first[0].removeprefix("Version: ").split(" https:")[0]
        if os.path.basename(exe) == "magick":
            return Magick([exe], [exe, "mogrify"], version)
        mogrify = os.path.join(os.path.dirname(os.path.realpath(exe)), "mogrify")
        if not os.path.exists(mogrify):
            mogrify = os.path.join(os.path.dirname(exe), "mogrify")
        return Magick([exe], [mogrify], version)
    return None


@dataclass(frozen=True)
class Setup:
    palette: Palette
    colours: np.ndarray  # (k, 3) uint8: the palette rounded to 8 bits
    palette_png: str  # those colours as a k x 1 PNG, for ImageMagick
    k: int
    seed: int
    magick: Magick | None


def pillow_palette(colours):
    from PIL import Image

    image = Image.new("P", (1, 1))
    image.putpalette(colours.tobytes())  # k entries, not padded to 256
    return image


# --- the methods: a folder of PNG files in, a folder of PNG files out ------------------------


def destination(outdir, path) -> str:
    return os.path.join(outdir, os.path.basename(path))


def copy_cv2(files, outdir, setup):
    for path in files:
        write_rgb(destination(outdir, path), read_rgb(path))


def kquant_apply(files, outdir, setup):
    for path in files:
        result = setup.palette.apply(read_rgb(path), channel_axis=-1)
        write_rgb(destination(outdir, path), result.quantized)


def kquant_fit_each(files, outdir, setup):
    for path in files:
        result = quantize(read_rgb(path), k=setup.k, channel_axis=-1, seed=setup.seed)
        write_rgb(destination(outdir, path), result.quantized)


def magick_convert(files, outdir, setup):
    for path in files:
        subprocess.run(
            [*setup.magick.convert, path, "+dither", "-remap", setup.palette_png,
             destination(outdir, path)],
            check=True,
        )  # fmt: skip


def magick_mogrify(files, outdir, setup):
    subprocess.run(
        [*setup.magick.mogrify, "-path", outdir, "+dither", "-remap", setup.palette_png, *files],
        check=True,
    )


def pillow_quantize(files, outdir, setup):
    from PIL import Image

    palette = pillow_palette(setup.colours)
    for path in files:
        with Image.open(path) as image:
            out = image.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE)
        out.save(destination(outdir, path))


METHODS = {
    "cv2 read + write, no quantization (input written back)": copy_cv2,
    "napari-kquant, apply kept palette": kquant_apply,
    "napari-kquant, fit per image": kquant_fit_each,
    "ImageMagick convert -remap, a process per image": magick_convert,
    "ImageMagick mogrify -remap, one process for all": magick_mogrify,
    "Pillow quantize(palette=...), no dither": pillow_quantize,
}
MAGICK = {m for m, fn in METHODS.items() if fn in (magick_convert, magick_mogrify)}


# --- checking the outputs --------------------------------------------------------------------


def nearest(rgb, centers) -> np.ndarray:
    """Index of the nearest of ``centers`` for every pixel: brute force, float64."""
    pix = rgb.reshape(-1, 3)
    index = np.empty(len(pix), np.intp)
    for s in range(0, len(pix), 65_536):
        d = pix[s : s + 65_536, None, :].astype(np.float64) - centers[None]
        index[s : s + 65_536] = np.einsum("pkc,pkc->pk", d, d).argmin(axis=1)
    return index


def agreement(rgb, out, centers) -> tuple[float, float]:
    """Share of pixels whose output is the nearest colour: by exact centres, by 8-bit colours."""
    colours = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
    pix = out.reshape(-1, 3)
    exact = (pix == colours[nearest(rgb, centers)]).all(axis=1).mean()
    eight = (pix == colours[nearest(rgb, colours.astype(np.float64))]).all(axis=1).mean()
    return float(exact), float(eight)


def squared_error(img, out) -> float:
    total = 0.0
    for s in range(0, img.shape[0], 256):
        d = out[s : s + 256].astype(np.float64) - img[s : s + 256]
        total += float((d * d).sum())
    return total


def check(method, files, outdir, setup, check_index) -> dict:
    sse = pixels = size = 0
    for path in files:
        img, out = read_rgb(path), read_rgb(destination(outdir, path))
        if out.shape != img.shape:
            raise ValueError(f"{method}: output {out.shape} for input {img.shape} ({path})")
        sse += squared_error(img, out)
        pixels += img.shape[0] * img.shape[1]
        size += os.path.getsize(destination(outdir, path))
    path = files[check_index]
    img, out = read_rgb(path), read_rgb(destination(outdir, path))
    if METHODS[method] is kquant_fit_each:
        centers = quantize(img, k=setup.k, channel_axis=-1, seed=setup.seed).centers
    else:
        centers = setup.palette.centers
    exact, eight = agreement(img, out, centers)
    return {"mse": sse / pixels, "exact": exact, "eight": eight, "bytes": size}


# --- the run -------------------------------------------------------------------------------


def machine(magick) -> str:
    cpu, mem = cpu_and_memory()
    try:
        import PIL

        pillow = PIL.__version__
    except ImportError:
        pillow = "not installed"
    import numba

    return (
        f"{len(os.sched_getaffinity(0))} cores usable of {os.cpu_count()} ({cpu}), "
        f"{mem:.0f} GiB, load average {os.getloadavg()[0]:.2f}; Python "
        f"{platform.python_version()}, napari-kquant {kquant_version()}, "
        f"OpenCV {cv2.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"Pillow {pillow}, {magick.version if magick else 'ImageMagick: not found'}"
    )


def available(methods, magick) -> list[str]:
    keep = []
    for m in methods:
        if m in MAGICK and magick is None:
            print(f"(skipped: {m}; ImageMagick not found: apt-get install imagemagick)")
            continue
        if METHODS[m] is pillow_quantize:
            try:
                import PIL  # noqa: F401
            except ImportError:
                print(f"(skipped: {m}; Pillow is not installed)")
                continue
        keep.append(m)
    return keep


def warm_up(image, setup, methods, folder) -> float:
    """First calls outside the timing; returns the seconds of napari-kquant's first apply."""
    crop = np.ascontiguousarray(image[:64, :64])
    start = time.perf_counter()
    setup.palette.apply(crop, channel_axis=-1)
    first = time.perf_counter() - start
    quantize(crop, k=setup.k, channel_axis=-1, seed=setup.seed)
    path = os.path.join(folder, "warm.png")
    write_rgb(path, crop)
    outdir = os.path.join(folder, "warm")
    for m in methods:
        os.makedirs(outdir, exist_ok=True)
        METHODS[m]([path], outdir, setup)
        shutil.rmtree(outdir)
    os.remove(path)
    return first


def run(args, folder) -> None:
    wall = time.perf_counter()
    magick = find_magick(args.magick)
    print(f"Machine: {machine(magick)}\n", flush=True)
    methods = available(args.methods, magick)

    start = time.perf_counter()
    files = write_images(folder, args.images, args.megapixels, args.noise, args.seed)
    width, height = frame_size(args.megapixels)
    in_mb = sum(os.path.getsize(p) for p in files) / 1e6
    made = time.perf_counter() - start

    first = read_rgb(files[0])
    start = time.perf_counter()
    palette = fit(first, k=args.k, channel_axis=-1, seed=args.seed)
    fitted = time.perf_counter() - start
    colours = np.clip(np.rint(palette.centers), 0, 255).astype(np.uint8)
    palette_png = os.path.join(folder, "palette.png")
    write_rgb(palette_png, colours[None])  # k x 1 pixels
    setup = Setup(palette, colours, palette_png, args.k, args.seed, magick)
    first_apply = warm_up(first, setup, methods, folder)

    times = {m: [] for m in methods}
    outdirs = {m: os.path.join(folder, f"out_{i}") for i, m in enumerate(methods)}
    for r in range(args.repeats):
        for m in methods:
            if times[m] and times[m][0] > SLOW_SECONDS:
                continue
            shutil.rmtree(outdirs[m], ignore_errors=True)
            os.makedirs(outdirs[m])
            start = time.perf_counter()
            METHODS[m](files, outdirs[m], setup)
            times[m].append(time.perf_counter() - start)
            print(f"  run {r + 1}: {m}: {times[m][-1]:.2f} s", file=sys.stderr, flush=True)

    check_index = min(max(args.check, 1), len(files)) - 1
    checks = {m: check(m, files, outdirs[m], setup, check_index) for m in methods}
    medians = {m: float(np.median(t)) for m, t in times.items()}
    base = medians.get(BASELINE)

    n = len(files)
    print(
        f"{n} PNG images of {width} x {height} ({width * height / 1e6:.2f} MP, {in_mb:.0f} MB "
        f"in all), K={args.k}, median of {args.repeats} runs; agreement on image {check_index + 1}"
        f" ({os.path.basename(files[check_index])}).\n"
    )
    print(
        f"| method | {n} images (s) | images/s | vs apply kept palette | MSE "
        "| = nearest, exact centres | = nearest, 8-bit colours | output MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in methods:
        t, c, runs = medians[m], checks[m], len(times[m])
        note = "" if runs == args.repeats else f" ({runs} run{'s' * (runs > 1)})"
        ratio = f"{t / base:.2f}x" if base else ""
        if METHODS[m] is copy_cv2:  # nothing quantized: no colours to agree on
            agree = "n/a | n/a"
        else:
            agree = f"{100 * c['exact']:.3f}% | {100 * c['eight']:.3f}%"
        print(
            f"| {m} | {t:.2f}{note} | {n / t:.2f} | {ratio} | {c['mse']:.1f} | {agree} "
            f"| {c['bytes'] / 1e6:.1f} |"
        )
    print(
        f"\nPalette fitted once on image 1 (napari_kquant.fit, K={args.k}, seed {args.seed}): "
        f"{fitted:.2f} s, not in the table. napari-kquant's first apply in this process "
        f"(numba compile or cache load, on a 64 x 64 crop): {first_apply:.2f} s, not in the "
        f"table. Palette: {' '.join(palette.hex)}."
    )
    print(
        f"Making the images took {made:.1f} s; the whole benchmark "
        f"{time.perf_counter() - wall:.0f} s."
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20, help="number of test images (default 20)")
    p.add_argument("--megapixels", type=float, default=4.0, help="image size (default 4)")
    p.add_argument("--k", type=int, default=16, help="palette colours (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (default 3)")
    p.add_argument("--seed", type=int, default=0, help="for the images and the fits")
    p.add_argument("--noise", type=float, default=2.0, help="std of the noise added to the images")
    p.add_argument("--check", type=int, default=2, help="image (1-based) for the agreement")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--magick", help="ImageMagick's convert or magick (default: found)")
    p.add_argument("--workdir", help="keep the images and outputs here (default: a temp folder)")
    args = p.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        p.error("--images and --repeats must be at least 1")

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_palette_") as folder:
            run(args, folder)


if __name__ == "__main__":
    main()
