"""Fixtures and helpers shared by every layer's tests: synthetic images with known labels,
the bundled photographs, files as kquant reads them, and a real napari viewer with the dock."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

# Four well-separated colours in 2 x 2 blocks of 16 x 16; label order is dark to light.
BLOCK_COLOURS = np.array([[20, 30, 200], [10, 10, 10], [240, 240, 240], [200, 40, 30]])
BLOCK_LABELS = np.array([[2, 1], [4, 3]])  # luminance: 10 < 43 (blue) < 90 (red) < 240


def pytest_collection_modifyitems(items):
    """The slow tests first: the two workers of scripts/test.sh take them at the start and
    share the short ones after, rather than one of them ending with a long one alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # (stable)


def make_blocks(noise=6.0, seed=0):
    """(32, 32, 3) uint8 image of four colour blocks with seeded noise."""
    rng = np.random.default_rng(seed)
    image = np.kron(np.arange(4).reshape(2, 2), np.ones((16, 16), int))
    pixels = BLOCK_COLOURS[image] + rng.normal(0, noise, (32, 32, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def expected_block_labels():
    return np.kron(BLOCK_LABELS, np.ones((16, 16), int))


@pytest.fixture
def blocks():
    return make_blocks()


@pytest.fixture(scope="session")
def photos():
    """Real photographs bundled with scikit-image, downscaled to keep exact fits quick."""
    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        image = getattr(data, name)()
        out[name] = cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA)
    return out


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def kquant(*argv, cwd):
    """The real console script, as a user runs it."""
    exe = os.path.join(os.path.dirname(sys.executable), "kquant")
    return subprocess.run([exe, *map(str, argv)], cwd=cwd, capture_output=True, text=True)


def snapshot(folder):
    return {
        p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def pillow_indices(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.mode, np.asarray(im), np.array(im.getpalette(), np.uint8).reshape(-1, 3)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    return widget


def run(widget, qtbot, timeout=60_000, **values):
    """Set the dock's fields, press Run, and wait until the worker is done."""
    for name, value in values.items():
        getattr(widget.form, name).value = value
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def errors_since(start):
    """The error notifications napari showed since record ``start``."""
    from napari.utils.notifications import notification_manager

    return [r.message for r in notification_manager.records[start:] if r.severity == "error"]


def blobs(n, seed=0, side=96):
    """n well-separated colours in random blocks, with a little noise."""
    rng = np.random.default_rng(seed)
    colours = np.array([[30, 30, 30], [220, 40, 40], [40, 200, 60], [40, 60, 220],
                        [230, 230, 60], [230, 230, 230], [160, 60, 200]])[:n]  # fmt: skip
    which = rng.integers(0, n, (side // 8, side // 8)).repeat(8, 0).repeat(8, 1)
    which.flat[:n] = np.arange(n)  # every colour present
    image = colours[which] + rng.normal(0, 4, (side, side, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def numpy_lloyd(points, weights, centers, max_iter, epsilon):
    """Weighted Lloyd by a full distance matrix each iteration (the definition); a cluster
    left empty takes the point farthest from its centre whose cluster keeps others (the
    lowest index among equals), in cluster order, before the means."""
    centers = centers.astype(np.float64).copy()
    for _ in range(max_iter):
        labels = ((points[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(centers)):
            total = np.bincount(labels, weights, minlength=len(centers))
            if total[j] > 0:
                continue
            far = ((points - centers[labels]) ** 2).sum(1)
            far[total[labels] - weights <= 0] = 0.0
            if far.max() > 0:
                labels[far.argmax()] = j
        new = centers.copy()
        for j in range(len(centers)):
            w = weights[labels == j]
            if w.sum() > 0:
                new[j] = (points[labels == j] * w[:, None]).sum(0) / w.sum()
        moved = np.sqrt(((new - centers) ** 2).sum(1)).max()
        centers = new
        if moved <= epsilon:
            break
    return centers, ((points[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
