"""The README's pictures of outputs: docs/dither.png and docs/od-slide.png (OpenCV only).

.venv/bin/python scripts/figures.py
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from skimage import data

from napari_kquant import load_photo, quantize

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def captioned(image: np.ndarray, caption: str, zoom: int) -> np.ndarray:
    big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    bar = np.full((34, big.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, caption, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.62, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, big])


def row(panels, zoom) -> np.ndarray:
    gap = np.full((panels[0][0].shape[0] * zoom + 34, 8, 3), 255, np.uint8)
    parts = []
    for image, caption in panels:
        parts += [captioned(image, caption, zoom), gap]
    return np.hstack(parts[:-1])


def save(name, rgb) -> None:
    path = os.path.join(DOCS, name)
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    print(path)


def dither_figure() -> None:
    photo = load_photo()
    palette = quantize(photo, 8, channel_axis=-1, seed=0).palette
    crop = (slice(60, 220), slice(170, 330))  # the face, 160 x 160
    panels = [(photo[crop], "original")]
    for dither, caption in ((None, "K=8"), (True, "K=8 dither=True"),
                            ("floyd-steinberg", "K=8 Floyd-Steinberg"),
                            ("ordered", "K=8 ordered")):  # fmt: skip
        panels.append((palette.apply(photo, channel_axis=-1, dither=dither).quantized[crop],
                       caption))  # fmt: skip
    save("dither.png", row(panels, 2))


def od_figure() -> None:
    slide = data.immunohistochemistry()
    crop = (slice(0, 256), slice(0, 256))
    panels = [(slide[crop], "IHC slide (H + DAB)")]
    for space in ("rgb", "lab", "od"):
        result = quantize(slide, 4, channel_axis=-1, seed=0, color_space=space)
        panels.append((result.quantized[crop], f"K=4, color_space={space}"))
    save("od-slide.png", row(panels, 1))


if __name__ == "__main__":
    dither_figure()
    od_figure()
