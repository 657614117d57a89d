"""The pictures bundled with the package (a photograph and a stained slide), and a
time-lapse made from the photograph: for the CLI, the examples and docs, and napari's File >
Open Sample (`viewer._sample_data`)."""

from __future__ import annotations

from importlib.resources import files

import cv2
import numpy as np

PHOTO_NAME = "astronaut.png"
SLIDE_NAME = "slide.png"


def photo_path() -> str:
    """Path of the bundled colour photograph (NASA's Eileen Collins, public domain)."""
    return str(files("napari_kquant") / "data" / PHOTO_NAME)


def load_photo() -> np.ndarray:
    """The bundled photograph as a (512, 512, 3) uint8 RGB array."""
    bgr = cv2.imread(photo_path(), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_slide() -> np.ndarray:
    """A bundled brightfield slide as a (256, 256, 3) uint8 RGB array: colonic glands,
    immunohistochemistry (DAB, brown) with a hematoxylin counterstain (blue), a crop of
    scikit-image's ``immunohistochemistry`` (Center for Microscopy and Molecular Imaging;
    no known copyright restrictions). For ``color_space="od"``."""
    bgr = cv2.imread(str(files("napari_kquant") / "data" / SLIDE_NAME), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make_timelapse(frames: int = 12) -> np.ndarray:
    """A (frames, 256, 256, 3) uint8 time series: the photo panning and fading to warm."""
    photo = load_photo()
    stack = np.empty((frames, 256, 256, 3), np.uint8)
    for t in range(frames):
        y = x = 16 * t
        crop = photo[y : y + 256, x : x + 256].astype(np.float32)
        warmth = t / max(frames - 1, 1)
        crop *= np.array([1.0 + 0.25 * warmth, 1.0, 1.0 - 0.35 * warmth], np.float32)
        stack[t] = np.clip(crop, 0, 255).astype(np.uint8)
    return stack
