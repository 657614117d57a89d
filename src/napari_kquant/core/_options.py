"""The options: fit options and finishing options (dithering, clean label maps), their
names, defaults, limits, and their validation.

Every check runs before any work, and every error names the parameter and the
value it got.
"""

from __future__ import annotations

import math
import numbers
import secrets
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

CRITERIA = {
    "eps+max_iter": cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER,
    "eps": cv2.TERM_CRITERIA_EPS,
    "max_iter": cv2.TERM_CRITERIA_MAX_ITER,
}
INITS = {"kmeans++": cv2.KMEANS_PP_CENTERS, "random": cv2.KMEANS_RANDOM_CENTERS}
COLOR_SPACES = ("rgb", "lab", "od")
#: ``speed="fast"``: other defaults for a quick fit of a small picture (what pngquant's
#: users expect: tenths of a second at K=256). The sample ("auto") is FAST_SAMPLE_PER_CLUSTER
#: a cluster (at least MIN_FAST_SAMPLE), one attempt (FAST_ATTEMPTS) runs on FAST_ATTEMPT_PER_
#: CLUSTER a cluster (at least FAST_ATTEMPT_SAMPLE), and each stage stops after FAST_MAX_ITER
#: iterations. On 0.26-1 MP photos its MSE is 0-6% above the default's at K=16-64 and 4-19%
#: at K=256, at about the default's mean CIEDE2000 (benchmarks/bench_web.py).
SPEEDS = ("default", "fast")
FAST_SAMPLE_PER_CLUSTER = 100
MIN_FAST_SAMPLE = 25_000
FAST_ATTEMPT_PER_CLUSTER = 10
FAST_ATTEMPT_SAMPLE = 2_500
FAST_ATTEMPTS = 1
FAST_MAX_ITER = 10

#: Pixels the default call fits on (``sample="auto"``): SAMPLE_PER_CLUSTER per cluster,
#: at least MIN_AUTO_SAMPLE, at most MAX_AUTO_SAMPLE unless K is so large that it leaves
#: fewer than MIN_PER_CLUSTER a cluster. A sample misses rare colours (a dark photo's
#: few bright stars) that a fit on every pixel serves: its MSE over a fit converged on
#: the whole photo is 1.5-3.5% at 1,000 a cluster (K=64), within 1% at 4,000, and at
#: K=256 within 1.5% from 3,000 a cluster (benchmarks/bench_quality.py, 7 photos).
DEFAULT_SAMPLE = "auto"
MIN_AUTO_SAMPLE = 50_000
SAMPLE_PER_CLUSTER = 4000
MAX_AUTO_SAMPLE = 768_000
MIN_PER_CLUSTER = 1000
#: A sampled fit runs its attempts on a subsample of ATTEMPT_SAMPLE pixels, or
#: ATTEMPT_PER_CLUSTER per cluster if more, and refines them on the whole sample.
ATTEMPT_SAMPLE = 10_000
ATTEMPT_PER_CLUSTER = 40
#: At these K every attempt is refined and the best refined one kept; at others only the
#: attempt best on the subsample. Attempts land in local optima 1-3% apart, and the subsample
#: cannot tell which will refine best: refining all of them brings the MSE within 1% of a
#: converged fit at K=16-32 on every photo of benchmarks/bench_quality.py (hubble K=16
#: 1.017 -> 1.008, rocket K=32 1.016 -> 1.007), for +0.05-0.1 s at K=16 and +0.1-0.2 s at
#: K=32 on 4 MP. Up to K=12 the best attempt alone is within 1% (hubble K=12 1.007; K=8
#: 1.006), and refining three would add a fifth to the default K=8 call on 4 MP; from K=64 too
#: (1.008 at most), where refining three would add 0.4 s (cost grows as K x the sample).
REFINE_EACH_KS = range(13, 33)
DEFAULT_ATTEMPTS = 3
#: The two samples in words, for help texts and tooltips.
AUTO_SAMPLE_TEXT = (
    f"{SAMPLE_PER_CLUSTER:,} per cluster, at least {MIN_AUTO_SAMPLE:,} and at most "
    f"{MAX_AUTO_SAMPLE:,} ({MIN_PER_CLUSTER:,} per cluster above "
    f"K={MAX_AUTO_SAMPLE // MIN_PER_CLUSTER})"
)
FAST_SAMPLE_TEXT = f"{FAST_SAMPLE_PER_CLUSTER} per cluster, at least {MIN_FAST_SAMPLE:,}"
#: OpenCV runs at least 2 and at most 100 iterations whatever it is asked.
MIN_ITER, MAX_ITER = 2, 100
#: Labels are uint8 or uint16; nobody reads a palette of more colours.
MAX_K = 2**16 - 1
#: ``k="auto"`` tries K = 1, 2, 3, ... up to this.
MAX_AUTO_K = 256
#: More attempts than this are no better; cv2 takes a C int.
MAX_ATTEMPTS = 1000
#: Fit samples beyond this would not fit in memory anyway.
MAX_SAMPLE = 2**40
#: With ``epsilon=None`` the tolerance is this fraction of the data's value
#: range, so uint8, uint16 and float images converge alike.
EPSILON_FRACTION = 1e-3
#: The largest epsilon given to OpenCV (see `Settings.cv2_criteria`).
CV2_MAX_EPSILON = 1e100
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
    white: float | tuple[float, ...] | str | None = None  # "od": the white level
    speed: str = "default"
    #: ``sample="auto"`` was asked for: `sample` follows K (see `with_k`)
    sample_auto: bool = field(default=False, repr=False)

    @property
    def lab(self) -> bool:
        return self.color_space == "lab"

    @property
    def od(self) -> bool:
        return self.color_space == "od"

    def cv2_criteria(self, epsilon: float) -> tuple:
        """OpenCV's criteria; ``epsilon`` at most `CV2_MAX_EPSILON` (OpenCV squares it: from
        ~1e154 the square overflows and cv2.kmeans crashes the process). No move of float32
        data comes near that bound, so the fit stops exactly where the larger one would."""
        return (CRITERIA[self.criteria], self.max_iter, min(epsilon, CV2_MAX_EPSILON))

    def sample_for(self, k: int) -> int | None:
        """The fit sample at ``k`` clusters: `auto_sample` for ``sample="auto"``."""
        return auto_sample(k, self.speed) if self.sample_auto else self.sample

    def with_k(self, k: int) -> Settings:
        """The same options at another K (the one ``k="auto"`` chose)."""
        k = integer("k", k, 1, MAX_K)
        sample = self.sample_for(k)
        if sample is not None and sample < k:
            raise ValueError(f"sample={sample} is smaller than k={k}; give sample >= k")
        return replace(self, k=k, sample=sample)

    def record(self) -> dict:
        """The options as JSON-ready values (what a palette keeps of its fit)."""
        record = asdict(self)
        del record["sample_auto"]
        if self.white is None:  # only "od" fits have one
            del record["white"]
        return record


FIT_OPTIONS = ("criteria", "max_iter", "epsilon", "attempts", "init", "seed", "sample",
               "color_space", "white", "speed")  # fmt: skip


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
    max_iter=None,
    epsilon=None,
    attempts=None,
    init="kmeans++",
    seed=None,
    sample=DEFAULT_SAMPLE,
    color_space="rgb",
    white=None,
    speed="default",
) -> Settings:
    """Check every fit option; the errors name the parameter and the value. ``max_iter``
    and ``attempts`` None: the ``speed``'s defaults."""
    k = integer("k", k, 1, MAX_K)
    speed = choice("speed", speed, SPEEDS)
    defaults = speed_defaults(speed)
    criteria = choice("criteria", criteria, CRITERIA)
    max_iter = defaults["max_iter"] if max_iter is None else max_iter
    max_iter = integer("max_iter", max_iter, MIN_ITER, MAX_ITER)
    if criteria == "eps":  # OpenCV then runs up to 100 whatever the count: record what runs
        max_iter = MAX_ITER
    epsilon = _epsilon(epsilon)
    attempts = defaults["attempts"] if attempts is None else attempts
    attempts = integer("attempts", attempts, 1, MAX_ATTEMPTS)
    init = choice("init", init, INITS)
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else integer("seed", seed, 0, SEED_MAX)
    sample_auto = isinstance(sample, str) and sample == "auto"
    if sample_auto:
        sample = auto_sample(k, speed)
    elif sample is not None:
        if isinstance(sample, str):
            raise ValueError(f"sample must be a whole number, 'auto' or None, got {sample!r}")
        sample = integer("sample", sample, 1, MAX_SAMPLE)
        if sample < k:
            raise ValueError(f"sample={sample} is smaller than k={k}; give sample >= k")
    color_space = choice("color_space", color_space, COLOR_SPACES)
    white = check_white(white)
    if white is not None and color_space != "od":
        raise ValueError(f"white={white!r} is only for color_space='od', not {color_space!r}")
    return Settings(
        k, criteria, max_iter, epsilon, attempts, init, seed, sample, color_space, white,
        speed, sample_auto,
    )  # fmt: skip


def speed_defaults(speed: str) -> dict:
    """The ``max_iter`` and ``attempts`` a ``speed`` gives when they are not given."""
    if speed == "fast":
        return {"max_iter": FAST_MAX_ITER, "attempts": FAST_ATTEMPTS}
    return {"max_iter": MAX_ITER, "attempts": DEFAULT_ATTEMPTS}


def auto_sample(k: int, speed: str = "default") -> int:
    """The fit sample of ``sample="auto"`` at ``k`` clusters."""
    if speed == "fast":
        return max(MIN_FAST_SAMPLE, FAST_SAMPLE_PER_CLUSTER * k)
    return max(MIN_AUTO_SAMPLE, min(SAMPLE_PER_CLUSTER * k, MAX_AUTO_SAMPLE), MIN_PER_CLUSTER * k)


def attempt_size(k: int, speed: str = "default") -> int:
    """How many pixels a sampled fit's attempts run on (the rest refine the best)."""
    if speed == "fast":
        return max(FAST_ATTEMPT_SAMPLE, FAST_ATTEMPT_PER_CLUSTER * k)
    return max(ATTEMPT_SAMPLE, ATTEMPT_PER_CLUSTER * k)


def refines(n: int, k: int, speed: str = "default") -> bool:
    """Whether a sampled fit of ``n`` pixels runs its attempts on `attempt_size` of them
    and refines them on all ``n`` (each pixel then labelled by its nearest centre):
    which of them, `refines_each` says."""
    return n > attempt_size(k, speed)


def refines_each(k: int, attempts: int) -> bool:
    """Whether a fit that `refines` refines every attempt and keeps the best refined one
    (K in `REFINE_EACH_KS`), rather than only the attempt best on the subsample."""
    return k in REFINE_EACH_KS and attempts > 1


def check_white(white):
    """None, "auto", or one positive level or one per channel (a tuple), JSON-ready."""
    white = scalar(white)
    if white is None or (isinstance(white, str) and white == "auto"):
        return white
    shown = f"white must be None, 'auto', or positive number(s), got {white!r}"
    if isinstance(white, str | bytes | bool | dict | set):
        raise TypeError(shown)
    values = np.asarray(white, dtype=object).ravel().tolist() if np.ndim(white) else [white]
    if np.ndim(white) > 1 or not values:
        raise ValueError(shown)
    for value in values:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(shown)
        try:
            ok = math.isfinite(value) and value > 0
        except OverflowError:
            ok = False
        if not ok:
            raise ValueError(f"white must be finite and above 0, got {white!r}")
    return float(values[0]) if np.ndim(white) == 0 else tuple(float(v) for v in values)


DITHERS = ("adaptive", "floyd-steinberg", "ordered")
#: A plane's pixels are numbered in int32, so no region is larger. A majority filter
#: costs about 4r operations a pixel: r = 50 (a 101-pixel window, beyond any clean-up)
#: takes seconds on 16.7 MP, where r = 1000 took minutes.
MAX_MIN_SIZE = 2**31 - 1
MAX_SMOOTH = 50


@dataclass(frozen=True)
class Finish:
    """What is done to a picture and its labels after the nearest-centre assignment."""

    dither: str | None = None
    dither_strength: float = 1.0
    min_size: int | None = None
    smooth: int | None = None

    @property
    def cleans(self) -> bool:
        return (self.min_size or 1) > 1 or (self.smooth or 0) > 0

    @property
    def anything(self) -> bool:
        return self.dither is not None or self.cleans

    def record(self) -> dict:
        """The options that did something, as JSON-ready values (for metadata)."""
        done = {}
        if self.dither is not None:
            done.update(dither=self.dither, dither_strength=self.dither_strength)
        if self.cleans:
            done.update(min_size=self.min_size, smooth=self.smooth)
        return done


def finish(dither=None, dither_strength=1.0, min_size=None, smooth=None) -> Finish:
    """Check the finishing options; the errors name the parameter and the value."""
    if isinstance(dither, bool | np.bool_):  # True: the default dithering
        dither = DITHERS[0] if dither else None
    elif dither is not None and not isinstance(dither, str):
        raise TypeError(
            f"dither must be True, False, None or one of {', '.join(map(repr, DITHERS))}, "
            f"got {dither!r}"
        )
    if dither is not None:
        dither = choice("dither", dither, DITHERS)
    dither_strength = scalar(dither_strength)
    if isinstance(dither_strength, bool) or not isinstance(dither_strength, numbers.Real):
        raise TypeError(f"dither_strength must be a number from 0 to 1, got {dither_strength!r}")
    try:
        ok = math.isfinite(dither_strength) and 0.0 <= dither_strength <= 1.0
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ValueError(f"dither_strength must be from 0 to 1, got {dither_strength}")
    if min_size is not None:
        min_size = integer("min_size", min_size, 1, MAX_MIN_SIZE)
    if smooth is not None:
        smooth = integer("smooth", smooth, 0, MAX_SMOOTH)
    done = Finish(dither, float(dither_strength), min_size, smooth)
    if dither is not None and done.cleans:
        raise ValueError(
            f"dither={dither!r} cannot be combined with min_size or smooth: the dithered "
            "picture does not follow the labels (clean the labels in a run without dithering)"
        )
    return done


def scalar(value):
    """A 0-d numpy array of numbers (bool, integer, float) as its Python scalar
    (``np.array(5)`` as 5), for the checks of numeric options; anything else (a masked
    value, a date, a record) as it is, to be refused there."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value if np.ma.is_masked(value) else value.item()
    return value


def zero_d(value) -> bool:
    """A 0-d numpy array (what `scalar` left: not a number): no sequence to iterate."""
    return isinstance(value, np.ndarray) and value.ndim == 0


def not_items(value) -> bool:
    """Not a collection of items to iterate: a str or bytes (characters, not items), a
    scalar, or a 0-d numpy array (numpy refuses to iterate one)."""
    return isinstance(value, str | bytes) or not hasattr(value, "__iter__") or zero_d(value)


def integer(name, value, lo, hi=None) -> int:
    value = scalar(value)
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
    value = scalar(value)
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
