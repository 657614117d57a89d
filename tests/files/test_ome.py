"""Whole slides: OME-Zarr and pyramidal OME-TIFF in (lazily, with pixel sizes), an NGFF image
with its cluster labels out, valid by ome-zarr-models and read back by napari-ome-zarr."""

import os

import numpy as np
import pytest
import zarr

from napari_kquant import quantize
from napari_kquant.files._ome import open_image
from napari_kquant.files._ome_write import write_ome_zarr

from conftest import kquant, snapshot


def photo_like(side=512, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([np.sin(5 * x + c) * np.cos(3 * y - c) for c in (0, 1, 2)], -1) * 90 + 128
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def write_ome_tiff(path, image, levels=3, size=0.25):
    import tifffile

    with tifffile.TiffWriter(path) as tw:
        tw.write(image, subifds=levels - 1, tile=(128, 128), photometric="rgb",
                 metadata={"axes": "YXS", "PhysicalSizeX": size, "PhysicalSizeY": size,
                           "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"})  # fmt: skip
        for i in range(1, levels):
            tw.write(image[:: 2**i, :: 2**i], subfiletype=1, tile=(128, 128), photometric="rgb")


def write_ome_zarr_input(path, image, version):
    """A (c, y, x) OME-Zarr pyramid written by ome-zarr-py in NGFF 0.4 or 0.5."""
    from ome_zarr.format import FormatV04, FormatV05

    from napari_kquant.files._ome_write import writer

    write_multiscale, _ = writer()

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    chw = np.moveaxis(image, -1, 0)
    pyramid = [chw[:, :: 2**i, :: 2**i] for i in range(3)]
    axes = [{"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]  # fmt: skip
    write_multiscale(pyramid, root, fmt=fmt, axes=axes, scale={"c": 1.0, "y": 0.5, "x": 0.5})


def test_a_pyramidal_ome_tiff_opens_lazily_with_its_pixel_size(tmp_path):
    import dask.array as da

    image = photo_like()
    write_ome_tiff(tmp_path / "s.ome.tif", image)
    with open_image(tmp_path / "s.ome.tif") as opened:
        assert opened.axes == "yxc" and opened.channel_axis == 2
        shapes = [level.shape for level in opened.levels]
        assert shapes == [(512, 512, 3), (256, 256, 3), (128, 128, 3)]
        assert all(isinstance(level, da.Array) for level in opened.levels)
        assert opened.pixel_size == (0.25, 0.25) and opened.unit == "µm"
        assert opened.scales[2][:2] == (1.0, 1.0)  # four times coarser
        np.testing.assert_array_equal(opened.levels[1].compute(), image[::2, ::2])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ome_zarr_opens_lazily_in_either_version(tmp_path, version):
    image = photo_like()
    write_ome_zarr_input(tmp_path / "in.ome.zarr", image, version)
    opened = open_image(tmp_path / "in.ome.zarr")
    assert opened.axes == "cyx" and opened.channel_axis == 0
    assert [level.shape for level in opened.levels] == [
        (3, 512, 512),
        (3, 256, 256),
        (3, 128, 128),
    ]
    assert opened.scales[1] == (1.0, 1.0, 1.0) and opened.pixel_size == (0.5, 0.5)
    np.testing.assert_array_equal(np.moveaxis(opened.levels[0].compute(), 0, -1), image)


def test_results_are_written_as_a_valid_ngff_image_with_coloured_labels(tmp_path):
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    image = photo_like()
    write_ome_tiff(tmp_path / "s.ome.tif", image)
    out = tmp_path / "out.ome.zarr"
    with open_image(tmp_path / "s.ome.tif") as opened:
        result = quantize(opened.image, 5, channel_axis=opened.channel_axis, seed=0)
        counts = write_ome_zarr(out, result, opened, lambda c: [{"count": int(n)} for n in c])
    root = zarr.open_group(str(out), mode="r")
    Image.from_zarr(root)  # raises on anything NGFF 0.5 does not allow
    label = ImageLabel.from_zarr(root["labels/clusters"])
    colours = [c.rgba for c in label.attributes.ome.image_label.colors]
    hexes = ["#{:02x}{:02x}{:02x}".format(*rgba[:3]) for rgba in colours]
    assert hexes == result.palette.hex
    multiscales = root.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscales["axes"]] == ["c", "y", "x"]
    assert multiscales["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.5]
    image_levels = [image[:: 2**i, :: 2**i] for i in range(3)]
    for i, level in enumerate(image_levels):  # every level: the palette applied to it
        path = multiscales["datasets"][i]["path"]
        again = result.palette.apply(level, channel_axis=-1)
        np.testing.assert_array_equal(np.moveaxis(root[path][:], 0, -1), again.quantized)
        np.testing.assert_array_equal(root[f"labels/clusters/{path}"][:], again.labels)
    finest = root["labels/clusters/s0"][:]
    np.testing.assert_array_equal(counts, np.bincount(finest.ravel(), minlength=6)[1:])
    props = root["labels/clusters"].attrs["ome"]["image-label"]["properties"]
    assert [p["count"] for p in props] == counts.tolist()
    assert [p["label-value"] for p in props] == [1, 2, 3, 4, 5]


def test_napari_ome_zarr_reads_the_labels_in_the_palettes_colours(tmp_path):
    from napari_ome_zarr import napari_get_reader

    image = photo_like(256)
    result = quantize(image, 4, channel_axis=-1, seed=0)
    write_ome_zarr(tmp_path / "out.ome.zarr", result)
    layers = napari_get_reader(str(tmp_path / "out.ome.zarr"))(str(tmp_path / "out.ome.zarr"))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    data, options, _ = layers[1]
    np.testing.assert_array_equal(np.asarray(data[0]), result.labels)
    shown = {int(v): np.round(np.array(c[:3]) * 255).astype(int).tolist()
             for v, c in options["colormap"].items() if int(v) > 0}  # fmt: skip
    expected = {i + 1: [int(h[j : j + 2], 16) for j in (1, 3, 5)]
                for i, h in enumerate(result.palette.hex)}  # fmt: skip
    assert shown == expected


def test_kquant_turns_a_slide_into_an_ome_zarr_and_a_table_in_square_micrometres(tmp_path):
    write_ome_tiff(tmp_path / "s.ome.tif", photo_like())
    before = snapshot(tmp_path)
    done = kquant("s.ome.tif", "-k", "4", "--seed", "0", "-o", "out.ome.zarr",
                  "--table", "t.csv", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "512x512 yxc, 3 level(s), k=4" in done.stdout
    assert {k: v for k, v in snapshot(tmp_path).items() if str(k) in ("s.ome.tif",)} == before
    import pandas as pd

    table = pd.read_csv(tmp_path / "t.csv")
    assert table["area_unit"].iloc[1] == "µm²"
    assert table["area"].iloc[1:].sum() == pytest.approx(512 * 512 * 0.25 * 0.25)
    labels = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")["labels/clusters/s0"][:]
    assert labels.shape == (512, 512) and set(np.unique(labels)) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["-o", "x.png"], "is a pyramid: write it as -o NAME.ome.zarr"),
        (["-o", "o.ome.zarr", "--labels", "l.png"], "--labels does not go with a whole slide"),
        (["-o", "o.ome.zarr", "--mask", "s.ome.tif"], "--mask does not go with a whole slide"),
        (["-o", "exists.ome.zarr"], "exists: choose a new path"),
        (["-o", "s.ome.tif.ome.zarr/.."], "is a pyramid"),
        (["-o", "nowhere/o.ome.zarr"], "does not exist"),
        ([], "give -o NAME.ome.zarr"),
        (["-o", "o.ome.zarr", "-k", "0"], "k must be"),
    ],
)  # fmt: skip
def test_kquant_refuses_what_a_slide_cannot_take_before_any_work(tmp_path, argv, said):
    write_ome_tiff(tmp_path / "s.ome.tif", photo_like(256), levels=2)
    (tmp_path / "exists.ome.zarr").mkdir()
    before = snapshot(tmp_path)
    done = kquant("s.ome.tif", *argv, cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "exists.ome.zarr", "s.ome.tif"]  # fmt: skip


def test_a_failed_write_leaves_no_ome_zarr(tmp_path, monkeypatch):
    import dask

    result = quantize(photo_like(256), 4, channel_axis=-1, seed=0)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dask, "compute", broken)
    with pytest.raises(ValueError, match=r"cannot write '.*out.ome.zarr': No space left"):
        write_ome_zarr(tmp_path / "out.ome.zarr", result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["missing", "plain zarr array", "not a tiff"])
def test_open_image_names_what_it_cannot_open(tmp_path, make):
    path = tmp_path / "x.tif"
    if make == "plain zarr array":
        path = tmp_path / "a.zarr"
        zarr.open_array(str(path), mode="w", shape=(4, 4), dtype="u1")
    elif make == "not a tiff":
        path.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"cannot (read|open) '.*"):
        open_image(path)


@pytest.mark.slow
def test_kquant_runs_a_slide_on_a_dask_scheduler_with_the_same_result(tmp_path):
    distributed = pytest.importorskip("distributed")
    write_ome_tiff(tmp_path / "s.ome.tif", photo_like())
    argv = ["s.ome.tif", "-k", "5", "--seed", "3"]
    here = kquant(*argv, "-o", "here.ome.zarr", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        there = kquant(*argv, "-o", "there.ome.zarr", "--scheduler", cluster.scheduler_address,
                       cwd=tmp_path)  # fmt: skip
        assert there.returncode == 0, there.stderr
        done = cluster.scheduler.task_prefixes  # the work did run on the cluster's workers
        assert done, "no task reached the scheduler"
    a = zarr.open_group(str(tmp_path / "here.ome.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "there.ome.zarr"), mode="r")
    for path in ("s0", "s1", "s2", "labels/clusters/s0", "labels/clusters/s2"):
        np.testing.assert_array_equal(a[path][:], b[path][:])


def test_kquant_names_a_scheduler_it_cannot_reach(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")  # dask's own setting
    write_ome_tiff(tmp_path / "s.ome.tif", photo_like(256), levels=2)
    done = kquant("s.ome.tif", "-o", "o.ome.zarr", "--scheduler", "tcp://127.0.0.1:9",
                  cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("kquant: error: --scheduler 'tcp://127.0.0.1:9': cannot connect")
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.tif"]


def test_one_image_gets_a_pyramid_built_by_halving(tmp_path):
    from conftest import write_rgb

    image = np.concatenate([photo_like(512, seed) for seed in range(5)], axis=1)[:, :2500]
    write_rgb(tmp_path / "wide.png", image)  # 2500 x 512: halved to 1250 x 256, 625 x 128
    done = kquant("wide.png", "-k", "4", "--seed", "0", "-o", "w.ome.zarr",
                  "--save-palette", "p.json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    root = zarr.open_group(str(tmp_path / "w.ome.zarr"), mode="r")
    datasets = root.attrs["ome"]["multiscales"][0]["datasets"]
    shapes = [root[d["path"]].shape for d in datasets]
    assert shapes == [(3, 512, 2500), (3, 256, 1250), (3, 128, 625)]
    assert datasets[2]["coordinateTransformations"][0]["scale"] == [1.0, 4.0, 4.0]
    from napari_kquant import Palette

    palette = Palette.load(tmp_path / "p.json")
    halved = np.rint(image.reshape(256, 2, 1250, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    for level, picture in (("s0", image), ("s1", halved)):  # the palette applied to each
        expected = palette.apply(picture, channel_axis=-1)
        np.testing.assert_array_equal(root[f"labels/clusters/{level}"][:], expected.labels)
        np.testing.assert_array_equal(np.moveaxis(root[level][:], 0, -1), expected.quantized)


# --- what an outside attack found -------------------------------------------------------------


def _edit_multiscales(path, change):
    root = zarr.open_group(str(path), mode="r+")
    ome = root.attrs["ome"]
    change(ome["multiscales"][0])
    root.attrs["ome"] = ome


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda m: m["datasets"][0]["coordinateTransformations"][0].update(scale=[0.5, 0.5]),
         "level 0 has the scale"),
        (lambda m: m["datasets"][1]["coordinateTransformations"][0].update(scale=[1, "a", 1]),
         "level 1 has the scale"),
        (lambda m: m["datasets"][0]["coordinateTransformations"][0].update(scale=[1, 0, 1]),
         "level 0 has the scale"),
        (lambda m: m["axes"][2].update(name="y"), "an axis is named twice"),
        (lambda m: m["datasets"].reverse(), "is larger than the one before it"),
    ],
)  # fmt: skip
def test_broken_ome_zarr_metadata_is_named_before_any_work(tmp_path, change, said):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")
    _edit_multiscales(tmp_path / "in.ome.zarr", change)
    before = snapshot(tmp_path)
    done = kquant("in.ome.zarr", "-k", "3", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and snapshot(tmp_path) == before


def test_a_damaged_chunk_is_one_line_and_leaves_nothing(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")
    chunk = next(p for p in (tmp_path / "in.ome.zarr" / "s0").rglob("*") if p.is_file()
                 and p.name != "zarr.json")  # fmt: skip
    chunk.write_bytes(b"not zstd at all")
    done = kquant("in.ome.zarr", "-k", "3", "-o", "o.ome.zarr", "--table", "t.csv", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = "cannot read 'in.ome.zarr': part of level 0 could not be read (RuntimeError: "
    assert said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr"]
    opened = open_image(tmp_path / "in.ome.zarr")  # in Python too: the file and the level
    with pytest.raises(ValueError, match=r"in\.ome\.zarr'?: part of level 0 could not be read"):
        quantize(opened.image, 3, channel_axis=opened.channel_axis, seed=0)


def test_a_damaged_tile_names_the_file_and_the_level(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "s.ome.tif", photo_like(256), tile=(128, 128),
                     photometric="rgb", compression="zlib")  # fmt: skip
    data = bytearray((tmp_path / "s.ome.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "s.ome.tif") as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data[offset : offset + count] = b"\xff" * count  # the first tile's bytes: not zlib
    (tmp_path / "s.ome.tif").write_bytes(bytes(data))
    said = r"s\.ome\.tif'?: part of level 0 could not be read"
    with open_image(tmp_path / "s.ome.tif") as opened, pytest.raises(ValueError, match=said):
        np.asarray(opened.levels[0][:128, :128])
    done = kquant("s.ome.tif", "-k", "3", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot read 's.ome.tif': part of level 0 could not be read" in done.stderr  # as given
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.tif"]


def test_an_output_inside_the_input_is_refused(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")
    before = snapshot(tmp_path)
    done = kquant("in.ome.zarr", "-k", "3", "-o", "in.ome.zarr/x.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2 and "is inside the input 'in.ome.zarr'" in done.stderr
    assert snapshot(tmp_path) == before


def test_what_appears_at_the_output_path_during_a_run_is_kept(tmp_path):
    from napari_kquant.core._staged import FileError, Transaction

    target = tmp_path / "o.ome.zarr"
    transaction = Transaction()
    staged = transaction.stage_folder(str(target), new=True)
    (tmp_path / "o.ome.zarr").write_text("another run's or the user's")  # meanwhile
    with pytest.raises(FileError, match="appeared while this run worked"):
        transaction.commit()
    transaction.abort()
    assert target.read_text() == "another run's or the user's"
    assert not os.path.exists(staged) and sorted(p.name for p in tmp_path.iterdir()) == [
        "o.ome.zarr"]  # fmt: skip


def test_levels_of_one_size_zero_pixel_sizes_and_one_level_tiffs(tmp_path):
    import tifffile

    image = photo_like(256)
    with tifffile.TiffWriter(tmp_path / "same.ome.tif") as tw:  # a "pyramid" of two copies
        tw.write(image, subifds=1, tile=(128, 128), photometric="rgb")
        tw.write(image, subfiletype=1, tile=(128, 128), photometric="rgb")
    with open_image(tmp_path / "same.ome.tif") as opened:
        assert [level.shape for level in opened.levels] == [(256, 256, 3)]
    write_ome_tiff(tmp_path / "zero.ome.tif", image, levels=2, size=0.0)
    with open_image(tmp_path / "zero.ome.tif") as opened:
        assert opened.pixel_size is None and opened.scales[1][:2] == (2.0, 2.0)
    write_ome_tiff(tmp_path / "one.ome.tif", image, levels=1, size=0.5)
    done = kquant("one.ome.tif", "-k", "3", "--seed", "0", "-o", "one.ome.zarr",
                  "--table", "t.csv", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "t.csv")
    assert table["area_unit"].iloc[1] == "µm²"
    assert table["area"].iloc[1:].sum() == pytest.approx(256 * 256 * 0.25)


def test_a_truncated_tiff_is_one_line(tmp_path):
    write_ome_tiff(tmp_path / "s.ome.tif", photo_like(256), levels=2)
    data = (tmp_path / "s.ome.tif").read_bytes()
    (tmp_path / "s.ome.tif").write_bytes(data[: len(data) // 3])
    done = kquant("s.ome.tif", "-k", "3", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("kquant: error:"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ome.tif"]


def _transforms(group):
    return [
        d["coordinateTransformations"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]
    ]


def test_the_output_keeps_the_inputs_place_and_levels_sit_on_pixel_centres(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")  # 0.5 µm pixels
    _edit_multiscales(  # its first pixel at (100, 200) µm
        tmp_path / "in.ome.zarr",
        lambda m: m["datasets"][0].update(
            coordinateTransformations=[
                {"type": "scale", "scale": [1.0, 0.5, 0.5]},
                {"type": "translation", "translation": [0.0, 100.0, 200.0]},
            ]
        ),
    )
    with open_image(tmp_path / "in.ome.zarr") as opened:
        assert opened.origin == (0.0, 100.0, 200.0)
    done = kquant("in.ome.zarr", "-k", "3", "--seed", "0", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    root = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")
    # a level of 2 x 2 (4 x 4) finest pixels: its centre half a coarse minus a fine pixel on
    expected = [
        [{"type": "scale", "scale": [1.0, s, s]},
         {"type": "translation", "translation": [0.0, 100 + (s - 0.5) / 2, 200 + (s - 0.5) / 2]}]
        for s in (0.5, 1.0, 2.0)
    ]  # fmt: skip
    assert _transforms(root) == expected
    assert _transforms(root["labels/clusters"]) == [
        [{"type": "scale", "scale": t[0]["scale"][1:]},
         {"type": "translation", "translation": t[1]["translation"][1:]}]
        for t in expected
    ]  # fmt: skip
    from ome_zarr_models.v05.image import Image

    Image.from_zarr(root)


def test_write_ome_zarr_refuses_what_does_not_add_up(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")  # c, y, x
    result = quantize(photo_like(64), 3, channel_axis=-1, seed=0)  # y, x, c
    opened = open_image(tmp_path / "in.ome.zarr")
    with pytest.raises(ValueError, match=r"opened: the result \(64, 64, 3\) is not of"):
        write_ome_zarr(tmp_path / "a.ome.zarr", result, opened)
    with pytest.raises(TypeError, match="result must be a QuantizeResult, got NoneType"):
        write_ome_zarr(tmp_path / "b.ome.zarr", None)
    with pytest.raises(TypeError, match=r"path must be a file path .*, got None"):
        write_ome_zarr(None, result)
    with pytest.raises(TypeError, match=r"path must be a file path .*, got 3"):
        open_image(3)
    with pytest.raises(ValueError, match=r"path 'a\\x00.zarr': a path cannot hold a NUL"):
        write_ome_zarr("a\0.zarr", result)
    with pytest.raises(ValueError, match=r"path is empty: give a file path"):
        write_ome_zarr("", result)
    for rows, said in (
        (lambda c: 5, "properties must return 3 dicts of JSON values"),
        (lambda c: [{"x": float("nan")}] * 3, "properties must return 3 dicts of JSON values"),
        (lambda c: [{"x": 1}] * 2, "properties must return 3 dicts, one per label"),
        (lambda c: [{"label-value": 9}] * 3, "'label-value' is written by write_ome_zarr"),
    ):
        with pytest.raises(ValueError, match=said):
            write_ome_zarr(tmp_path / "c.ome.zarr", result, properties=rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr"]


@pytest.mark.parametrize("channel_axis", [0, 1, -1])
def test_a_result_is_written_with_its_channels_where_they_are(tmp_path, channel_axis):
    """No ``opened``: the axes are y, x and the channel axis where the result has it
    (written in NGFF order, channels first), not always y, x, c."""
    image = np.moveaxis(photo_like(64), -1, channel_axis).copy()
    result = quantize(image, 4, channel_axis=channel_axis, seed=0)
    write_ome_zarr(tmp_path / "o.ome.zarr", result)
    opened = open_image(tmp_path / "o.ome.zarr")
    assert opened.axes == "cyx" and opened.levels[0].shape == (3, 64, 64)
    np.testing.assert_array_equal(opened.levels[0], np.moveaxis(result.quantized, channel_axis, 0))
    labels = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")["labels/clusters/s0"]
    np.testing.assert_array_equal(labels[:], result.labels)


def test_an_axis_ngff_has_no_name_for_is_refused_before_any_work(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")
    _edit_multiscales(tmp_path / "in.ome.zarr", lambda m: m["axes"][0].update(name="q"))
    before = snapshot(tmp_path)
    done = kquant("in.ome.zarr", "-k", "3", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "an axis has a name NGFF does not know (?yx)" in done.stderr
    assert snapshot(tmp_path) == before


def test_the_whole_images_own_transformations_are_composed_in(tmp_path):
    write_ome_zarr_input(tmp_path / "in.ome.zarr", photo_like(128), "0.5")  # 0.5 µm pixels
    _edit_multiscales(tmp_path / "in.ome.zarr", lambda m: m.update(coordinateTransformations=[
        {"type": "scale", "scale": [1.0, 2.0, 2.0]},
        {"type": "translation", "translation": [0.0, 100.0, 200.0]},
    ]))  # fmt: skip
    with open_image(tmp_path / "in.ome.zarr") as opened:
        assert opened.scales[0] == (1.0, 1.0, 1.0) and opened.pixel_size == (1.0, 1.0)
        assert opened.origin == (0.0, 100.0, 200.0)
    done = kquant("in.ome.zarr", "-k", "3", "--seed", "0", "-o", "o.ome.zarr", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    level0 = _transforms(zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r"))[0]
    assert level0 == [{"type": "scale", "scale": [1.0, 1.0, 1.0]},
                      {"type": "translation", "translation": [0.0, 100.0, 200.0]}]  # fmt: skip
    _edit_multiscales(tmp_path / "in.ome.zarr", lambda m: m.update(coordinateTransformations=[
        {"type": "scale", "scale": [1.0, 0.0, 2.0]}]))  # fmt: skip
    done = kquant("in.ome.zarr", "-k", "3", "-o", "p.ome.zarr", cwd=tmp_path)
    assert done.returncode == 2 and "the multiscales' transformations" in done.stderr
