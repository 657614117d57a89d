"""napari sample data (File > Open Sample): the bundled photograph, a stained slide and a
time-lapse."""

from __future__ import annotations

from ..files._photos import load_photo, load_slide, make_timelapse


def sample_photo():
    """napari sample: the astronaut photograph."""
    return [(load_photo(), {"name": "astronaut", "rgb": True})]


def sample_slide():
    """napari sample: a brightfield IHC slide (DAB and hematoxylin), for color_space='od'."""
    return [(load_slide(), {"name": "slide", "rgb": True})]


def sample_timelapse():
    """napari sample: a 12-frame RGB time series, for one palette over a stack."""
    return [(make_timelapse(), {"name": "astronaut time-lapse", "rgb": True})]
