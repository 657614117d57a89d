"""Speed and quality of napari-kquant beside the alternatives a user would pick.

    pip install -e ".[bench]"
    python benchmarks/bench.py                        # the README's table (about 30 min)
    python benchmarks/bench.py --quick                # 4 MP, K=16, no minute-long methods

Every measurement runs in a fresh subprocess, so peak memory is that method's own and no
method inherits another's warm caches. Each method is warmed up on a 64 x 64 crop first
(imports, JIT), then timed on the full image: the median of --repeats runs (one run for
methods that take over 10 s). Peak memory is the resident-set high-water mark above what the
process held before the timed call (Linux: /proc/self/clear_refs). MSE is the mean over every
pixel of the squared RGB distance between the output of the last timed run and the input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from _machine import cpu_and_memory

IMAGES = ("astronaut", "coffee", "chelsea")
SIZES = {"4": 4_000_000, "16.7": 4096 * 4096}
SLOW_SECONDS = 10.0


# --- the methods ---------------------------------------------------------------------------


def kquant_default(img, k, seed):
    from napari_kquant import quantize

    return quantize(img, k, channel_axis=-1, seed=seed).quantized


def kquant_exact_tutorial(img, k, seed):
    """Exact mode with the tutorial's settings: the same cv2.kmeans call as below."""
    from napari_kquant import quantize

    return quantize(
        img, k, channel_axis=-1, sample=None, criteria="eps+max_iter", max_iter=10,
        epsilon=1.0, attempts=10, init="random", seed=seed,
    ).quantized  # fmt: skip


def cv2_tutorial(img, k, seed):
    """OpenCV's colour-quantization tutorial, as written."""
    data = img.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(seed)
    _, labels, centers = cv2.kmeans(data, k, None, criteria, 10, cv2.KMEANS_RANDOM_CENTERS)
    return np.uint8(centers)[labels.flatten()].reshape(img.shape)


def _sklearn_recipe(img, k, seed, n_samples):
    """scikit-learn's "Color Quantization using K-Means" example, as written."""
    from sklearn.cluster import KMeans
    from sklearn.utils import shuffle

    image = np.array(img, dtype=np.float64) / 255
    w, h, d = image.shape
    image_array = np.reshape(image, (w * h, d))
    sample = shuffle(image_array, random_state=seed, n_samples=min(n_samples, w * h))
    kmeans = KMeans(n_clusters=k, random_state=seed).fit(sample)
    labels = kmeans.predict(image_array)
    return (kmeans.cluster_centers_[labels].reshape(w, h, -1)) * 255


def sklearn_1k(img, k, seed):
    return _sklearn_recipe(img, k, seed, 1_000)


def sklearn_100k(img, k, seed):
    return _sklearn_recipe(img, k, seed, 100_000)


def sklearn_full(img, k, seed):
    """The quality reference: KMeans on every pixel, one k-means++ start, to convergence."""
    from sklearn.cluster import KMeans

    data = img.reshape(-1, 3).astype(np.float32)
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(data)
    return kmeans.cluster_centers_[kmeans.labels_].reshape(img.shape)


def pillow_mediancut(img, k, seed):
    from PIL import Image

    return np.asarray(
        Image.fromarray(img).quantize(colors=k, method=Image.Quantize.MEDIANCUT).convert("RGB")
    )


def pillow_mediancut_kmeans(img, k, seed):
    from PIL import Image

    quantized = Image.fromarray(img).quantize(colors=k, method=Image.Quantize.MEDIANCUT, kmeans=10)
    return np.asarray(quantized.convert("RGB"))


METHODS = {
    "napari-kquant, defaults": kquant_default,
    "napari-kquant, exact (tutorial settings)": kquant_exact_tutorial,
    "cv2.kmeans tutorial recipe (every pixel)": cv2_tutorial,
    "scikit-learn recipe, 1,000-px sample": sklearn_1k,
    "scikit-learn recipe, 100,000-px sample": sklearn_100k,
    "scikit-learn KMeans, every pixel (reference)": sklearn_full,
    "Pillow quantize, median cut": pillow_mediancut,
    "Pillow quantize, median cut + kmeans=10": pillow_mediancut_kmeans,
}
SLOW = {
    "napari-kquant, exact (tutorial settings)",
    "cv2.kmeans tutorial recipe (every pixel)",
    "scikit-learn KMeans, every pixel (reference)",
    "Pillow quantize, median cut + kmeans=10",
}
REFERENCE = "scikit-learn KMeans, every pixel (reference)"
BASELINE = "scikit-learn recipe, 1,000-px sample"


# --- measuring, in a child process --------------------------------------------------------


def load_image(name, size):
    from skimage import data

    image = getattr(data, name)()[..., :3]
    h, w = image.shape[:2]
    scale = (SIZES[size] / (h * w)) ** 0.5
    if name == "astronaut" and size == "16.7":
        shape = (4096, 4096)
    else:
        shape = (round(w * scale), round(h * scale))
    return np.ascontiguousarray(cv2.resize(image, shape, interpolation=cv2.INTER_CUBIC))


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def mse(img, out):
    total = 0.0
    for s in range(0, img.shape[0], 256):
        d = out[s : s + 256].astype(np.float64) - img[s : s + 256]
        total += float((d * d).sum())
    return total / (img.shape[0] * img.shape[1])


def measure(method, name, size, k, repeats, slow_repeats=1):
    img = load_image(name, size)
    fn = METHODS[method]
    fn(np.ascontiguousarray(img[:64, :64]), k, 0)  # imports and JIT, outside the timing
    times, peak = [], 0
    for r in range(repeats):
        out = None  # free the previous output first
        base = _status("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        out = fn(img, k, r)
        times.append(time.perf_counter() - start)
        if r == 0:
            peak = _status("VmHWM") - base
        if times[0] > SLOW_SECONDS and len(times) >= slow_repeats:
            break
    return {
        "time": float(np.median(times)),
        "runs": len(times),
        "peak": peak,
        "input": img.nbytes,
        "mse": mse(img, out),
        "pixels": img.shape[0] * img.shape[1],
    }


def first_call(name, size, k):
    """A fresh process: import napari_kquant and run one default call."""
    img = load_image(name, size)
    start = time.perf_counter()
    from napari_kquant import quantize

    quantize(img, k, channel_axis=-1, seed=0)
    return {"time": time.perf_counter() - start}


def throughput(lazy, k):
    """Megapixels per second on a 1 GB photo (astronaut, 18,257 px square), eager or lazy."""
    import dask
    import dask.array as da

    from napari_kquant import quantize

    img = cv2.resize(load_image("astronaut", "4"), (18_257, 18_257))
    quantize(img[:64, :64], k, channel_axis=-1, seed=0)  # JIT outside the timing
    start = time.perf_counter()
    if lazy:
        result = quantize(da.from_array(img, chunks=(4096, 4096, 3)), k, channel_axis=-1, seed=0)
        dask.compute(result.quantized, result.labels)
    else:
        quantize(img, k, channel_axis=-1, seed=0)
    seconds = time.perf_counter() - start
    return {"time": seconds, "mp": img.shape[0] * img.shape[1] / 1e6, "gb": img.nbytes / 1e9}


def run_child(args, env=None):
    cmd = [sys.executable, __file__, "--child", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the table -----------------------------------------------------------------------------


def machine():
    import sklearn.cluster  # noqa: F401  (loads the thread pools it uses)
    import threadpoolctl

    pools = {p["internal_api"] for p in threadpoolctl.threadpool_info()}
    cpu, mem = cpu_and_memory()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, numpy {np.__version__}, thread pools: {sorted(pools)}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", nargs="+", default=["astronaut"], choices=IMAGES)
    p.add_argument("--sizes", nargs="+", default=["16.7"], choices=list(SIZES))
    p.add_argument("--k", nargs="+", type=int, default=[8, 16, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--slow-repeats", type=int, default=1, help=f"runs of methods over {SLOW_SECONDS:.0f} s"
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--skip-slow", action="store_true", help="leave out minute-long methods")
    p.add_argument("--quick", action="store_true", help="4 MP, K=16, no slow methods")
    p.add_argument("--no-lazy", action="store_true", help="leave out the 1 GB eager/lazy rows")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        job = json.loads(args.child)
        if job[0] == "first":
            result = first_call(*job[1:])
        elif job[0] == "throughput":
            result = throughput(*job[1:])
        else:
            result = measure(*job)
        print(json.dumps(result))
        return
    if args.quick:
        args.sizes, args.k, args.skip_slow = ["4"], [16], True
    methods = [m for m in args.methods if not (args.skip_slow and m in SLOW)]

    print(f"Machine: {machine()}\n")
    print(
        "| image | K | method | time (s) | vs sklearn 1k | peak above input | MSE | vs reference |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.images:
        for size in args.sizes:
            for k in args.k:
                rows = {
                    m: run_child([m, name, size, k, args.repeats, args.slow_repeats])
                    for m in methods
                }
                ref = rows.get(REFERENCE, {}).get("mse")
                base = rows.get(BASELINE, {}).get("time")
                for m, r in rows.items():
                    mp = r["pixels"] / 1e6
                    speed = f"{r['time'] / base:.2f}x" if base else ""
                    quality = f"{r['mse'] / ref:.3f}x" if ref else ""
                    n = r["runs"]
                    runs = "" if n == args.repeats else f" ({n} run{'s' * (n > 1)})"
                    peak = f"{r['peak'] / 2**20:.0f} MB ({r['peak'] / r['input']:.1f}x)"
                    print(
                        f"| {name} {mp:.1f} MP | {k} | {m} | {r['time']:.3f}{runs} | {speed} "
                        f"| {peak} | {r['mse']:.1f} | {quality} |",
                        flush=True,
                    )

    if "napari-kquant, defaults" in methods:
        name, size, k = args.images[0], args.sizes[-1], 16 if 16 in args.k else args.k[0]
        warm = run_child(["first", name, size, k])
        with tempfile.TemporaryDirectory() as cache:
            cold = run_child(
                ["first", name, size, k], env={**os.environ, "NUMBA_CACHE_DIR": cache}
            )
        print(
            f"\nFirst call in a fresh process ({name}, {SIZES[size] / 1e6:.1f} MP, K={k}; "
            f"import included): {warm['time']:.2f} s with numba's on-disk cache, "
            f"{cold['time']:.2f} s with an empty cache (the one-time compile after install)."
        )
    if not args.no_lazy and not args.quick:
        print("\n| 1 GB photo, K=16, napari-kquant defaults | time (s) | megapixels/s |")
        print("| --- | --- | --- |")
        for lazy in (False, True):
            r = run_child(["throughput", lazy, 16])
            how = (
                "lazy: dask array in 4096-px chunks, quantized + labels computed"
                if lazy
                else "eager: numpy array in memory"
            )
            print(f"| {how} ({r['gb']:.2f} GB) | {r['time']:.2f} | {r['mp'] / r['time']:.0f} |")


if __name__ == "__main__":
    main()
