"""The installed package: import cost, manifest discovery, what a wheel ships."""

import subprocess
import sys
from pathlib import Path

HEAVY = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "numba", "dask")


def test_import_costs_numpy_and_cv2_only():
    code = f"import sys, napari_kquant; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_npe2_discovers_the_installed_plugin():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-kquant")
    assert manifest.display_name == "K-means quantization"
    assert {s.key for s in manifest.contributions.sample_data} >= {"astronaut", "slide",
                                                                    "timelapse"}  # fmt: skip


def test_npe2_validate_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-kquant", "--imports"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid!" in proc.stdout


def test_png_to_png_run_loads_no_dask_zarr_or_napari(tmp_path):
    code = (
        "import sys; from napari_kquant.cli._main import main; "
        f"status = main(['-k', '3', '--seed', '0', '-o', {str(tmp_path / 'o.png')!r}]); "
        "print(status, sorted(m for m in ('dask', 'zarr', 'napari', 'qtpy', 'tqdm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def _check_dist(tmp_path, wheel_names, sdist_names, description=None, entry_points=None):
    """Run scripts/check_dist.py on a made-up sdist and wheel holding these files."""
    import tarfile
    import zipfile

    root = Path(__file__).resolve().parents[1]
    wheel = tmp_path / "napari_kquant-1.0-py3-none-any.whl"
    info = "napari_kquant-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in wheel_names:
            z.writestr(name, "")
        z.writestr(f"{info}/METADATA", (
            "Metadata-Version: 2.4\nName: napari-kquant\nClassifier: Framework :: napari\n"
            "Requires-Python: >=3.11\nDescription-Content-Type: text/markdown\n\n"
            + (description or "![shot](https://example.org/a.png) [m](mailto:a@b.c)\n")
        ))  # fmt: skip
        if entry_points != "":
            z.writestr(f"{info}/entry_points.txt", entry_points or (
                "[console_scripts]\nkquant = napari_kquant.cli._main:main\n\n"
                "[napari.manifest]\nnapari-kquant = napari_kquant:napari.yaml\n"
            ))  # fmt: skip
    sdist = tmp_path / "napari_kquant-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in sdist_names:
            path = tmp_path / "member"
            path.write_text("")
            tar.add(path, f"napari_kquant-1.0/{name}")
    script = root / "scripts" / "check_dist.py"
    return subprocess.run([sys.executable, script, sdist, wheel], capture_output=True, text=True)


LAYERS = ("core", "finish", "engine", "analysis", "files", "cli", "viewer")
SDIST = ["pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO",
         "src/napari_kquant/__init__.py", "src/napari_kquant/napari.yaml",
         "src/napari_kquant/data/astronaut.png", "src/napari_kquant/data/slide.png",
         "tests/conftest.py", "tests/engine/test_quantize.py",
         "tests/viewer/test_widget.py"]  # fmt: skip
WHEEL = ["napari_kquant/__init__.py", "napari_kquant/napari.yaml",
         "napari_kquant/data/astronaut.png", "napari_kquant/data/slide.png",
         "napari_kquant/_version.py",
         *(f"napari_kquant/{layer}/__init__.py" for layer in LAYERS)]  # fmt: skip


def test_release_check_refuses_stray_or_missing_files(tmp_path):
    good = _check_dist(tmp_path, WHEEL, SDIST)
    assert good.returncode == 0, good.stderr
    stray = _check_dist(tmp_path, [*WHEEL, "napari_kquant/__pycache__/x.pyc"], SDIST)
    assert stray.returncode == 1 and "stray" in stray.stderr
    benchmarks = _check_dist(tmp_path, [*WHEEL, "benchmarks/bench.py"], SDIST)
    assert benchmarks.returncode == 1 and "benchmarks/bench.py" in benchmarks.stderr
    no_engine = _check_dist(tmp_path, [n for n in WHEEL if "/engine/" not in n], SDIST)
    assert no_engine.returncode == 1 and "napari_kquant/engine/__init__.py" in no_engine.stderr
    no_manifest = _check_dist(tmp_path, WHEEL[:1], SDIST)
    assert no_manifest.returncode == 1 and "napari.yaml" in no_manifest.stderr
    no_tests = _check_dist(tmp_path, WHEEL, [n for n in SDIST if not n.startswith("tests/")])
    assert no_tests.returncode == 1 and "tests/conftest.py" in no_tests.stderr
    for relative in ('<img src="docs/shot.png">', "![s][s]\n\n[s]: docs/shot.png",
                     "![s](<docs/my shot.png>)"):  # fmt: skip
        broken = _check_dist(tmp_path, WHEEL, SDIST, description=relative)
        assert broken.returncode == 1 and "relatively" in broken.stderr, relative
    swapped = "[console_scripts]\nnapari-kquant = napari_kquant:napari.yaml\n"
    wrong = _check_dist(tmp_path, WHEEL, SDIST, entry_points=swapped)
    assert wrong.returncode == 1 and "napari.manifest entry point" in wrong.stderr
    missing = _check_dist(tmp_path, WHEEL, SDIST, entry_points="")
    assert missing.returncode == 1 and "no entry_points.txt" in missing.stderr
