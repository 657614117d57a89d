"""Many files through one palette (the dock's "Apply to many…"): kquant --out-dir's rules."""

import os

import cv2
import numpy as np
import pytest

from napari_kquant import fit
from napari_kquant.files._batch import Stopped, images_in, plan_batch, run_batch
from napari_kquant.files._files import FileError

from conftest import expected_block_labels, make_blocks, read_rgb, snapshot, write_rgb


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        write_rgb(images / f"b{seed}.png", make_blocks(seed=seed))
    (images / "notes.txt").write_text("not an image")
    return images


def test_a_folder_is_applied_file_by_file_with_one_table(folder, tmp_path):
    palette = fit(make_blocks(), 4, channel_axis=-1, seed=1)
    before = snapshot(folder)
    out = tmp_path / "out"
    batch = plan_batch(images_in(folder), out, palette.k)
    assert [os.path.basename(p) for p in batch.images] == ["b0.png", "b1.png", "b2.png"]
    result = run_batch(batch, palette)
    assert result.failed == {}
    for seed in range(3):
        labels = cv2.imread(str(out / f"b{seed}-labels.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(labels, expected_block_labels())
        direct = palette.apply(make_blocks(seed=seed), channel_axis=-1)
        np.testing.assert_array_equal(read_rgb(out / f"b{seed}.png"), direct.quantized)
    table = result.table
    assert list(table.columns) == ["file", "label", "hex", "count", "share", "area", "area_unit"]
    assert table["file"].tolist() == [f"b{s}.png" for s in range(3) for _ in range(5)]
    assert table["count"].tolist() == [0, 256, 256, 256, 256] * 3
    assert snapshot(folder) == before  # the inputs are untouched


def test_a_bad_file_is_reported_and_the_others_are_written(folder, tmp_path):
    (folder / "b1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    palette = fit(make_blocks(), 4, channel_axis=-1, seed=1)
    result = run_batch(plan_batch(images_in(folder), tmp_path / "out", 4), palette)
    assert list(result.failed) == [str(folder / "b1.png")]
    assert sorted(os.listdir(tmp_path / "out")) == [
        "b0-labels.png", "b0.png", "b2-labels.png", "b2.png"
    ]  # fmt: skip


def test_outputs_that_would_overwrite_an_input_are_refused_before_any_work(folder, tmp_path):
    before = snapshot(folder)
    with pytest.raises(FileError, match=r"b0\.png"):
        plan_batch(images_in(folder), folder, 4)  # the output folder is the input folder
    assert snapshot(folder) == before
    other = tmp_path / "b0.png"
    write_rgb(other, make_blocks())
    with pytest.raises(
        FileError, match=r"b0.png' \(its quantized picture\) would both be written to '.*b0\.png'"
    ):
        plan_batch([folder / "b0.png", other], tmp_path / "out", 4)
    with pytest.raises(FileError, match="is a file"):
        plan_batch(images_in(folder), folder / "notes.txt", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileError, match="holds no image file"):
        images_in(tmp_path / "empty")
    with pytest.raises(FileError, match="cannot make the output folder"):
        plan_batch(images_in(folder), tmp_path / "no" / "such" / "place", 4)
    assert not (tmp_path / "out").exists()


def test_a_stopped_batch_leaves_no_folder_it_made(folder, tmp_path):
    palette = fit(make_blocks(), 4, channel_axis=-1, seed=1)
    batch = plan_batch(images_in(folder), tmp_path / "out", 4)
    with pytest.raises(Stopped):
        run_batch(batch, palette, stop=lambda: True)
    assert not (tmp_path / "out").exists()
    seen = []
    with pytest.raises(Stopped):
        run_batch(
            batch, palette, progress=lambda f, m: seen.append(m), stop=lambda: len(seen) >= 2
        )
    assert seen == ["1 of 3 images", "2 of 3 images"]
    assert sorted(os.listdir(tmp_path / "out")) == [
        "b0-labels.png",
        "b0.png",
        "b1-labels.png",
        "b1.png",
    ]  # fmt: skip  (the files written before the stop stay, whole)


def test_a_batch_never_replaces_a_file_in_the_output_folder(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b1.png").write_bytes(b"the user's own file")
    with pytest.raises(FileError, match="exists: choose an empty or new output folder"):
        plan_batch(images_in(folder), out, 4)
    (out / "b1.png").unlink()
    (out / "b1.tif").write_bytes(b"also theirs")  # where a float image would be written
    with pytest.raises(FileError, match=r"b1\.tif"):
        plan_batch(images_in(folder), out, 4)
    assert (out / "b1.tif").read_bytes() == b"also theirs"
