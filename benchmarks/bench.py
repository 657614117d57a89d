"""Speed and quality of napari-kquant beside the alternatives a user would pick.

    pip install -e ".[bench]"        # scikit-learn(-intelex), faiss-cpu, imagequant, Pillow
    python benchmarks/bench.py --docs  # the docs' speed table (about 40 min on 2 cores)
    python benchmarks/bench.py --quick                # 4 MP, K=16, no minute-long methods

ImageMagick's rows need ImageMagick 7 (``magick`` on PATH or ``$KQUANT_MAGICK``): Debian 12's
ImageMagick 6 has no -kmeans. It is given every core (MAGICK_THREAD_LIMIT; by default it
leaves one free).

Every measurement runs in a fresh subprocess, so peak memory is that method's own and no
method inherits another's warm caches. Each method is warmed up on a 256 x 256 crop first
(imports, JIT), then timed on the full image: the median of --repeats runs, each with its own
seed (one run for methods that take over 10 s). A method is left out of a row when its time at
the previous K of that image, scaled by the ratio of the Ks, passes --max-seconds. Peak memory
is the resident-set high-water mark above what the process held before the timed call (Linux:
/proc/self/clear_refs). MSE is the mean over every pixel of the squared RGB distance between
the output and the input (float outputs rounded to 8 bits, as a saved picture holds them),
averaged over the timed runs.

The reference is scikit-learn's KMeans on every pixel (one k-means++ start, to convergence).
Where that would take too long (K=256), the proxy reference stands in: the same fit on a
1,000,000-pixel sample, every pixel then assigned its nearest centre. It runs at every K, so
its ratio to the full fit shows how close a stand-in it is.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from _machine import cpu_and_memory, kquant_version

IMAGES = ("astronaut", "coffee", "chelsea")
SIZES = {"4": 4_000_000, "16.7": 4096 * 4096}
#: The README's table: the 16.7 MP photo and two 4 MP photos.
DEFAULT_SETS = (("astronaut", "16.7"), ("coffee", "4"), ("chelsea", "4"))
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


def _sample(img, n, seed):
    data = img.reshape(-1, 3).astype(np.float32)
    rng = np.random.default_rng(seed)
    return data, data[np.sort(rng.choice(len(data), min(n, len(data)), replace=False))]


def sklearnex_50k(img, k, seed):
    """scikit-learn-intelex (oneDAL) KMeans on 50,000 pixels, n_init=3, then predict."""
    from sklearnex.cluster import KMeans

    data, sample = _sample(img, 50_000, seed)
    kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(sample)
    return kmeans.cluster_centers_[kmeans.predict(data)].reshape(img.shape)


def faiss_50k(img, k, seed):
    """faiss-cpu Kmeans with its defaults on 50,000 pixels, then a flat index search."""
    import faiss

    data, sample = _sample(img, 50_000, seed)
    kmeans = faiss.Kmeans(3, k, seed=seed)
    kmeans.train(sample)
    _, labels = kmeans.index.search(data, 1)
    return kmeans.centroids[labels.ravel()].reshape(img.shape)


def _imagequant(img, k, level):
    import imagequant
    from PIL import Image

    pil = Image.fromarray(img)
    return np.asarray(
        imagequant.quantize_pil_image(pil, dithering_level=level, max_colors=k).convert("RGB")
    )


def imagequant_plain(img, k, seed):
    """libimagequant (pngquant's library), no dithering."""
    return _imagequant(img, k, 0.0)


def imagequant_dithered(img, k, seed):
    """libimagequant with its default dithering (1.0): MSE is not its aim."""
    return _imagequant(img, k, 1.0)


def magick_binary():
    """ImageMagick 7's ``magick`` (``$KQUANT_MAGICK`` or on PATH) if it has -kmeans, else None."""
    import shutil

    path = os.environ.get("KQUANT_MAGICK") or shutil.which("magick")
    if not path:
        return None
    probe = [path, "-size", "4x4", "xc:red", "-kmeans", "2", "null:"]
    works = subprocess.run(probe, capture_output=True, check=False).returncode == 0
    return path if works else None


def imagemagick_kmeans(img, k, seed):
    """ImageMagick's ``-kmeans K`` (its defaults), raw RGB in and out through files."""
    h, w = img.shape[:2]
    env = {**os.environ, "MAGICK_THREAD_LIMIT": str(os.cpu_count())}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.rgb"), os.path.join(tmp, "out.rgb")
        img.tofile(src)
        subprocess.run(
            [magick_binary(), "-size", f"{w}x{h}", "-depth", "8", f"rgb:{src}", "-kmeans",
             str(k), "-depth", "8", f"rgb:{dst}"],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        return np.fromfile(dst, np.uint8).reshape(img.shape)


def sklearn_proxy(img, k, seed):
    """The reference where a full fit is too slow: the same KMeans (one k-means++ start, to
    convergence) on 1,000,000 pixels, every pixel then assigned its nearest centre. oneDAL
    (scikit-learn-intelex) runs it: scikit-learn's own code, 5-10x faster."""
    from sklearnex.cluster import KMeans

    data, sample = _sample(img, 1_000_000, seed)
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(sample)
    return kmeans.cluster_centers_[kmeans.predict(data)].reshape(img.shape)


METHODS = {
    "napari-kquant, defaults": kquant_default,
    "napari-kquant, exact (tutorial settings)": kquant_exact_tutorial,
    "cv2.kmeans tutorial recipe (every pixel)": cv2_tutorial,
    "scikit-learn recipe, 1,000-px sample": sklearn_1k,
    "scikit-learn recipe, 100,000-px sample": sklearn_100k,
    "scikit-learn KMeans, every pixel (reference)": sklearn_full,
    "Pillow quantize, median cut": pillow_mediancut,
    "Pillow quantize, median cut + kmeans=10": pillow_mediancut_kmeans,
    "scikit-learn-intelex KMeans, 50,000-px sample, n_init=3": sklearnex_50k,
    "faiss-cpu Kmeans, 50,000-px sample": faiss_50k,
    "libimagequant, no dithering": imagequant_plain,
    "libimagequant, default dithering": imagequant_dithered,
    "ImageMagick -kmeans": imagemagick_kmeans,
    "proxy reference: the same KMeans on 1 M px": sklearn_proxy,
}
SLOW = {
    "napari-kquant, exact (tutorial settings)",
    "cv2.kmeans tutorial recipe (every pixel)",
    "scikit-learn KMeans, every pixel (reference)",
    "Pillow quantize, median cut + kmeans=10",
}
REFERENCE = "scikit-learn KMeans, every pixel (reference)"
PROXY = "proxy reference: the same KMeans on 1 M px"
OURS = "napari-kquant, defaults"
#: Our rows, which the lead and the verdict leave out.
OWN = {OURS, "napari-kquant, exact (tutorial settings)"}


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
        part = out[s : s + 256]
        if part.dtype.kind == "f":  # centres as a saved 8-bit picture holds them
            part = np.clip(np.rint(part), 0, 255)
        d = part.astype(np.float64) - img[s : s + 256]
        total += float((d * d).sum())
    return total / (img.shape[0] * img.shape[1])


def measure(method, name, size, k, repeats, slow_repeats=1):
    img = load_image(name, size)
    fn = METHODS[method]
    # imports and JIT, outside the timing: a crop large enough for every stage a method
    # runs on the whole photo (ours: a sample beyond the attempts' subsample, refined)
    fn(np.ascontiguousarray(img[:256, :256]), k, 0)
    times, errors, peak = [], [], 0
    for r in range(repeats):
        out = None  # free the previous output first
        base = _status("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        out = fn(img, k, r)
        times.append(time.perf_counter() - start)
        if r == 0:
            peak = _status("VmHWM") - base
        errors.append(mse(img, out))
        if times[0] > SLOW_SECONDS and len(times) >= slow_repeats:
            break
    return {
        "time": float(np.median(times)),
        "runs": len(times),
        "peak": peak,
        "input": img.nbytes,
        "mse": float(np.mean(errors)),
        "pixels": img.shape[0] * img.shape[1],
    }


def first_call(name, size, k):
    """A fresh process: import napari_kquant and run one default call."""
    img = load_image(name, size)
    start = time.perf_counter()
    from napari_kquant import quantize

    quantize(img, k, channel_axis=-1, seed=0)
    return {"time": time.perf_counter() - start}


#: The options whose first use compiles kernels of their own (issue 20: at most 2 s each).
FIRST_USES = {
    "dither=True": {"dither": True},
    "dither='floyd-steinberg'": {"dither": "floyd-steinberg"},
    "min_size=20": {"min_size": 20},
    "smooth=1": {"smooth": 1},
}


def first_use(name, size, k, option):
    """A fresh process: a default call on a 512 x 512 crop, then the first with ``option``;
    returns that call's time above a second default call's (with an empty numba cache:
    about the option's one-time compile)."""
    from napari_kquant import quantize

    img = np.ascontiguousarray(load_image(name, size)[:512, :512])
    quantize(img, k, channel_axis=-1, seed=0)
    start = time.perf_counter()
    quantize(img, k, channel_axis=-1, seed=0)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    quantize(img, k, channel_axis=-1, seed=0, **FIRST_USES[option])
    return {"time": time.perf_counter() - start - plain}


def throughput(mode, k):
    """Megapixels per second on a 1 GB photo (astronaut, 18,257 px square): ``mode`` "eager"
    (a numpy array), "store" (a dask array; the lazy results written by ``da.store`` into
    arrays in memory, as kquant writes a zarr and napari draws tiles) or "compute" (the
    same, gathered by ``dask.compute``, which concatenates the chunks' results afresh)."""
    import dask
    import dask.array as da

    from napari_kquant import quantize

    if mode not in ("eager", "store", "compute"):
        raise ValueError(f"mode must be 'eager', 'store' or 'compute', got {mode!r}")
    img = cv2.resize(load_image("astronaut", "4"), (18_257, 18_257))
    quantize(img[:64, :64], k, channel_axis=-1, seed=0)  # JIT outside the timing
    # the dask array is made before the timing, as a layer's or a zarr store's already is
    # (dask's from_array hashes the whole numpy array for its name)
    chunked = da.from_array(img, chunks=(4096, 4096, 3)) if mode != "eager" else None
    start = time.perf_counter()
    if mode == "eager":
        quantize(img, k, channel_axis=-1, seed=0)
    else:
        result = quantize(chunked, k, channel_axis=-1, seed=0)
        if mode == "compute":
            dask.compute(result.quantized, result.labels)
        else:
            outputs = [np.empty(a.shape, a.dtype) for a in (result.quantized, result.labels)]
            da.store([result.quantized, result.labels], outputs, lock=False)
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
        f"napari-kquant {kquant_version()}, "
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, numpy {np.__version__}, thread pools: {sorted(pools)}"
    )


def verdict(name, size, k, rows, ours, ref, ref_name):
    """One line: our error against the reference, and our lead over every close peer."""
    close = {
        m: r["time"] / ours["time"]
        for m, r in rows.items()
        if m not in OWN | {REFERENCE, PROXY} and r["mse"] <= 1.02 * ref
    }
    slowest = min(close.values(), default=None)
    peers = ", ".join(f"{m} {lead:.1f}x" for m, lead in sorted(close.items(), key=lambda x: x[1]))
    which = "reference" if ref_name == REFERENCE else "proxy reference"
    return (
        f"{name} {SIZES[size] / 1e6:.1f} MP, K={k}: our MSE {ours['mse'] / ref:.3f}x the {which} "
        f"({'within' if ours['mse'] <= 1.01 * ref else 'NOT within'} 1%); "
        + (f"close peers, ours faster by: {peers}" if close else "no peer within 2%")
        + ("" if slowest is None else f" ({'met' if slowest >= 1.5 else 'NOT met'}: 1.5x)")
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", nargs="+", choices=IMAGES, help="default: the README's three")
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), help="megapixels (with --images)")
    p.add_argument("--k", nargs="+", type=int, default=[8, 16, 64, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--slow-repeats", type=int, default=1, help=f"runs of methods over {SLOW_SECONDS:.0f} s"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=150.0,
        help="leave a method out where it would take longer (from the previous K)",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--skip-slow", action="store_true", help="leave out minute-long methods")
    p.add_argument("--quick", action="store_true", help="4 MP, K=16, no slow methods")
    p.add_argument("--no-lazy", action="store_true", help="leave out the 1 GB eager/lazy rows")
    p.add_argument(
        "--docs",
        action="store_true",
        help="also write the table to docs/benchmarks/speed.md (the benchmarks page)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    lines = []

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    if args.child:
        job = json.loads(args.child)
        if job[0] == "first":
            result = first_call(*job[1:])
        elif job[0] == "first_use":
            result = first_use(*job[1:])
        elif job[0] == "throughput":
            result = throughput(*job[1:])
        else:
            result = measure(*job)
        print(json.dumps(result))
        return
    if args.quick:
        args.images, args.sizes, args.k = args.images or ["coffee"], ["4"], [16]
        args.skip_slow = True
    sets = list(DEFAULT_SETS)
    if args.images:
        sets = [(name, size) for name in args.images for size in args.sizes or ["4"]]
    methods = [m for m in args.methods if not (args.skip_slow and m in SLOW)]
    if "ImageMagick -kmeans" in methods and magick_binary() is None:
        methods.remove("ImageMagick -kmeans")
        emit("(ImageMagick 7 with -kmeans not found: its rows are left out)\n")

    emit(f"Machine: {machine()}\n")
    emit(
        "| image | K | method | time (s) | ours faster by | peak above input | MSE "
        "| vs reference |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- | --- |")
    verdicts = []
    for name, size in sets:
        last = {}  # method -> (K, seconds) at the previous K
        for k in args.k:
            rows, skipped = {}, []
            for m in methods:
                if m in last and last[m][1] * k / last[m][0] > args.max_seconds:
                    skipped.append(m)
                    continue
                rows[m] = run_child([m, name, size, k, args.repeats, args.slow_repeats])
                last[m] = (k, rows[m]["time"])
            ref_name = REFERENCE if REFERENCE in rows else PROXY
            ref = rows.get(ref_name, {}).get("mse")
            ours = rows.get(OURS)
            for m, r in rows.items():
                mp = r["pixels"] / 1e6
                lead = f"{r['time'] / ours['time']:.1f}x" if ours and m not in OWN else ""
                quality = f"{r['mse'] / ref:.3f}x" if ref else ""
                n = r["runs"]
                runs = "" if n == args.repeats else f" ({n} run{'s' * (n > 1)})"
                peak = f"{r['peak'] / 2**20:.0f} MB ({r['peak'] / r['input']:.1f}x)"
                emit(
                    f"| {name} {mp:.1f} MP | {k} | {m} | {r['time']:.3f}{runs} | {lead} "
                    f"| {peak} | {r['mse']:.1f} | {quality} |"
                )
            if skipped:
                emit(f"| {name} | {k} | not run (over {args.max_seconds:.0f} s): "
                     f"{'; '.join(skipped)} | | | | | |")  # fmt: skip
            if ours and ref:
                verdicts.append(verdict(name, size, k, rows, ours, ref, ref_name))
    if verdicts:
        emit("\nAgainst the targets (peers: rows within 2% of the reference's MSE, other than "
             "ours and the references):\n")  # fmt: skip
        for line in verdicts:
            emit(f"- {line}")

    if OURS in methods:
        (name, size), k = sets[0], 16 if 16 in args.k else args.k[0]
        warm = run_child(["first", name, size, k])
        with tempfile.TemporaryDirectory() as cache:
            cold = run_child(
                ["first", name, size, k], env={**os.environ, "NUMBA_CACHE_DIR": cache}
            )
        emit(
            f"\nFirst call in a fresh process ({name}, {SIZES[size] / 1e6:.1f} MP, K={k}; "
            f"import included): {warm['time']:.2f} s with numba's on-disk cache, "
            f"{cold['time']:.2f} s with an empty cache (the one-time compile after install)."
        )
        emit(
            f"\n| first use of an option ({name}, 512 x 512 crop, K={k}; one default call "
            "before it, its time taken off) | with an empty "
            "numba cache (s) | with the cache (s) | target 2 s |"
        )
        emit("| --- | --- | --- | --- |")
        for option in FIRST_USES:
            job = ["first_use", name, size, k, option]
            warm_use = run_child(job)["time"]
            with tempfile.TemporaryDirectory() as cache:
                cold_use = run_child(job, env={**os.environ, "NUMBA_CACHE_DIR": cache})["time"]
            met = "met" if cold_use <= 2 else "missed"
            emit(f"| {option} | {cold_use:.2f} | {warm_use:.2f} | {met} |")
    if not args.no_lazy and not args.quick:
        emit("\n| 1 GB photo, K=16, napari-kquant defaults | time (s) | megapixels/s |")
        emit("| --- | --- | --- |")
        hows = {
            "eager": "eager: numpy array in memory",
            "store": "lazy: dask array in 4096-px chunks, quantized + labels stored in arrays "
            "(`da.store`)",
            "compute": "lazy, the same gathered by `dask.compute` (its concatenation of the "
            "chunks included)",
        }
        for mode, how in hows.items():
            r = run_child(["throughput", mode, 16])
            emit(f"| {how} ({r['gb']:.2f} GB) | {r['time']:.2f} | {r['mp'] / r['time']:.0f} |")

    if args.docs:
        write_docs("\n".join(lines))


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks")


def write_docs(text):
    """The table as docs/benchmarks/speed.md, which the benchmarks page includes."""
    with open(os.path.join(DOCS, "speed.md"), "w", encoding="utf-8") as f:
        f.write("<!-- written by: python benchmarks/bench.py --docs -->\n")
        # the text starts with its machine line
        f.write(f"Run of {datetime.date.today()}. {text.strip()}\n")


if __name__ == "__main__":
    main()
