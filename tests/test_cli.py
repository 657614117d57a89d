import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from napari_kquant._cli import main

from conftest import expected_block_labels, make_blocks


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def test_cli_writes_quantized_and_labels_in_rgb_order(tmp_path, capsys):
    src, out, labels = tmp_path / "in.png", tmp_path / "out.png", tmp_path / "labels.tif"
    write_rgb(src, make_blocks())
    assert main([str(src), "-k", "4", "-o", str(out), "--labels", str(labels), "--seed", "1"]) == 0
    written = read_rgb(out)
    lab = cv2.imread(str(labels), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(lab, expected_block_labels())
    # the bright-blue block stays blue: channels were not swapped on the way in or out
    assert written[0, 0, 2] > 150 and written[0, 0, 0] < 60
    line = capsys.readouterr().out
    assert "in.png: 32x32 RGB uint8, k=4" in line and "seed 1" in line and "compactness" in line
    # written with the permissions of any new file, not the private ones of a temporary file
    assert out.stat().st_mode & 0o777 == src.stat().st_mode & 0o777


def test_cli_sixteen_bit_grayscale_and_mask(tmp_path):
    image = np.zeros((20, 30), np.uint16)
    image[:, 15:] = 40000
    mask = np.zeros((20, 30), np.uint8)
    mask[:10] = 255
    src, m, out = tmp_path / "g.png", tmp_path / "m.png", tmp_path / "o.png"
    cv2.imwrite(str(src), image)
    cv2.imwrite(str(m), mask)
    argv = [str(src), "-k", "2", "--mask", str(m), "-o", str(out), "--sample", "all"]
    assert main([*argv, "--seed", "0"]) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, image)


def test_cli_without_image_uses_the_bundled_photo(tmp_path, capsys):
    out = tmp_path / "astronaut-k3.png"
    assert main(["-k", "3", "-o", str(out), "--seed", "0"]) == 0
    assert read_rgb(out).shape == (512, 512, 3)
    assert len(np.unique(read_rgb(out).reshape(-1, 3), axis=0)) == 3
    assert "astronaut.png: 512x512 RGB uint8, k=3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{d}/missing.png", "-o", "{d}/o.png"], "cannot read '{d}/missing.png': no such file"),
        (["{d}/notimage.png", "-o", "{d}/o.png"], "not an image format OpenCV can decode"),
        (["{d}/in.png", "-o", "{d}/in.png"], "refusing to write output '{d}/in.png': it is an input"),
        (["{d}/in.png", "-o", "{d}/nodir/o.png"], "cannot write output '{d}/nodir/o.png': folder"),
        (["{d}/in.png", "-o", "{d}/o.unknown"], "'{d}/o.unknown': unknown extension"),
        (["{d}/in.png", "-k", "0", "-o", "{d}/o.png"], "k must be between 1 and 65535, got 0"),
        (["{d}/in.png", "-k", "5000", "-o", "{d}/o.png"], "k=5000 is larger than the number"),
        (["{d}/in.png", "--max-iter", "500", "-o", "{d}/o.png"], "max_iter must be between"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    src = tmp_path / "in.png"
    write_rgb(src, make_blocks())
    (tmp_path / "notimage.png").write_text("hello")
    before = src.read_bytes()
    argv = [a.format(d=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kquant: error: ")
    assert message.format(d=tmp_path) in err
    assert src.read_bytes() == before  # the input is never touched
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert leftovers == []  # no half-written temporary file


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--criteria", "nope", "-o", "x.png"], "invalid choice: 'nope'"),
        (["-k", "many", "-o", "x.png"], "invalid int value: 'many'"),
        (["--sample", "lots", "-o", "x.png"], "must be a whole number or 'all', got 'lots'"),
        (["--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_cli_bad_option_value_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("kquant: error:")


def test_python_m_runs_the_console_script(tmp_path):
    out = tmp_path / "o.png"
    cmd = [sys.executable, "-m", "napari_kquant", "-k", "2", "-o", str(out), "--seed", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "k=2" in proc.stdout


def test_cli_zarr_in_and_out_stays_chunked(tmp_path, capsys):
    import zarr

    image = np.tile(make_blocks(), (8, 8, 1))  # 256 x 256: more pixels than the default sample
    src = tmp_path / "in.zarr"
    zarr.open_array(src, mode="w", shape=image.shape, chunks=(64, 64, 3), dtype="u1")[:] = image
    out, labels = tmp_path / "q.zarr", tmp_path / "l.zarr"
    argv = [str(src), "-k", "4", "-o", str(out), "--labels", str(labels), "--seed", "1"]
    assert main(argv) == 0
    written = zarr.open_array(labels, mode="r")
    assert written.chunks == (64, 64)
    np.testing.assert_array_equal(written[:], np.tile(expected_block_labels(), (8, 8)))
    quantized = zarr.open_array(out, mode="r")
    assert quantized.shape == image.shape and quantized.dtype == np.uint8
    assert "in.zarr: 256x256 RGB uint8, k=4" in capsys.readouterr().out
    assert main(argv) == 0  # writing again replaces the folders whole
    np.testing.assert_array_equal(zarr.open_array(labels, mode="r")[:], written[:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "l.zarr", "q.zarr"]
    assert labels.stat().st_mode & 0o777 == src.stat().st_mode & 0o777
