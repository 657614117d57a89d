"""Palette files: JSON (every field, exact), GIMP .gpl (8-bit RGB) and CSV (exact values).

Every read error names the file and what is wrong; every write lands whole or
not at all (`core.write_texts`: a temporary file beside the target, then a rename).
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings

import numpy as np

from ..core._staged import file_path, write_texts
from ._measure import channel_names

FORMATS = (".json", ".gpl", ".csv")
#: Palette files are small; anything larger is not one (and is not read into memory).
MAX_BYTES = 64 << 20


def _ext(path: str) -> str:
    file_path(path, "palette file")  # not empty, no NUL
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"palette file {path!r}: unknown extension {ext or '(none)'!r}; use "
            f"{', '.join(FORMATS)}"
        )
    return ext


# --- writing --------------------------------------------------------------------------------


def text(path: str, palette) -> str:
    """The palette file's content for ``path``'s format (a ValueError if it cannot hold it)."""
    return {".json": _json_text, ".gpl": _gpl_text, ".csv": _csv_text}[_ext(path)](palette)


def write(path: str, palette) -> None:
    """Write the palette file whole or not at all (the same staged write as kquant's images)."""
    content = text(path, palette)
    if os.path.isdir(path):
        raise ValueError(f"palette file {path!r} is a folder")
    write_texts([(path, content)])


def _json_text(palette) -> str:
    return json.dumps(palette.to_dict(), indent=1, allow_nan=False) + "\n"


def _gpl_text(palette) -> str:
    names = palette.hex
    if palette.nchannels != 3:
        raise ValueError(
            f"a GIMP palette holds RGB colours; this palette has {palette.nchannels} channels"
        )
    if palette.color_space != "rgb":  # (rgb centres are rounded, as documented)
        warnings.warn(
            f"a GIMP palette holds 8-bit RGB colours: this {palette.color_space} palette's "
            f"colour space is not kept, so labels from the file differ; keep a .json or .csv "
            "palette to reuse it",
            UserWarning,
            stacklevel=4,
        )
    lines = ["GIMP Palette", f"Name: {palette.name or 'napari-kquant'}", "Columns: 0", "#"]
    lines.append(f"# napari-kquant, k={palette.k}, 8-bit RGB (label i = colour i)")
    for i, hex_ in enumerate(names, start=1):
        r, g, b = (int(hex_[j : j + 2], 16) for j in (1, 3, 5))
        lines.append(f"{r:3d} {g:3d} {b:3d}\tlabel {i} {hex_}")
    return "\n".join(lines) + "\n"


def _csv_text(palette) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    lab = palette.lab_centers is not None
    white = [] if palette.white is None else [repr(float(v)) for v in palette.white]
    writer.writerow(
        ["label", "hex", "dtype", *channel_names(palette.nchannels),
         *(f"white_{name}" for name in channel_names(len(white))),
         *(["L", "a", "b"] if lab else [])]
    )  # fmt: skip
    hexes = palette.hex or [""] * palette.k
    for i in range(palette.k):
        row = [i + 1, hexes[i], palette.dtype or "", *(repr(float(v)) for v in palette.centers[i])]
        row += white  # an "od" palette's white level, on every row as the dtype is
        if lab:
            row += [repr(float(v)) for v in palette.lab_centers[i]]
        writer.writerow(row)
    return out.getvalue()


# --- reading --------------------------------------------------------------------------------


def read(path: str, cls):
    ext = _ext(path)
    if not os.path.isfile(path):
        what = ("is a folder" if os.path.isdir(path) else
                "is not a file (a device or a pipe?)" if os.path.exists(path) else
                "does not exist")  # fmt: skip
        raise ValueError(f"palette file {path!r} {what}")
    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError(f"palette file {path!r} is too large to be a palette")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # Excel writes a BOM
            text = f.read()
    except UnicodeDecodeError:
        raise ValueError(f"palette file {path!r} is not text (UTF-8)") from None
    except OSError as e:
        raise ValueError(f"cannot read palette file {path!r}: {e.strerror}") from None
    try:
        return {".json": _from_json, ".gpl": _from_gpl, ".csv": _from_csv}[ext](text, cls)
    except (ValueError, TypeError, KeyError, OverflowError, csv.Error) as e:
        raise ValueError(f"palette file {path!r}: {e}") from None
    except RecursionError:
        raise ValueError(f"palette file {path!r}: nested too deeply to be a palette") from None


def _from_json(text, cls):
    try:
        record = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    return cls.from_dict(record)


def _no_constant(name):
    raise ValueError(f"not valid JSON ({name} is not a JSON number)")


def _from_gpl(text, cls):
    lines = text.splitlines()
    if not lines or lines[0].strip() != "GIMP Palette":
        raise ValueError("not a GIMP palette (the first line must be 'GIMP Palette')")
    name, colours = "", []
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("Name:"):
            name = stripped[5:].strip()
            continue
        if stripped.startswith("Columns:"):
            continue
        fields = stripped.split(None, 3)
        rgb = [int(v) for v in fields[:3] if v.isascii() and v.isdigit()]
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ValueError(f"line {number} is not 'R G B [name]' with values 0-255: {line!r}")
        colours.append(rgb)
    if not colours:
        raise ValueError("the GIMP palette has no colours")
    return cls(np.array(colours, np.float64), "rgb", dtype="uint8", name=name)


def _hex_only(rows, header, cls):
    """A CSV of ``#rrggbb`` colours only (and perhaps their labels): an 8-bit RGB palette."""
    if "label" in header:
        labels = [row[header.index("label")].strip() for row in rows[1:]]
        if labels != [str(i) for i in range(1, len(labels) + 1)]:
            raise ValueError("the label column must run 1, 2, ... in order")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} fields, the header has {len(header)}")
    return cls.from_colors([row[header.index("hex")].strip() for row in rows[1:]])


def _grey(hex_) -> bool:
    """``#rrggbb`` with r = g = b (or empty)."""
    return not hex_ or (len(hex_) == 7 and hex_[1:3] == hex_[3:5] == hex_[5:7])


def _from_csv(text, cls):
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise ValueError("a palette CSV needs a header row and at least one colour row")
    header = [cell.strip() for cell in rows[0]]
    lab = header[-3:] == ["L", "a", "b"]
    text_columns = ("label", "hex", "name", "dtype")
    white_columns = [i for i, name in enumerate(header) if name.startswith("white_")]
    value_columns = [
        i for i, name in enumerate(header) if name not in text_columns and i not in white_columns
    ]
    if lab:
        value_columns = value_columns[:-3]
    if not value_columns and "hex" in header and not (lab or white_columns):
        return _hex_only(rows, header, cls)
    if not value_columns:
        raise ValueError(f"no colour columns in the header {header}")
    at = header.index("hex") if "hex" in header else len(header)
    hexes = [row[at] for row in rows[1:] if at < len(row)]  # (short rows: refused below)
    grey = all(_grey(h.strip()) for h in hexes)  # a one-channel palette's hex column
    if (
        len(value_columns) != 3
        and any(h.strip() for h in hexes)
        and not (grey and len(value_columns) == 1)
    ):
        raise ValueError(
            f"the hex column holds RGB colours, but the CSV has {len(value_columns)} colour "
            f"columns ({', '.join(header[i] for i in value_columns)}): one is missing?"
        )
    centers, lab_centers = [], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} fields, the header has {len(header)}")
        try:
            centers.append([float(row[i]) for i in value_columns])
            if lab:
                lab_centers.append([float(v) for v in row[-3:]])
        except ValueError:
            raise ValueError(f"row {number} has a value that is not a number: {row}") from None
    if "label" in header:
        labels = [row[header.index("label")].strip() for row in rows[1:]]
        if labels != [str(i) for i in range(1, len(labels) + 1)]:
            raise ValueError("the label column must run 1, 2, ... in order")
    white = None
    if white_columns:  # by name: white_red, white_green, ... in the channels' order
        names = [f"white_{name}" for name in channel_names(len(value_columns))]
        if sorted(header[i] for i in white_columns) != sorted(names):
            raise ValueError(f"the white columns must be {', '.join(names)}")
        try:
            whites = {tuple(float(row[header.index(n)]) for n in names) for row in rows[1:]}
        except ValueError:
            raise ValueError("a white column holds a value that is not a number") from None
        if len(whites) != 1:
            raise ValueError("the white columns must hold the same level on every row")
        white = whites.pop()
    dtype = None
    if "dtype" in header:
        dtypes = {row[header.index("dtype")].strip() for row in rows[1:]}
        if len(dtypes) != 1:
            raise ValueError(f"the dtype column must hold one dtype, got {sorted(dtypes)}")
        dtype = dtypes.pop() or None
    if white is not None and lab:
        raise ValueError("a palette CSV has white columns (optical density) or L, a, b, not both")
    return cls(
        np.array(centers),
        "lab" if lab else "od" if white is not None else "rgb",
        lab_centers=np.array(lab_centers) if lab else None,
        white=white,
        dtype=dtype,
    )
