"""Does the default hold on photographs it was not tuned on? MSE against a converged reference.

    pip install -e ".[bench]"                       # scikit-learn, scikit-image
    python benchmarks/bench_quality.py           # 7 photos at 4 MP, K = 8 to 256 (~25 min)
    python benchmarks/bench_quality.py -k 16 64 --seeds 0 1 2

The photos are scikit-image's, resized to 4 MP as bench.py does: the three the defaults were
tuned on (astronaut, a portrait; coffee; chelsea) and four they were not (rocket, outdoors;
immunohistochemistry, a stained slide; hubble_deep_field and retina, dark backgrounds).
The reference is scikit-learn's KMeans, one k-means++ start run to convergence on a
1,000,000-pixel sample (seed 0), every pixel then given its nearest centre. MSE is the mean
over pixels of the squared RGB distance between the picture as saved (8-bit) and the input.
Ours is `quantize(img, K, channel_axis=-1, seed=s)` with the defaults, averaged over seeds
(six by default: one seed's result lands in one local optimum, 1-3% apart at K=16-64, and
so does the reference's single start), with the worst seed's ratio beside it; the time is
the median. The issue's targets: at most 1.01x the reference at K <= 64 and 1.015x at K=256
on every photo.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import numpy as np

from _machine import cpu_and_memory, kquant_version
from bench import load_image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina")  # fmt: skip
TUNED = {"astronaut", "coffee", "chelsea"}


def mse(image, picture) -> float:
    return float(((picture.astype(np.float64) - image) ** 2).sum(-1).mean())


def reference(image, k) -> float:
    from sklearn.cluster import KMeans

    from napari_kquant import Palette

    pixels = image.reshape(-1, 3).astype(np.float32)
    rng = np.random.default_rng(0)
    sample = pixels[rng.choice(len(pixels), min(len(pixels), 1_000_000), replace=False)]
    centres = KMeans(n_clusters=k, n_init=1, random_state=0).fit(sample).cluster_centers_
    nearest = Palette.from_colors(centres.astype(np.float64), dtype="uint8").apply(
        image, channel_axis=-1
    )
    return mse(image, nearest.quantized)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", type=int, nargs="+", default=[8, 16, 32, 64, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS)
    args = parser.parse_args(argv)

    from napari_kquant import quantize

    cpu, memory = cpu_and_memory()
    print(f"# {datetime.date.today()} · napari-kquant {kquant_version()} · "
          f"{cpu} · {len(os.sched_getaffinity(0))} cores · "
          f"{memory:.0f} GiB · Python {sys.version.split()[0]}")  # fmt: skip
    quantize(load_image("coffee", "4")[:64, :64], 4, channel_axis=-1)  # kernels loaded
    print("| photo | tuned on | K | reference MSE | ours MSE | ours / reference | worst seed | "
          "ours time |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in args.k:
        for name in args.photos:
            image = load_image(name, "4")
            ref = reference(image, k)
            errors, times = [], []
            for seed in args.seeds:
                start = time.perf_counter()
                result = quantize(image, k, channel_axis=-1, seed=seed)
                times.append(time.perf_counter() - start)
                errors.append(mse(image, result.quantized))
            ours = float(np.mean(errors))
            print(f"| {name} | {'yes' if name in TUNED else 'no'} | {k} | {ref:.2f} | "
                  f"{ours:.2f} | {ours / ref:.3f} | {max(errors) / ref:.3f} | "
                  f"{statistics.median(times):.2f} s |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
