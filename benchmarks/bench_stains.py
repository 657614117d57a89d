"""Do K-means clusters follow the stains? "rgb", "lab" and "od" scored against rgb2hed's masks.

    pip install -e ".[bench]"
    python benchmarks/bench_stains.py                     # K = 3, 4, 6, 8, seeds 0..2 (~10 s)
    python benchmarks/bench_stains.py -k 2 3 4 5 6 8 10 --seeds 0 1 2 3 4
    python benchmarks/bench_stains.py --png /tmp/stains   # the masks and cluster maps, to look at

The image is scikit-image's immunohistochemistry sample (`skimage.data.immunohistochemistry`,
512 x 512, haematoxylin-stained nuclei, DAB-stained tumour cell membranes and cytoplasm, pale
stroma and glass). It is clustered with `quantize(img, K, color_space=...)` for each colour
space ("od" twice: white at uint8's 255, and white="auto") at the same K and seeds.

Reference: `skimage.color.rgb2hed` (Ruifrok & Johnston colour deconvolution) gives each pixel a
haematoxylin and a DAB concentration. Each stain's mask is where its concentration is above
that channel's own Otsu threshold (each stain thresholded in its own units, so the two
channels' different scales do not matter). The masks may overlap: a nucleus inside a DAB-
positive tumour cell carries both stains, and is scored as positive for both.

Mapping: for each stain, a cluster is called positive when most of its pixels are in that
stain's mask (majority vote; the call that gets the most pixels right for that stain, and what
naming a colour cluster "brown" or "blue" amounts to). The stain's predicted mask is the union
of its positive clusters.

Measure: Matthews correlation (MCC) between predicted and reference mask, per stain, averaged
over haematoxylin and DAB. MCC uses all four cells of the confusion table, is 0 for calling
everything (or nothing, or a random share) positive and 1 for a perfect mask, so the 32% of
haematoxylin and 45% of DAB pixels are scored on the same footing; the mean weighs both stains
alike. Every colour space gets the same image, K, seeds, reference and mapping.

Checks printed beside it:
- best MCC: the same, but with the union of clusters chosen to maximise MCC (all 2^K subsets;
  an oracle mapping: how good a stain mask the clusters could give at best);
- eta^2: the share of each stain's concentration variance explained by its cluster's mean
  concentration (no threshold, no mapping). rgb2hed is linear in optical density, so "od"
  K-means, which minimises the spread of optical densities within clusters, is favoured here;
- the headline again with other thresholds: a fixed share (0.25, 0.5) of each stain's 99th
  percentile concentration instead of Otsu.

Numbers are the mean over seeds, with ± half their range (max - min) when that range is
0.005 or more.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

SPACES = (("rgb", None), ("lab", None), ("od", None), ("od", "auto"))
STAINS = ("H", "DAB")
HEADLINE = "otsu"
OTHER_THRESHOLDS = (0.25, 0.5)  # shares of each stain's 99th percentile


def space_name(space, white) -> str:
    return space if white is None else f"{space} white={white}"


def reference(image):
    """Per-stain concentrations (rgb2hed's H and DAB, flattened) and their masks per threshold."""
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu

    hed = rgb2hed(image)
    conc = {"H": hed[..., 0].ravel(), "DAB": hed[..., 2].ravel()}
    masks = {HEADLINE: {s: c > threshold_otsu(c) for s, c in conc.items()}}
    for share in OTHER_THRESHOLDS:
        masks[f"{share:g} p99"] = {s: c > share * np.percentile(c, 99) for s, c in conc.items()}
    return conc, masks


def mcc(tp, fp, fn, tn):
    """Matthews correlation; arrays broadcast; 0 where a row or column of the table is empty."""
    tp, fp, fn, tn = (np.asarray(x, np.float64) for x in (tp, fp, fn, tn))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (tp * tn - fp * fn) / denominator
    return np.where(denominator > 0, value, 0.0)


def stain_scores(labels, k, mask):
    """(majority-vote MCC, best-subset MCC) of one stain mask by unions of clusters."""
    size = np.bincount(labels, minlength=k + 1)[1:].astype(np.float64)
    positive = np.bincount(labels, weights=mask, minlength=k + 1)[1:]
    n, p = float(labels.size), float(mask.sum())

    def score(chosen):  # chosen: (..., k) bool
        tp = (chosen * positive).sum(-1)
        fp = (chosen * (size - positive)).sum(-1)
        fn, tn = p - tp, n - p - fp
        return mcc(tp, fp, fn, tn)

    majority = score(positive > size / 2)
    subsets = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
    return float(majority), float(score(subsets).max())


def eta_squared(labels, k, concentration):
    """Share of the concentration's variance explained by the cluster means."""
    size = np.bincount(labels, minlength=k + 1)[1:]
    sums = np.bincount(labels, weights=concentration, minlength=k + 1)[1:]
    means = sums / np.maximum(size, 1)
    within = ((concentration - means[labels - 1]) ** 2).sum()
    return 1.0 - within / ((concentration - concentration.mean()) ** 2).sum()


def score_run(labels, k, conc, masks) -> dict:
    row = {}
    for threshold, stain_masks in masks.items():
        for stain, mask in stain_masks.items():
            majority, best = stain_scores(labels, k, mask)
            row[("mcc", threshold, stain)] = majority
            row[("best", threshold, stain)] = best
    for stain, c in conc.items():
        row[("eta2", stain)] = eta_squared(labels, k, c)
    return row


def mean_mcc(row, kind="mcc", threshold=HEADLINE):
    return np.mean([row[(kind, threshold, s)] for s in STAINS])


def cell(values) -> str:
    values = np.asarray(values)
    spread = values.max() - values.min()
    text = f"{values.mean():.3f}"
    return text + (f" ±{spread / 2:.3f}" if spread >= 0.005 else "       ")


def write_pngs(folder, image, masks, maps):
    from skimage.io import imsave

    os.makedirs(folder, exist_ok=True)
    h, w = image.shape[:2]
    for threshold, stain_masks in masks.items():
        picture = np.full((h * w, 3), 255, np.uint8)  # white: neither stain
        hm, dm = stain_masks["H"], stain_masks["DAB"]
        picture[hm & ~dm] = (40, 60, 220)  # blue: haematoxylin only
        picture[dm & ~hm] = (150, 80, 20)  # brown: DAB only
        picture[hm & dm] = (220, 0, 220)  # magenta: both
        name = threshold.replace(" ", "-")
        imsave(
            os.path.join(folder, f"reference-{name}.png"),
            np.concatenate([image, picture.reshape(h, w, 3)], axis=1),
            check_contrast=False,
        )
    for name, quantized in maps.items():
        imsave(os.path.join(folder, f"clusters-{name}.png"), quantized, check_contrast=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", type=int, nargs="+", default=[3, 4, 6, 8], help="cluster counts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--png", metavar="DIR", help="write the reference masks and cluster maps")
    args = parser.parse_args(argv)
    if min(args.k) < 2 or max(args.k) > 14:
        parser.error("-k must be 2..14 (the best-subset search tries all 2^K unions)")

    from skimage import data

    from napari_kquant import quantize

    image = data.immunohistochemistry()
    conc, masks = reference(image)
    start = time.perf_counter()
    runs = {}  # (k, space name) -> list of score rows, one per seed
    maps = {}
    for k in args.k:
        for space, white in SPACES:
            name = space_name(space, white)
            for seed in args.seeds:
                result = quantize(
                    image, k, channel_axis=-1, seed=seed, color_space=space, white=white
                )
                labels = np.asarray(result.labels).ravel().astype(np.intp)
                runs.setdefault((k, name), []).append(score_run(labels, k, conc, masks))
                if args.png and seed == args.seeds[0]:
                    maps[f"k{k}-{name.replace(' ', '-').replace('=', '')}"] = np.asarray(
                        result.quantized
                    )
    seconds = time.perf_counter() - start

    shares = {s: f"{masks[HEADLINE][s].mean():.0%}" for s in STAINS}
    print(
        f"skimage.data.immunohistochemistry(), 512 x 512; seeds {args.seeds}; "
        f"{len(args.k) * len(SPACES) * len(args.seeds)} fits in {seconds:.1f} s"
    )
    print(
        f"reference: rgb2hed H and DAB > own Otsu threshold (H {shares['H']}, "
        f"DAB {shares['DAB']} of pixels); clusters called positive by majority vote\n"
    )
    header = (
        f"{'K':>2}  {'space':<15} {'mean MCC':>13} {'MCC H':>13} {'MCC DAB':>13} "
        f"{'best MCC':>13} {'eta2 H':>13} {'eta2 DAB':>13}"
    )
    print(header)
    print("-" * len(header))
    for k in args.k:
        for space, white in SPACES:
            rows = runs[(k, space_name(space, white))]
            cells = [
                [mean_mcc(r) for r in rows],
                [r[("mcc", HEADLINE, "H")] for r in rows],
                [r[("mcc", HEADLINE, "DAB")] for r in rows],
                [mean_mcc(r, "best") for r in rows],
                [r[("eta2", "H")] for r in rows],
                [r[("eta2", "DAB")] for r in rows],
            ]
            print(
                f"{k:>2}  {space_name(space, white):<15} "
                + " ".join(f"{cell(c):>13}" for c in cells)
            )
        print()

    thresholds = list(masks)
    print("mean MCC (majority vote) with other reference thresholds:")
    print(f"{'K':>2}  {'space':<15} " + " ".join(f"{t:>13}" for t in thresholds))
    for k in args.k:
        for space, white in SPACES:
            rows = runs[(k, space_name(space, white))]
            print(
                f"{k:>2}  {space_name(space, white):<15} "
                + " ".join(
                    f"{cell([mean_mcc(r, 'mcc', t) for r in rows]):>13}" for t in thresholds
                )
            )
        print()

    print('verdict, "od" (white 255) minus the better of "rgb" and "lab", seed means:')
    print(
        f"{'K':>2}  "
        + " ".join(f"{t:>10}" for t in thresholds)
        + f" {'best MCC':>10}"
        + f" {'eta2 H':>10} {'eta2 DAB':>10}"
    )
    getters = [lambda r, t=t: mean_mcc(r, "mcc", t) for t in thresholds]
    getters += [
        lambda r: mean_mcc(r, "best"),
        lambda r: r[("eta2", "H")],
        lambda r: r[("eta2", "DAB")],
    ]
    for k in args.k:
        gaps = []
        for get in getters:
            means = {
                name: float(np.mean([get(r) for r in runs[(k, name)]]))
                for name in ("rgb", "lab", "od")
            }
            gaps.append(means["od"] - max(means["rgb"], means["lab"]))
        print(f"{k:>2}  " + " ".join(f"{g:>+10.3f}" for g in gaps))

    if args.png:
        write_pngs(args.png, image, masks, maps)
        print(f"\nwrote the reference masks and cluster maps to {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
