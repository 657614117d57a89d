"""Check what the built sdist and wheel hold (run by scripts/release.sh).

    python scripts/check_dist.py dist/napari_kquant-X.tar.gz dist/napari_kquant-X-py3-none-any.whl

The sdist must hold the sources, the tests and what builds them; the wheel the package with its
napari manifest and sample data, its console script and napari entry point, and nothing stray
(no tests, benchmarks, caches or compiled files). Prints one line per artefact; exits 1 on the
first problem.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile

#: The package's subpackages (its layers): each must be in the wheel.
LAYERS = ("core", "finish", "engine", "analysis", "files", "cli", "viewer")
STRAY = re.compile(
    r"(__pycache__|\.pyc$|\.pyo$|\.so$|\.egg-info/|\.ipynb_checkpoints|\.DS_Store|(^|/)\.venv/"
    r"|(^|/)build/|\.pytest_cache|\.ruff_cache|\.hypothesis)"
)


def fail(message: str) -> None:
    print(f"check_dist: {message}", file=sys.stderr)
    sys.exit(1)


def check_sdist(path: str) -> None:
    with tarfile.open(path) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    need = ["pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO",
            "src/napari_kquant/__init__.py", "src/napari_kquant/napari.yaml",
            "src/napari_kquant/data/astronaut.png", "src/napari_kquant/data/slide.png",
            "tests/conftest.py",
            "tests/engine/test_quantize.py", "tests/viewer/test_widget.py"]  # fmt: skip
    missing = [name for name in need if name not in names]
    if missing:
        fail(f"{path}: the sdist lacks {missing}")
    # setuptools' own metadata folder belongs in an sdist; nothing else of the kind does
    own = "src/napari_kquant.egg-info/"
    stray = [name for name in names if STRAY.search(name) and not name.startswith(own)]
    if stray:
        fail(f"{path}: the sdist holds stray files {stray[:10]}")
    tests = sum(name.startswith("tests/") and name.endswith(".py") for name in names)
    print(f"sdist: {len(names)} files, {tests} test modules, no stray files")


def check_wheel(path: str) -> None:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if info is None:
            fail(f"{path}: the wheel has no .dist-info/METADATA")
        metadata = wheel.read(info).decode()
        points = info.replace("METADATA", "entry_points.txt")
        if points not in names:
            fail(f"{path}: the wheel has no entry_points.txt (console script, napari manifest)")
        entry_points = _sections(wheel.read(points).decode())
    need = ["napari_kquant/__init__.py", "napari_kquant/napari.yaml",
            "napari_kquant/data/astronaut.png", "napari_kquant/data/slide.png",
            "napari_kquant/_version.py",
            *(f"napari_kquant/{layer}/__init__.py" for layer in LAYERS)]  # fmt: skip
    missing = [name for name in need if name not in names]
    if missing:
        fail(f"{path}: the wheel lacks {missing}")
    outside = [n for n in names if not n.startswith(("napari_kquant/", info.split("/")[0]))]
    stray = [name for name in names if STRAY.search(name)]
    if outside or stray:
        fail(f"{path}: the wheel holds stray files {(outside + stray)[:10]}")
    if entry_points.get("napari.manifest", {}).get("napari-kquant") != "napari_kquant:napari.yaml":
        fail(f"{path}: no napari.manifest entry point napari-kquant = napari_kquant:napari.yaml")
    if entry_points.get("console_scripts", {}).get("kquant") != "napari_kquant.cli._main:main":
        fail(f"{path}: no kquant console script")
    for line in ("Classifier: Framework :: napari", "Requires-Python: >=3.11",
                 "Description-Content-Type: text/markdown"):  # fmt: skip
        if line not in metadata:
            fail(f"{path}: METADATA lacks {line!r}")
    description = metadata.split("\n\n", 1)[1] if "\n\n" in metadata else ""
    links = [
        *re.findall(r"\]\(\s*<?([^)>\s]+)", description),  # [text](link), ![alt](<link>)
        *re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", description, re.M),  # [ref]: link
        *re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", description),  # HTML
    ]
    relative = [link for link in links if not re.match(r"(https?:|mailto:|#)", link)]
    if relative:
        fail(f"{path}: the long description links {relative} relatively: broken off-site")
    print(f"wheel: {len(names)} files, manifest, sample data and entry points, nothing stray")


def _sections(text: str) -> dict[str, dict[str, str]]:
    """entry_points.txt as {section: {name: value}}."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            name, value = (part.strip() for part in line.split("=", 1))
            current[name] = value
    return sections


if __name__ == "__main__":
    sdists = [a for a in sys.argv[1:] if a.endswith(".tar.gz")]
    wheels = [a for a in sys.argv[1:] if a.endswith(".whl")]
    if len(sdists) != 1 or len(wheels) != 1:
        fail(f"give one sdist and one wheel, got {sys.argv[1:]}")
    check_sdist(sdists[0])
    check_wheel(wheels[0])
