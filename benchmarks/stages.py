"""Where the default call's time goes, stage by stage (median of 3 runs each).

    python benchmarks/stages.py                       # astronaut 16.7 MP, K = 8 16 64 256
    python benchmarks/stages.py --image coffee --size 4 -k 64

The stages are the ones `quantize` runs with its defaults, called one by one:
drawing the sample, the k-means++ attempts on the attempt subsample, the refinement on
the whole sample (exact weighted Lloyd over its distinct colours: of every attempt at
K=13-32, else of the best), and applying the palette
to every pixel (of which the 8-bit RGB search grid is built once per palette).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from bench import SIZES, load_image
from napari_kquant import quantize
from napari_kquant.core._assign import cells
from napari_kquant.core._options import EPSILON_FRACTION, refines_each, settings
from napari_kquant.engine._apply import assigner
from napari_kquant.engine._fit import attempt_size, refinement
from napari_kquant.engine._sample import sample_array


def median_time(call, repeats=3):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="astronaut")
    p.add_argument("--size", default="16.7", choices=list(SIZES))
    p.add_argument("-k", nargs="+", type=int, default=[8, 16, 64, 256])
    args = p.parse_args()
    img = load_image(args.image, args.size)
    quantize(img[:400, :400], 8, channel_axis=-1, seed=0)  # imports and compiled kernels
    print(f"{args.image}, {img.shape[0] * img.shape[1] / 1e6:.1f} MP:")
    for k in args.k:
        opts = settings(k, seed=0)
        t_sample, drawn = median_time(lambda: sample_array(img, -1, None, None, opts))  # noqa: B023
        data = drawn.sample.astype(np.float32)
        criteria = (3, opts.max_iter, EPSILON_FRACTION * float(data.max() - data.min()))
        n = min(len(data), attempt_size(k))
        sub = data[np.sort(np.random.default_rng(0).choice(len(data), n, replace=False))]

        def attempts(count=opts.attempts):
            cv2.setRNGSeed(0)
            return [cv2.kmeans(sub, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)  # noqa: B023
                    for _ in range(count)]  # fmt: skip

        t_attempts, found = median_time(attempts)
        each = refines_each(k, opts.attempts)  # every attempt refined, else the best
        starts = np.stack([f[2] for f in found] if each else [min(found, key=lambda f: f[0])[2]])
        t_refine, _ = median_time(lambda: refinement(data, starts, criteria, 0))  # noqa: B023
        t_total, result = median_time(lambda: quantize(img, k, channel_axis=-1, seed=0))  # noqa: B023
        centers = assigner(result.palette, img.dtype).centers
        t_grid, _ = median_time(lambda: cells(centers))  # noqa: B023
        t_apply, _ = median_time(lambda: result.palette.apply(img, channel_axis=-1))  # noqa: B023
        print(
            f"  K={k}: {t_total:.3f} s in all = sample {t_sample:.3f} + attempts on {n:,} px "
            f"{t_attempts:.3f} + refinement of {len(starts)} on {len(data):,} px {t_refine:.3f} "
            f"+ apply "
            f"{t_apply:.3f} (of which the search grid {t_grid:.3f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
