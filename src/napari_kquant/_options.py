"""The fit options: names, defaults, limits, and their validation.

Every check runs before any work, and every error names the parameter and the
value it got.
"""

from __future__ import annotations

import math
import numbers
import secrets
from dataclasses import asdict, dataclass

import cv2
import numpy as np

CRITERIA = {
    "eps+max_iter": cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER,
    "eps": cv2.TERM_CRITERIA_EPS,
    "max_iter": cv2.TERM_CRITERIA_MAX_ITER,
}
INITS = {"kmeans++": cv2.KMEANS_PP_CENTERS, "random": cv2.KMEANS_RANDOM_CENTERS}
COLOR_SPACES = ("rgb", "lab")

#: Pixels the default call fits on. On a 16.7 MP photo a 50,000-pixel sample with
#: 3 k-means++ attempts lands within 1% of a converged full-image fit at K=8, 16 and
#: 64 (a 20,000-pixel sample does at K=16, but is 6% off at K=64), in under a second
#: end to end (see the README's benchmark).
DEFAULT_SAMPLE = 50_000
DEFAULT_ATTEMPTS = 3
#: OpenCV runs at least 2 and at most 100 iterations whatever it is asked.
MIN_ITER, MAX_ITER = 2, 100
#: Labels are uint8 or uint16; nobody reads a palette of more colours.
MAX_K = 2**16 - 1
#: More attempts than this are no better; cv2 takes a C int.
MAX_ATTEMPTS = 1000
#: Fit samples beyond this would not fit in memory anyway.
MAX_SAMPLE = 2**40
#: With ``epsilon=None`` the tolerance is this fraction of the data's value
#: range, so uint8, uint16 and float images converge alike.
EPSILON_FRACTION = 1e-3
SEED_MAX = 2**31 - 1  # cv2.setRNGSeed takes a C int


@dataclass(frozen=True)
class Settings:
    """Validated fit options (``seed`` drawn when the caller gave None)."""

    k: int
    criteria: str
    max_iter: int
    epsilon: float | None
    attempts: int
    init: str
    seed: int
    sample: int | None
    color_space: str

    @property
    def lab(self) -> bool:
        return self.color_space == "lab"

    def cv2_criteria(self, epsilon: float) -> tuple:
        return (CRITERIA[self.criteria], self.max_iter, epsilon)

    def record(self) -> dict:
        """The options as JSON-ready values (what a palette keeps of its fit)."""
        return asdict(self)


FIT_OPTIONS = ("criteria", "max_iter", "epsilon", "attempts", "init", "seed", "sample",
               "color_space")  # fmt: skip


def check_names(function: str, options: dict) -> None:
    """A TypeError naming an unknown keyword, like Python's own, but with the choices."""
    unknown = sorted(set(options) - set(FIT_OPTIONS))
    if unknown:
        raise TypeError(
            f"{function}() got an unexpected option {unknown[0]!r}; fit options are "
            f"{', '.join(FIT_OPTIONS)}"
        )


def settings(
    k=8,
    *,
    criteria="eps+max_iter",
    max_iter=MAX_ITER,
    epsilon=None,
    attempts=DEFAULT_ATTEMPTS,
    init="kmeans++",
    seed=None,
    sample=DEFAULT_SAMPLE,
    color_space="rgb",
) -> Settings:
    """Check every fit option; the errors name the parameter and the value."""
    k = integer("k", k, 1, MAX_K)
    criteria = choice("criteria", criteria, CRITERIA)
    max_iter = integer("max_iter", max_iter, MIN_ITER, MAX_ITER)
    epsilon = _epsilon(epsilon)
    attempts = integer("attempts", attempts, 1, MAX_ATTEMPTS)
    init = choice("init", init, INITS)
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else integer("seed", seed, 0, SEED_MAX)
    if sample is not None:
        sample = integer("sample", sample, 1, MAX_SAMPLE)
        if sample < k:
            raise ValueError(f"sample={sample} is smaller than k={k}; give sample >= k")
    color_space = choice("color_space", color_space, COLOR_SPACES)
    return Settings(k, criteria, max_iter, epsilon, attempts, init, seed, sample, color_space)


def integer(name, value, lo, hi=None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        names = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {names}, got {value!r}")
    return value


def flag(name, value) -> bool | None:
    """True, False or None (auto); strings such as 'False' are refused, not read as True."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r}")


def callback(name, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")
    return value


def _epsilon(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"epsilon must be a number or None, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not (finite and value >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {value}")
    return float(value)
