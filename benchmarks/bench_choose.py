"""Choosing K and editing clusters, timed on the 16.7 MP photo in one run:

    python benchmarks/bench_choose.py

Prints a markdown table: two default `quantize` runs (the yardstick the K curve is held to),
the K curve (K = 2..32), k="auto", each edit (merge, split, recolour) and one live-preview
computation, with the K that k="auto" chose on scikit-image's photographs at several targets.
"""

from __future__ import annotations

import platform
import time

import cv2
import numpy as np

from _machine import cpu_and_memory, kquant_version


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def main() -> None:
    from skimage import data

    from napari_kquant import k_curve, load_photo, merge, quantize, recolour, split
    from napari_kquant.viewer._preview import preview

    photo = cv2.resize(load_photo(), (4096, 4096), interpolation=cv2.INTER_CUBIC)
    quantize(photo[:64, :64], 4, channel_axis=-1, seed=0)  # load the compiled kernels once
    rows = []
    first, result = timed(quantize, photo, 16, channel_axis=-1, seed=1)
    second, _ = timed(quantize, photo, 16, channel_axis=-1, seed=2)
    rows.append(("two default runs, K=16 (the yardstick)", first + second, ""))
    seconds, curve = timed(k_curve, photo, channel_axis=-1, seed=0, target=3.0)
    meets = curve.meets_target or "none up to 32"
    rows.append(("K curve, K = 2..32 (one 20,000-pixel sample)", seconds,
                 f"knee K={curve.knee}; mean ΔE00 ≤ 3 from K: {meets}"))  # fmt: skip
    seconds, auto = timed(quantize, photo, "auto", channel_axis=-1, seed=0)
    rows.append(('quantize(k="auto"), target 3', seconds, f"K={auto.palette.k}"))
    seconds, _ = timed(merge, result, [1, 2])
    rows.append(("merge 2 clusters (labels, picture, counts)", seconds, ""))
    seconds, _ = timed(split, result, photo, 16, 2, channel_axis=-1, seed=0)
    rows.append(("split 1 cluster into 2", seconds, ""))
    seconds, _ = timed(recolour, result, 3, "#ff00ff")
    rows.append(("recolour 1 cluster", seconds, ""))
    params = {"k": 16, "criteria": "eps+max_iter", "max_iter": 100, "epsilon": None,
              "init": "kmeans++", "seed": 0, "sample": 50000, "color_space": "rgb"}  # fmt: skip
    seconds, _ = timed(preview, photo, True, {}, params)
    rows.append(("live preview, K=16 (the screen's worth, engine only)", seconds, ""))
    cpu, memory = cpu_and_memory()
    print(f"napari-kquant {kquant_version()}; "
          f"machine: {cpu}, {memory:.0f} GiB, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}, numpy {np.__version__}; 16.7 MP RGB photo\n")  # fmt: skip
    print("| step | seconds | result |\n| --- | --- | --- |")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.2f} | {note} |")
    print("\nK that k='auto' chooses (seed 0, K up to 256):\n")
    targets = (2.0, 3.0, 4.0, 5.0)
    print("| photo | " + " | ".join(f"target {t:g}" for t in targets) + " |")
    print("| --- |" + " --- |" * len(targets))
    for name in ("astronaut", "coffee", "chelsea", "immunohistochemistry", "rocket"):
        image = getattr(data, name)()
        chosen = []
        for target in targets:
            fitted = quantize(image, "auto", channel_axis=-1, seed=0, target=target)
            chosen.append(str(fitted.palette.k))
        print(f"| {name} | " + " | ".join(chosen) + " |")


if __name__ == "__main__":
    main()
