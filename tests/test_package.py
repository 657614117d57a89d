"""The installed package: import cost, manifest discovery, what a wheel ships."""

import subprocess
import sys
import zipfile

import pytest

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
    assert {s.key for s in manifest.contributions.sample_data} >= {"astronaut", "timelapse"}


def test_npe2_validate_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-kquant", "--imports"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid!" in proc.stdout


@pytest.mark.slow
def test_wheel_ships_the_manifest_and_is_discovered(tmp_path):
    """Build a wheel, install it alone into a folder, and let npe2 find it there."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
        check=True,
        cwd=_project_root(),
    )
    (wheel,) = wheels.glob("napari_kquant-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_kquant/napari.yaml" in names
    assert "napari_kquant/data/astronaut.png" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            wheel,
        ],
        check=True,
    )
    code = (
        "from npe2 import PluginManager; pm = PluginManager(); pm.discover(); "
        "print(pm.get_manifest('napari-kquant').package_metadata.version); "
        "import napari_kquant; print(napari_kquant.__file__)"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    version, module_file = out.stdout.split()
    assert version == "0.1.0"
    assert module_file.startswith(str(target))


def _project_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_png_to_png_run_loads_no_dask_zarr_or_napari(tmp_path):
    code = (
        "import sys; from napari_kquant._cli import main; "
        f"status = main(['-k', '3', '--seed', '0', '-o', {str(tmp_path / 'o.png')!r}]); "
        "print(status, sorted(m for m in ('dask', 'zarr', 'napari', 'qtpy', 'tqdm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"
