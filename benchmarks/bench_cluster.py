"""The labels pass of a chunked image on a dask.distributed cluster, beside the threaded one.

    pip install -e ".[testing]"                     # distributed
    python benchmarks/bench_cluster.py              # 8192 x 8192 RGB, 512 x 512 chunks, K=16
    python benchmarks/bench_cluster.py --side 100000 --chunk 1024 --where cluster   # 30 GB

The image (photo tiles with noise, not a constant) is written as a zarr array first. One
palette is fitted, then applied lazily and its labels written to a new zarr array, timed:
with dask's threaded scheduler, and on a `distributed.LocalCluster` of 2 worker processes
(1 thread each). The plain dask baseline beside them: every chunk's nearest centre by numpy
(squared distances to all K centres as |c|^2 - 2 x.c in float32, argmin), written the same
way. Each pass writes
its own store; labels are checked equal between our two passes. Peak memory per worker is
the largest resident set a worker reported.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from _machine import cpu_and_memory, kquant_version


def make_image(path, side, chunk):
    import dask.array as da
    from skimage import data

    tile = data.astronaut()

    def block(block_info=None):
        (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
        ys, xs = np.arange(y0, y1) % 512, np.arange(x0, x1) % 512
        part = tile[ys][:, xs].astype(np.int16)
        rng = np.random.default_rng((y0, x0))  # each block its own: threads draw at once
        noise = rng.integers(-8, 9, part.shape, dtype=np.int16)
        return np.clip(part + noise, 0, 255).astype(np.uint8)

    image = da.map_blocks(block, dtype=np.uint8, chunks=((chunk,) * (side // chunk),
                          (chunk,) * (side // chunk), (3,)))  # fmt: skip
    image.to_zarr(path, overwrite=True)


def plain_labels(image, centers):
    c = np.asarray(centers, np.float32)
    norms = (c * c).sum(1)

    def nearest(block):
        pix = block.reshape(-1, 3).astype(np.float32)
        d = norms[None] - 2 * (pix @ c.T)
        return (d.argmin(1) + 1).astype(np.uint8).reshape(block.shape[:2])

    return image.map_blocks(nearest, drop_axis=2, dtype=np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--folder", help="where the image and outputs go (default: /tmp)")
    parser.add_argument("--where", nargs="+", default=["threads", "cluster"],
                        choices=["threads", "cluster"])  # fmt: skip
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    from napari_kquant import fit

    cpu, memory = cpu_and_memory()
    cores = len(os.sched_getaffinity(0))
    print(f"# {datetime.date.today()} · napari-kquant {kquant_version()} · "
          f"{cpu} · {cores} cores · {memory:.0f} GiB · "
          f"Python {sys.version.split()[0]} · dask {dask.__version__}")  # fmt: skip
    folder = tempfile.mkdtemp(prefix="kquant-bench-", dir=args.folder)
    try:
        source = os.path.join(folder, "image.zarr")
        start = time.perf_counter()
        make_image(source, args.side, args.chunk)
        made = time.perf_counter() - start
        image = da.from_zarr(source)
        mp = args.side * args.side / 1e6
        palette = fit(image, args.k, channel_axis=-1, seed=0)
        print(f"# {args.side} x {args.side} RGB ({mp:.0f} MP, {image.nbytes / 1e9:.1f} GB), "
              f"{args.chunk} x {args.chunk} chunks ({image.numblocks[0] * image.numblocks[1]}), "
              f"K={args.k}")  # fmt: skip
        print("| pass | scheduler | time | MP/s | peak per worker |")
        print("| --- | --- | --- | --- | --- |")

        def ours():
            return palette.apply(da.from_zarr(source), channel_axis=-1).labels

        def plain():
            return plain_labels(da.from_zarr(source), palette.centers)

        rows = {}
        for name, labels in (("napari-kquant", ours), ("plain dask + numpy", plain)):
            for where in args.where:
                out = os.path.join(folder, f"{name[:5]}-{where}.zarr")
                if where == "threads":
                    start = time.perf_counter()
                    labels().to_zarr(out, overwrite=True)
                    seconds, peak = time.perf_counter() - start, None
                else:
                    with (
                        distributed.LocalCluster(
                            n_workers=2,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=None,
                            memory_limit="4GiB",
                        ) as cluster,  # fmt: skip
                        distributed.Client(cluster) as client,
                    ):
                        client.run(lambda: None)  # workers up before the clock starts
                        start = time.perf_counter()
                        labels().to_zarr(out, overwrite=True)
                        seconds = time.perf_counter() - start
                        peaks = client.run(_peak_rss)
                        peak = max(peaks.values())
                rows[(name, where)] = out
                shown = "-" if peak is None else f"{peak / 2**30:.2f} GiB"
                print(f"| {name} | {where} | {seconds:.2f} s | {mp / seconds:.1f} | {shown} |",
                      flush=True)  # fmt: skip
        if len(args.where) == 2:
            a = da.from_zarr(rows[("napari-kquant", "threads")])
            b = da.from_zarr(rows[("napari-kquant", "cluster")])
            print(f"# our labels identical on both schedulers: {bool((a == b).all().compute())}")
        print(f"# generating and writing the image took {made:.0f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
