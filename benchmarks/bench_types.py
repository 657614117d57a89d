"""Every image type as fast as 8-bit RGB: `quantize` defaults on one photo in five forms.

    pip install -e ".[bench]"
    python benchmarks/bench_types.py                 # 16.7 MP, K = 16, 64, 256 (~3 min)
    python benchmarks/bench_types.py --size 4 -k 256

The photo (scikit-image's astronaut, resized as bench.py does) is quantized as 8-bit RGB,
16-bit (x 257), float32 in [0, 1], and 8-bit with ``color_space="lab"`` and ``"od"``. Each row
is timed twice in this process, the median of ``--repeats`` runs each: with the search grid
(the default from `core._assign.CELL_MIN_K` centres: nearest centres through
`core._assign.cells`, built over the data's own space; below, every centre is measured
either way) and with it switched off (every pixel measured against every centre: what every
type but 8-bit RGB did before). Both give the same labels; the script checks that they are exactly
the nearest centre (the lowest index among equals) of a search of every centre, in float64,
on a sample of ``--check`` pixels of each result. The ratio column is the time over the
8-bit RGB time at the same K.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import numpy as np

from _machine import cpu_and_memory, kquant_version
from bench import SIZES, load_image

FORMS = ("uint8", "uint16", "float32", "lab", "od")


def form(img, name):
    if name == "uint16":
        return img.astype(np.uint16) * 257, {}
    if name == "float32":
        return img.astype(np.float32) / 255, {}
    if name in ("lab", "od"):
        return img, {"color_space": name}
    return img, {}


def exact(result, image, check, seed):
    """Whether ``check`` sampled pixels carry their nearest centre's label."""
    from napari_kquant.engine._apply import assigner

    asg = assigner(result.palette, image.dtype)
    pix = image.reshape(-1, 3)
    pick = np.random.default_rng(seed).choice(len(pix), min(check, len(pix)), replace=False)
    rows = pix[pick]
    features = np.asarray(rows if asg.to_features is None else asg.to_features(rows), float)
    d = ((features[:, None, :] - asg.centers[None]) ** 2).sum(-1)
    return bool((result.labels.reshape(-1)[pick] == d.argmin(1) + 1).all())


def timed(image, k, options, repeats):
    from napari_kquant import quantize

    times, result = [], None
    for seed in range(repeats):
        t = time.perf_counter()
        result = quantize(image, k, channel_axis=-1, seed=seed, **options)
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="16.7", choices=sorted(SIZES))
    parser.add_argument("-k", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--check", type=int, default=20_000)
    args = parser.parse_args(argv)

    from napari_kquant import quantize
    from napari_kquant.core import _assign

    cpu, memory = cpu_and_memory()
    print(f"# {datetime.date.today()} · napari-kquant {kquant_version()} · "
          f"{cpu} · {len(__import__('os').sched_getaffinity(0))} "
          f"cores · {memory:.0f} GiB · Python {sys.version.split()[0]}")  # fmt: skip
    img = load_image("astronaut", args.size)
    print(f"# astronaut at {img.shape[0] * img.shape[1] / 1e6:.1f} MP, defaults, "
          f"median of {args.repeats}")  # fmt: skip
    quantize(img[:64, :64], 4, channel_axis=-1)  # imports and compiled kernels
    grid_from = f"default (grid from K={_assign.CELL_MIN_K})"
    print(f"| image | K | {grid_from} | vs 8-bit | every centre | vs 8-bit | exact |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    switch = _assign.CELL_MIN_PIXELS
    for k in args.k:
        base = {}
        for name in FORMS:
            image, options = form(img, name)
            row = []
            for grid in (True, False):
                _assign.CELL_MIN_PIXELS = switch if grid else 1 << 62
                try:
                    seconds, result = timed(image, k, options, args.repeats)
                finally:
                    _assign.CELL_MIN_PIXELS = switch
                base.setdefault(grid, seconds)
                ok = exact(result, image, args.check, k)
                row.append((seconds, seconds / base[grid], ok))
            (g, gr, gok), (a, ar, aok) = row
            print(f"| {name} | {k} | {g:.2f} s | {gr:.2f}x | {a:.2f} s | {ar:.2f}x | "
                  f"{'yes' if gok and aok else 'NO'} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
