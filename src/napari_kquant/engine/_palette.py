"""`Palette`: a kept set of cluster centres that labels any image the same way.

A palette is data: its centres in the units of the image it was fitted on, the
space distances are measured in, and how it was fitted. ``palette.apply(image)``
gives label i to the pixels nearest entry i, on any image with the same number
of colour channels; ``save``/``load`` keep it in JSON, GIMP .gpl or CSV files.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np

from ..core._colorspace import resolve_white, rgb_scale, to_lab, to_od
from ..core._layout import check_dtype, is_lazy, is_multiscale
from ..core._options import (
    COLOR_SPACES,
    MAX_K,
    SEED_MAX,
    Finish,
    callback,
    check_white,
    choice,
    finish,
    not_items,
)
from ..core._staged import file_path
from ._apply import apply_array
from ._palette_files import read, write

FORMAT = "napari-kquant palette"
VERSION = 1
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def _frozen(values, name, width=None) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers, got dtype {values.dtype}")
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a (k, channels) array of numbers") from None
    if array.ndim == 1 and width is None:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= len(array) <= MAX_K or array.shape[1] == 0:
        raise ValueError(
            f"{name} must be a (k, channels) array with 1 <= k <= {MAX_K}, got shape {array.shape}"
        )
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{name} must have {width} columns, got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Palette:
    """Cluster centres in label order, and how they were made.

    Attributes
    ----------
    centers : ndarray
        (k, colour channels) float64, row ``i`` being label ``i + 1``, in the
        units of ``dtype`` (RGB for ``color_space="lab"``).
    color_space : {"rgb", "lab", "od"}
        The space nearest centres are found in.
    lab_centers : ndarray or None
        (k, 3) float64 CIE L*a*b* centres, for ``color_space="lab"``: the exact
        values distances are measured against.
    white : tuple of float or None
        For ``color_space="od"``: the white level per channel (in ``dtype``'s
        units) that optical densities are measured against; None: the dtype's
        maximum. `od_centers` are the centres' densities.
    dtype : str or None
        The image dtype the centres are in. Applied to an image of another
        dtype they are converted as colours are (integer maximum = float 1.0 =
        white). None: the units of whatever image the palette is applied to.
    value_range : tuple of float or None
        (min, max) of the fitted values.
    fit : dict or None
        The fit options (k, criteria, max_iter, attempts, init, sample,
        color_space); None for a palette of given colours.
    seed, epsilon, compactness
        The seed and tolerance the fit used, and its compactness (sum of
        squared distances in the clustering space).
    name : str
        A name for files and menus.
    """

    centers: np.ndarray
    color_space: str = "rgb"
    lab_centers: np.ndarray | None = None
    white: tuple[float, ...] | None = None
    dtype: str | None = None
    value_range: tuple[float, float] | None = None
    fit: dict | None = field(default=None, repr=False)
    seed: int | None = None
    epsilon: float | None = None
    compactness: float | None = None
    name: str = ""

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "centers", _frozen(self.centers, "centers"))
        choice("color_space", self.color_space, COLOR_SPACES)
        if self.dtype is not None:
            set_(self, "dtype", _palette_dtype(self.dtype))
            _check_range("centers", self.centers, self.dtype, rounding=True)
        self._check_fields()
        if self.color_space == "lab":
            if self.dtype is None:
                raise ValueError("a 'lab' palette needs the dtype its colours are in")
            if self.centers.shape[1] != 3:
                raise ValueError(
                    f"a 'lab' palette needs 3 colour channels, got {self.centers.shape[1]}"
                )
            if self.lab_centers is None:
                set_(self, "lab_centers", to_lab(self.centers, self._white()).astype(np.float64))
            lab = _frozen(self.lab_centers, "lab_centers", width=3)
            if len(lab) != self.k:
                raise ValueError(f"lab_centers has {len(lab)} rows, centers has {self.k}")
            set_(self, "lab_centers", lab)
        elif self.lab_centers is not None:
            raise ValueError("lab_centers is only for color_space='lab'")
        if self.color_space == "od":
            if self.dtype is None:
                raise ValueError("an 'od' palette needs the dtype its colours are in")
            try:
                white = check_white(self.white)
            except TypeError as e:
                raise ValueError(str(e)) from None
            if white == "auto":
                raise ValueError("a palette's white must be numbers, not 'auto'")
            white = resolve_white(white, self.centers, self.dtype, self.nchannels)
            set_(self, "white", tuple(white.tolist()))
        elif self.white is not None:
            raise ValueError("white is only for color_space='od'")

    def _check_fields(self):
        """Every field JSON-ready and of its type: what is saved can be loaded back."""
        set_ = object.__setattr__
        if not isinstance(self.name, str) or any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000
                                                 for c in self.name):  # fmt: skip
            raise ValueError(
                f"name must be a string without control characters, got {self.name!r}"
            )
        if self.value_range is not None:
            try:
                low, high = (float(v) for v in self.value_range)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"value_range must be (min, max) numbers or None, got {self.value_range!r}"
                ) from None
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"value_range must be finite, got {self.value_range!r}")
            if low > high:
                raise ValueError(f"value_range must be (min, max), got {self.value_range!r}")
            set_(self, "value_range", (low, high))
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
                raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
            if not 0 <= self.seed <= SEED_MAX:  # what quantize takes back (a C int)
                raise ValueError(f"seed must be between 0 and {SEED_MAX}, got {self.seed}")
            set_(self, "seed", int(self.seed))
        for key in ("epsilon", "compactness"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{key} must be a number or None, got {value!r}")
            value = float(value)
            if key == "epsilon" and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"epsilon must be a finite number >= 0, got {value}")
            set_(self, key, value if math.isfinite(value) else None)
        if self.fit is not None:
            if not isinstance(self.fit, dict):
                raise ValueError(
                    f"fit must be a dict of the fit options or None, got {self.fit!r}"
                )
            try:  # a private, JSON-ready, read-only copy: nobody can change it from outside
                record = json.loads(json.dumps(self.fit, allow_nan=False, default=_plain))
                set_(self, "fit", _read_only(record))
            except (TypeError, ValueError):
                raise ValueError(f"fit must hold JSON values, got {self.fit!r}") from None

    # --- what it is -------------------------------------------------------------------------

    @property
    def k(self) -> int:
        """Number of colours."""
        return len(self.centers)

    @property
    def nchannels(self) -> int:
        """Colour channels an image must have to take this palette."""
        return self.centers.shape[1]

    def _white(self) -> float:
        return rgb_scale(self.dtype) if self.dtype is not None else 255.0

    def centers_for(self, dtype) -> np.ndarray:
        """The centres in the units of an image of ``dtype``."""
        if self.dtype is None or np.dtype(dtype) == np.dtype(self.dtype):
            return self.centers
        return self.centers * (rgb_scale(dtype) / rgb_scale(self.dtype))

    def white_for(self, dtype) -> np.ndarray:
        """An "od" palette's white level in the units of an image of ``dtype``."""
        return np.asarray(self.white) * (rgb_scale(dtype) / rgb_scale(self.dtype))

    @property
    def od_centers(self) -> np.ndarray | None:
        """(k, channels) optical densities of the centres, for ``color_space="od"``."""
        if self.color_space != "od":
            return None
        return to_od(self.centers, self.white, np.float64)

    @property
    def features(self) -> np.ndarray:
        """The centres where distances are measured: L*a*b*, optical density, or values."""
        if self.color_space == "lab":
            return np.asarray(self.lab_centers, np.float64)
        if self.color_space == "od":
            return self.od_centers
        return np.asarray(self.centers, np.float64)

    @property
    def hex(self) -> list[str] | None:
        """``#rrggbb`` per entry (gray for one channel); None for other channel counts."""
        if self.nchannels not in (1, 3):
            return None
        with np.errstate(over="ignore"):  # centres near the float64 limit: white
            eight = np.clip(np.rint(self.centers * (255.0 / self._white())), 0, 255)
        eight = eight.astype(int)
        if self.nchannels == 1:
            eight = np.repeat(eight, 3, axis=1)
        return ["#{:02x}{:02x}{:02x}".format(*row) for row in eight]

    def __eq__(self, other):
        if not isinstance(other, Palette):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        fitted = "given colours" if self.fit is None else f"seed {self.seed}"
        return (
            f"Palette(k={self.k}, channels={self.nchannels}, color_space={self.color_space!r}, "
            f"dtype={self.dtype}, {fitted})"
        )

    # --- using it ---------------------------------------------------------------------------

    def apply(
        self,
        image,
        *,
        channel_axis=None,
        alpha=None,
        mask=None,
        dither=None,
        dither_strength=1.0,
        min_size=None,
        smooth=None,
        progress=None,
    ):
        """Label every pixel of ``image`` with its nearest palette entry.

        Parameters
        ----------
        image : array_like, dask array, chunked array or list of arrays
            As for `napari_kquant.quantize`: numpy, dask/zarr (lazy results) or a
            multiscale list (lists of results). It must have `nchannels` colour
            channels.
        channel_axis, alpha, mask, dither, dither_strength, min_size, smooth, progress
            As for `napari_kquant.quantize`.

        Returns
        -------
        QuantizeResult
            Label i is palette entry i (``centers[i - 1]``) on every image;
            ``centers`` are in the image's units; ``palette`` is this palette.

        Raises
        ------
        ValueError
            The image's colour channels differ from the palette's, or a bad
            mask or layout.
        """
        callback("progress", progress)
        done = finish(dither, dither_strength, min_size, smooth)
        return apply_palette(self, image, channel_axis, alpha, mask, progress, done)

    # --- making one -------------------------------------------------------------------------

    @classmethod
    def from_colors(cls, colors, *, dtype=None, color_space="rgb", white=None, name="") -> Palette:
        """A palette of given colours, in the given order (label i = colour i).

        Parameters
        ----------
        colors : sequence of str, or array_like
            Hex strings (``"#ff8800"``, ``"f80"``: 8-bit RGB), or a (k,
            channels) array of values.
        dtype : dtype or None
            The units of an array of values (e.g. ``"uint8"``); None: the units
            of the image it is applied to. Hex colours are ``uint8``.
        color_space : {"rgb", "lab", "od"}
            Where nearest colours are found; "lab" needs 3 channels and a dtype,
            "od" a dtype.
        white : float or sequence of float, optional
            For "od": the white level (one, or one per channel) in ``dtype``'s
            units; None: the dtype's maximum.
        name : str
            A name for files and menus.
        """
        if isinstance(colors, str):
            colors = [colors]
        unordered = isinstance(colors, set | frozenset | dict) or np.ma.isMaskedArray(colors)
        if unordered or not_items(colors) or not hasattr(colors, "__len__"):
            raise TypeError(
                "colors must be hex strings or a (k, channels) array, in label order, got "
                f"{type(colors).__name__}"
            )
        if not isinstance(colors, np.ndarray):
            colors = list(colors)
        if len(colors) and all(isinstance(c, str) for c in colors):
            rgb = []
            for c in colors:
                match = _HEX.fullmatch(c.strip())
                if match is None:
                    raise ValueError(f"colors: {c!r} is not a hex colour like '#ff8800'")
                digits = match.group(1)
                if len(digits) == 3:
                    digits = "".join(d * 2 for d in digits)
                rgb.append([int(digits[i : i + 2], 16) for i in (0, 2, 4)])
            colors = np.array(rgb, np.float64)
            if dtype is None:
                dtype = "uint8"
            else:  # 8-bit colours in the units of dtype (its white for #ffffff)
                colors = colors * (rgb_scale(_palette_dtype(dtype)) / 255.0)
        if color_space in ("lab", "od") and dtype is None:
            raise ValueError(
                f"color_space={color_space!r} needs the colours' dtype (e.g. dtype='uint8')"
            )
        colors = _frozen(colors, "colors")
        if dtype is not None:  # given colours: no fit's rounding allowed
            _check_range("colors", colors, _palette_dtype(dtype), rounding=False)
        return cls(colors, color_space, white=white, dtype=dtype, name=name)

    # --- files ------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Every field as JSON-ready values (the JSON file's content)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "k": self.k,
            "channels": self.nchannels,
            "color_space": self.color_space,
            "dtype": self.dtype,
            "value_range": None if self.value_range is None else list(self.value_range),
            "centers": self.centers.tolist(),
            "lab_centers": None if self.lab_centers is None else self.lab_centers.tolist(),
            "white": None if self.white is None else list(self.white),
            "hex": self.hex,
            "fit": None if self.fit is None else json.loads(json.dumps(self.fit)),
            "seed": self.seed,
            "epsilon": self.epsilon,
            "compactness": _finite_or_none(self.compactness),
        }

    @classmethod
    def from_dict(cls, record: dict) -> Palette:
        """The inverse of `to_dict`; a ValueError says what is wrong."""
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f'not a napari-kquant palette (no "format": "{FORMAT}")')
        version = record.get("version")
        if version != VERSION:
            raise ValueError(f"palette version {version!r} is not supported (this is {VERSION})")
        missing = [key for key in ("centers", "color_space") if key not in record]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        try:
            palette = cls(
                centers=record["centers"],
                color_space=record["color_space"],
                lab_centers=record.get("lab_centers"),
                white=record.get("white"),
                dtype=record.get("dtype"),
                value_range=record.get("value_range"),
                fit=record.get("fit"),
                seed=record.get("seed"),
                epsilon=record.get("epsilon"),
                compactness=record.get("compactness"),
                name=record.get("name", ""),
            )
        except (TypeError, OverflowError) as e:
            raise ValueError(str(e)) from None
        if "channels" in record and record["channels"] != palette.nchannels:
            raise ValueError(
                f"'channels' is {record['channels']!r} but the centers have {palette.nchannels}"
            )
        if "k" in record and record["k"] != palette.k:
            raise ValueError(f"'k' is {record['k']!r} but there are {palette.k} centers")
        return palette

    def save(self, path) -> None:
        """Write to ``path``: ``.json`` (every field, exact), ``.gpl`` (GIMP, 8-bit RGB) or
        ``.csv`` (label, hex and the centre values, exact).

        The file is written whole or not at all (a temporary file, then a rename).
        """
        write(file_path(path), self)

    @classmethod
    def load(cls, path) -> Palette:
        """Read a palette file written by `save` (or a GIMP ``.gpl``, or a CSV of colours).

        Raises
        ------
        ValueError
            The file is missing, unreadable, or not a palette; the message names
            the file and what is wrong.
        """
        return read(file_path(path), cls)


def _check_range(name: str, values: np.ndarray, dtype: str, rounding: bool) -> None:
    """Values of an integer ``dtype`` within its range; with ``rounding``, give or take a
    float32 fit's rounding of a mean (at least 1)."""
    if np.dtype(dtype).kind not in "ui":
        return
    info = np.iinfo(dtype)
    slack = max(1.0, float(info.max) * 2.0**-23) if rounding else 0.0
    outside = (values < info.min - slack) | (values > info.max + slack)
    if outside.any():
        raise ValueError(
            f"{name} must be within {dtype}'s range {info.min}..{info.max}, "
            f"got {values[outside][0]:g}"
        )


def apply_palette(palette, image, channel_axis, alpha, mask, progress, done: Finish):
    """`Palette.apply` once its options are checked: to numpy, lazy or multiscale input."""
    if not (is_multiscale(image) or is_lazy(image)):
        return apply_array(palette, image, channel_axis, alpha, mask, progress, done)
    from ._lazy import apply_lazy, apply_levels  # dask: loaded for lazy input only

    if is_multiscale(image):
        return apply_levels(palette, list(image), channel_axis, alpha, mask, progress, done)
    return apply_lazy(palette, image, channel_axis, alpha, mask, progress, done)


def _palette_dtype(dtype) -> str:
    try:
        if isinstance(dtype, np.generic):  # a value (np.int8(3)), not a dtype
            raise TypeError
        return str(check_dtype(dtype))
    except TypeError:
        raise ValueError(
            f"dtype must be an integer, float32 or float64 dtype, got {dtype!r}"
        ) from None


def _refuse(self, *args, **kwargs):
    raise TypeError(
        "a palette's fit record is read-only (palettes are immutable); "
        "make a changed copy with dataclasses.replace(palette, fit={...})"
    )


class Record(dict):
    """A read-only dict of a palette's fit record (equal to a plain dict of the same items)."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return Record, (dict(self),)


class RecordList(list):
    """A read-only list inside a fit record (equal to a plain list of the same items)."""

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = __iadd__ = __imul__ = _refuse

    def __reduce__(self):
        return RecordList, (list(self),)


def _read_only(value):
    """JSON values with every dict and list read-only."""
    if isinstance(value, dict):
        return Record({key: _read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return RecordList(_read_only(item) for item in value)
    return value


def _plain(value):
    """numpy scalars in a fit record, as plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-ready")


def _finite_or_none(value):
    if value is None or not math.isfinite(value):
        return None
    return float(value)
