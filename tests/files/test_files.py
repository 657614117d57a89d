import os

import cv2
import numpy as np
import pytest

from napari_kquant.cli._main import main

from conftest import expected_block_labels, make_blocks, pillow_indices, read_rgb, write_rgb


def test_sixteen_bit_and_float_results_need_a_format_that_holds_them(tmp_path, capsys):
    image = (np.arange(32 * 32 * 3).reshape(32, 32, 3) * 50).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "in16.tif"), image)
    for out, ok in (("o.jpg", False), ("o.bmp", False), ("o.png", True), ("o.tif", True)):
        code = main(
            [str(tmp_path / "in16.tif"), "-k", "3", "--seed", "0", "-o", str(tmp_path / out)]
        )
        assert code == (0 if ok else 2), (out, capsys.readouterr().err)
        assert (tmp_path / out).exists() == ok
    written = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and len(np.unique(written.reshape(-1, 3), axis=0)) == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("truncated_jpeg", "the file is truncated or corrupt"),
        ("multipage_tiff", "a multi-page TIFF (2 pages)"),
        ("two_channel_tiff", "2 samples per pixel"),
        ("folder", "it is a folder"),
        ("empty", "not an image format"),
    ],
)
def test_corrupt_or_unsupported_inputs_are_refused(tmp_path, capsys, make, message):
    import tifffile

    path = tmp_path / {"truncated_jpeg": "t.jpg", "folder": "f.png", "empty": "e.png"}.get(
        make, "t.tif"
    )
    if make == "truncated_jpeg":
        _, buf = cv2.imencode(".jpg", make_blocks())
        path.write_bytes(buf.tobytes()[: len(buf) // 2])
    elif make == "multipage_tiff":
        tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8))
    elif make == "two_channel_tiff":
        tifffile.imwrite(path, np.zeros((8, 8, 2), np.uint8), photometric="minisblack",
                         planarconfig="contig")  # fmt: skip
    elif make == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"")
    assert main([str(path), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_zarr_store_of_ours_is_replaced_only_when_it_holds_nothing_else(tmp_path, capsys):
    write_rgb(tmp_path / "in.png", make_blocks())
    out = tmp_path / "s.zarr"
    argv = [str(tmp_path / "in.png"), "-k", "2", "--seed", "0", "-o", str(out)]
    assert main(argv) == 0
    (out / "notes.txt").write_text("mine")
    assert main(argv) == 2
    assert "it holds 'notes.txt', not kquant's" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    write_rgb(out / "img.png", make_blocks())  # an input inside our own store
    assert main([str(out / "img.png"), "-k", "2", "-o", str(out)]) == 2
    assert "is inside it" in capsys.readouterr().err and (out / "img.png").exists()
    (out / "img.png").unlink()
    (tmp_path / "link.zarr").symlink_to(out)
    assert main([*argv[:-1], str(tmp_path / "link.zarr")]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert (tmp_path / "link.zarr").is_symlink()


@pytest.mark.parametrize(
    ("make", "ok"),
    [("trailing_bytes_jpeg", True), ("cut_jpeg_with_end_marker", False),
     ("trailing_bytes_png", True), ("animated_gif", False), ("two_channel_tiff_as_png", False)],
)  # fmt: skip
def test_inputs_are_judged_by_content(tmp_path, capsys, make, ok):
    import tifffile
    from PIL import Image

    path = tmp_path / {"trailing_bytes_png": "in.png", "animated_gif": "in.gif"}.get(
        make, "in.jpg" if "jpeg" in make else "in.png"
    )
    _, jpeg = cv2.imencode(".jpg", make_blocks())
    jpeg = jpeg.tobytes()
    if make == "trailing_bytes_jpeg":  # a phone's Motion Photo: a video after the image
        path.write_bytes(jpeg + b"\0" * 100)
    elif make == "cut_jpeg_with_end_marker":
        path.write_bytes(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
    elif make == "trailing_bytes_png":
        path.write_bytes(cv2.imencode(".png", make_blocks())[1].tobytes() + b"x" * 32)
    elif make == "animated_gif":
        frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    else:
        tifffile.imwrite(path, np.zeros((8, 8, 2), np.uint8), photometric="minisblack",
                         planarconfig="contig")  # fmt: skip
    code = main([str(path), "-k", "2", "--seed", "0", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == (0 if ok else 2), err
    assert (tmp_path / "o.png").exists() == ok and err.count("\n") == (0 if ok else 1)


def test_float64_and_nan_results_round_trip_through_tiff(tmp_path):
    import tifffile

    image = np.random.default_rng(0).random((16, 16, 3))
    image[0, 0, 0] = np.nan
    tifffile.imwrite(tmp_path / "in.tif", image, photometric="rgb")
    argv = [str(tmp_path / "in.tif"), "-k", "3", "--seed", "0", "-o", str(tmp_path / "o.tif")]
    assert main(argv) == 0
    written = tifffile.imread(tmp_path / "o.tif")
    assert written.dtype == np.float64 and np.isnan(written[0, 0, 0])
    assert len(np.unique(written[1:].reshape(-1, 3), axis=0)) == 3


def test_int64_tiff_to_zarr(tmp_path):  # tifffile reads int64 as 'q', which zarr refused
    import tifffile
    import zarr

    image = (np.arange(16 * 16 * 3).reshape(16, 16, 3) % 7 * 1000).astype(np.int64)
    tifffile.imwrite(tmp_path / "in.tif", image, photometric="rgb")
    argv = [str(tmp_path / "in.tif"), "-k", "3", "--seed", "0", "-o", str(tmp_path / "o.zarr")]
    assert main(argv) == 0
    written = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[:]
    assert written.dtype == np.int64 and written.shape == image.shape
    assert len(np.unique(written.reshape(-1, 3), axis=0)) == 3


def test_jpeg_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(image).save(tmp_path / "in.jpg", exif=exif, quality=100)
    argv = [str(tmp_path / "in.jpg"), "-k", "2", "--seed", "0", "-o", str(tmp_path / "o.png")]
    assert main(argv) == 0
    assert read_rgb(tmp_path / "o.png").shape == (40, 20, 3)  # upright, as viewers show it


def test_zarr_output_replaces_only_its_own_store(tmp_path):
    import zarr

    write_rgb(tmp_path / "in.png", make_blocks())
    assert (
        main([str(tmp_path / "in.png"), "-k", "4", "--seed", "0", "-o", str(tmp_path / "q.zarr")])
        == 0
    )
    assert "napari_kquant" in zarr.open_array(tmp_path / "q.zarr", mode="r").attrs
    assert (
        main([str(tmp_path / "in.png"), "-k", "3", "--seed", "0", "-o", str(tmp_path / "q.zarr")])
        == 0
    )
    assert (
        len(np.unique(zarr.open_array(tmp_path / "q.zarr", mode="r")[:].reshape(-1, 3), axis=0))
        == 3
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "q.zarr"]


@pytest.mark.parametrize("kind", ["tiled", "unassociated_alpha", "planar"])
def test_tiffs_are_read_as_stored(tmp_path, kind):
    import tifffile

    from napari_kquant.files._files import read_image

    rng = np.random.default_rng(0)
    if kind == "unassociated_alpha":  # OpenCV would premultiply the colours by alpha
        data = rng.integers(0, 255, (16, 16, 4), np.uint8)
        tifffile.imwrite(tmp_path / "t.tif", data, photometric="rgb", extrasamples=["unassalpha"])
    elif kind == "tiled":
        data = rng.integers(0, 255, (64, 64, 3), np.uint8)
        tifffile.imwrite(tmp_path / "t.tif", data, tile=(16, 16), photometric="rgb")
    else:
        data = rng.integers(0, 255, (16, 16, 3), np.uint16)
        tifffile.imwrite(tmp_path / "t.tif", np.moveaxis(data, -1, 0), photometric="rgb",
                         planarconfig="separate")  # fmt: skip
    np.testing.assert_array_equal(read_image(str(tmp_path / "t.tif")), data)


def test_a_store_with_a_folder_or_link_of_the_users_is_not_replaced(tmp_path, capsys):
    write_rgb(tmp_path / "in.png", make_blocks())
    out = tmp_path / "s.zarr"
    argv = [str(tmp_path / "in.png"), "-k", "2", "--seed", "0", "-o", str(out)]
    assert main(argv) == 0
    (out / "notes").mkdir()
    assert main(argv) == 2 and "it holds 'notes'" in capsys.readouterr().err
    (out / "notes").rmdir()
    (out / "link").symlink_to(tmp_path)
    assert main(argv) == 2 and "it holds 'link'" in capsys.readouterr().err


def test_outputs_land_together_or_the_old_ones_come_back(tmp_path, monkeypatch):
    from napari_kquant.files import _files

    (tmp_path / "t1.png").write_bytes(b"the user's old t1")
    planned = _files.plan(
        [(str(tmp_path / "t1.png"), "output", np.uint8, 3),
         (str(tmp_path / "t2.png"), "labels", np.uint8, 1)], [],
    )  # fmt: skip
    real_replace, calls = os.replace, []

    def replace_failing_on_the_last(src, dst):
        calls.append(dst)
        if str(dst).endswith("t2.png"):
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(_files.os, "replace", replace_failing_on_the_last)
    with pytest.raises(_files.FileError, match="No space left on device"):
        _files.write_all(planned, [make_blocks(), expected_block_labels().astype(np.uint8)])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.png"]
    assert (tmp_path / "t1.png").read_bytes() == b"the user's old t1"


def test_cli_indexed_png_and_labels_keep_colours_and_label_values(tmp_path):
    src = tmp_path / "in.png"
    write_rgb(src, make_blocks())
    rgb, out, labels = tmp_path / "rgb.png", tmp_path / "out.png", tmp_path / "labels.png"
    base = [str(src), "-k", "4", "--seed", "1"]
    assert main([*base, "-o", str(rgb)]) == 0
    assert main([*base, "-o", str(out), "--labels", str(labels), "--indexed"]) == 0
    mode, indices, palette = pillow_indices(out)
    assert mode == "P" and len(palette) == 4
    np.testing.assert_array_equal(palette[indices], read_rgb(rgb))  # the same picture
    assert out.stat().st_size < rgb.stat().st_size
    mode, values, colours = pillow_indices(labels)
    assert mode == "P"
    np.testing.assert_array_equal(values, expected_block_labels())  # indices are the labels
    np.testing.assert_array_equal(colours[values], read_rgb(rgb))  # shown in cluster colours


def test_cli_gif_is_indexed_and_a_dithered_picture_uses_only_palette_colours(tmp_path):
    out, plain = tmp_path / "out.gif", tmp_path / "plain.png"
    args = ["-k", "8", "--seed", "0"]
    assert main([*args, "-o", str(out), "--dither", "floyd-steinberg"]) == 0
    assert main([*args, "-o", str(plain)]) == 0
    mode, indices, palette = pillow_indices(out)
    assert mode == "P"
    picture = palette[indices]
    undithered = read_rgb(plain)
    assert {tuple(c) for c in picture.reshape(-1, 3)} == {
        tuple(c) for c in undithered.reshape(-1, 3)
    }
    assert (picture != undithered).any(axis=-1).mean() > 0.1  # really dithered


def test_cli_indexed_tiff_labels_carry_the_colormap(tmp_path):
    import tifffile

    labels, picture = tmp_path / "labels.tif", tmp_path / "picture.tif"
    argv = ["-k", "5", "--seed", "0", "--labels", str(labels), "-o", str(picture), "--indexed"]
    assert main(argv) == 0
    with tifffile.TiffFile(labels) as tif:
        page = tif.pages[0]
        values, colormap = page.asarray(), page.colormap
        photometric = page.photometric
    assert photometric == tifffile.PHOTOMETRIC.PALETTE
    assert set(np.unique(values)) == {1, 2, 3, 4, 5}  # the label values themselves
    _, indices, palette = pillow_indices(picture)
    np.testing.assert_array_equal((colormap[:, values] // 257).transpose(1, 2, 0),
                                  palette[indices])  # fmt: skip


def test_a_palette_tiff_is_read_as_its_colours(tmp_path):
    import tifffile

    from napari_kquant.files._files import read_image

    indices = np.array([[0, 1], [2, 1]], np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :3] = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 255]]).T * 257
    tifffile.imwrite(tmp_path / "p.tif", indices, photometric="palette", colormap=colormap)
    image = read_image(str(tmp_path / "p.tif"))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(
        image, [[[10, 20, 30], [200, 100, 0]], [[0, 0, 255], [200, 100, 0]]]
    )


def test_a_labels_file_written_indexed_is_a_mask_by_its_values(tmp_path):
    half = np.zeros((20, 20, 3), np.uint8)
    half[:, 10:] = (200, 50, 50)
    src = tmp_path / "half.png"
    write_rgb(src, half)
    for ext in (".tif", ".png"):
        labels, out = tmp_path / f"l{ext}", tmp_path / f"o{ext}.png"
        assert (
            main([str(src), "-k", "2", "--seed", "1", "--labels", str(labels), "--indexed"]) == 0
        )
        from napari_kquant.files._files import read_image

        assert (read_image(str(labels), indices=True) != 0).all()  # label 1 is black, yet kept
        assert (
            main([str(src), "-k", "2", "--seed", "1", "--mask", str(labels), "-o", str(out)]) == 0
        )
        np.testing.assert_array_equal(read_rgb(out), half)  # every pixel clustered


def test_one_row_tiffs_are_read_as_rows(tmp_path):
    import tifffile

    from napari_kquant.files._files import read_image

    row = np.arange(120, dtype=np.uint8).reshape(1, 40, 3)
    tifffile.imwrite(tmp_path / "row.tif", row, photometric="rgb")
    np.testing.assert_array_equal(read_image(str(tmp_path / "row.tif")), row)
    tifffile.imwrite(tmp_path / "px.tif", np.array([[7]], np.uint8))
    np.testing.assert_array_equal(read_image(str(tmp_path / "px.tif")), [[7]])


def test_masked_pixels_are_transparent_in_an_indexed_picture(tmp_path):
    from PIL import Image

    gray = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[:, 20:] = 255
    src, m, out = tmp_path / "g.png", tmp_path / "m.png", tmp_path / "q.gif"
    cv2.imwrite(str(src), gray)
    cv2.imwrite(str(m), mask)
    assert main([str(src), "-k", "8", "--seed", "1", "--mask", str(m), "-o", str(out)]) == 0
    with Image.open(out) as im:
        indices, transparent = np.asarray(im), im.info["transparency"]
    assert (indices[:, :20] == transparent).all() and (indices[:, 20:] != transparent).all()


def test_formats_suggested_for_300_labels_can_hold_them(tmp_path, capsys):
    write_rgb(tmp_path / "a.png", make_blocks())
    argv = [str(tmp_path / "a.png"), "-k", "300", "-o", str(tmp_path / "o.png")]
    assert main([*argv, "--labels", str(tmp_path / "l.bmp")]) == 2
    err = capsys.readouterr().err
    assert (
        ".bmp cannot hold 1-channel uint16 values (use .pgm, .png, .pnm, .tif, .tiff, .zarr)"
        in err
    )
    for suggested in (".pgm", ".png", ".tif"):  # each one is taken
        assert main([*argv, "--labels", str(tmp_path / f"l{suggested}")]) == 0, suggested


def test_tiff_outputs_declare_alpha_and_decode_anywhere(tmp_path, capsys):
    import tifffile

    rgba = np.dstack([make_blocks(), np.full((32, 32), 200, np.uint8)])
    rgba[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / "in.png"), rgba[..., [2, 1, 0, 3]])
    argv = [str(tmp_path / "in.png"), "-k", "4", "--seed", "0", "-o", str(tmp_path / "o.tif")]
    assert main(argv) == 0
    capsys.readouterr()
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:  # no imagecodecs needed (zlib)
        page = tif.pages[0]
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
        written = page.asarray()
    assert written.shape == (32, 32, 4) and written[0, 0, 3] == 0
    np.testing.assert_array_equal(written[..., 3], rgba[..., 3])
    from PIL import Image

    with Image.open(tmp_path / "o.tif") as im:  # Pillow reads the same RGBA
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), written)
