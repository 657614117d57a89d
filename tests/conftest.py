import cv2
import numpy as np
import pytest
from skimage import data

# Four well-separated colours in 2 x 2 blocks of 16 x 16; label order is dark to light.
BLOCK_COLOURS = np.array([[20, 30, 200], [10, 10, 10], [240, 240, 240], [200, 40, 30]])
BLOCK_LABELS = np.array([[2, 1], [4, 3]])  # luminance: 10 < 43 (blue) < 90 (red) < 240


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
