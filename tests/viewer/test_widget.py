"""The dock widget and `quantize_layer` in a real napari viewer (run under Xvfb)."""

import threading

import cv2
import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.notifications import notification_manager
from skimage import data as photos

import napari_kquant
from napari_kquant.core._layout import is_lazy
from napari_kquant.viewer._result_view import NO_RESULT

from conftest import BLOCK_COLOURS, errors_since, expected_block_labels, make_blocks, run

GEOMETRY = {"scale": (2.0, 0.5), "translate": (10.0, -4.0), "rotate": 30.0, "units": ("um", "mm")}


def test_manifest_puts_the_widget_in_the_layers_menu(viewer):
    from napari._app_model import get_app_model

    items = get_app_model().menus.get_menu("napari/layers/segment")
    assert "napari-kquant.make_widget" in [getattr(i, "command", i).id for i in items]


def test_rgb_run_adds_two_layers_that_overlay_the_source(viewer, widget, qtbot):
    image = make_blocks()
    source = viewer.add_image(image, name="blocks", rgb=True, **GEOMETRY)
    assert widget.form.image.value is source  # defaults to the active layer
    assert widget.form.sample.value == "auto"
    run(widget, qtbot, k=4, seed="1")

    names = [layer.name for layer in viewer.layers]
    assert names == ["blocks", "blocks k=4 quantized", "blocks k=4 clusters"]
    quantized, clusters = viewer.layers[1], viewer.layers[2]
    assert isinstance(quantized, Image) and quantized.rgb and quantized.data.dtype == np.uint8
    assert isinstance(clusters, Labels) and clusters.data.dtype == np.uint8
    np.testing.assert_array_equal(clusters.data, expected_block_labels())

    record = clusters.metadata["napari_kquant"]
    centers = np.array(record["centers"])
    np.testing.assert_allclose(centers, BLOCK_COLOURS[[1, 0, 3, 2]], atol=3)
    for i, centre in enumerate(centers, start=1):  # label i drawn in cluster i's colour
        np.testing.assert_allclose(clusters.colormap.color_dict[i][:3], centre / 255, atol=1e-6)
    assert clusters.colormap.color_dict[0][3] == 0  # background stays transparent
    assert record["k"] == 4 and record["seed"] == 1 and record["sample"] == "auto"
    assert sum(record["counts"]) == 32 * 32 and record["compactness"] > 0

    for layer in (quantized, clusters):
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        np.testing.assert_allclose(layer.rotate, source.rotate)
        np.testing.assert_allclose(layer.affine.affine_matrix, source.affine.affine_matrix)
        assert layer.units == source.units
    np.testing.assert_array_equal(source.data, image)  # the source is untouched
    assert "k=4: compactness" in widget.view.title.text()
    assert [row[2] for row in widget.view.rows()] == ["25.0%"] * 4


def test_more_clusters_than_colours_is_a_warning_notification(viewer, widget, qtbot):
    two = np.zeros((40, 40, 3), np.uint8)
    two[20:] = 200
    viewer.add_image(two, name="two", rgb=True)
    start = len(notification_manager.records)
    run(widget, qtbot, k=5, seed="0")
    assert "two k=5 clusters" in viewer.layers
    warned = [r.message for r in notification_manager.records[start:] if r.severity == "warning"]
    assert warned == [
        "K-means quantization: k=5, but the clustered pixels have only 2 distinct colours; "
        "3 clusters duplicate others"
    ]


@pytest.mark.parametrize("change", ["removed", "new data"])
def test_a_source_changed_during_the_run_gets_no_stale_result(viewer, widget, qtbot, change):
    """The result comes back through the event loop: whatever happens to the source before
    it is processed happens during the run."""
    source = viewer.add_image(make_blocks(), name="blocks", rgb=True)
    widget.form.k.value = 4
    start = len(notification_manager.records)
    widget.run()
    if change == "removed":
        viewer.layers.remove(source)
    else:
        source.data = make_blocks(seed=5)[:16]
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert [layer.name for layer in viewer.layers] == ([] if change == "removed" else ["blocks"])
    what = "was removed" if change == "removed" else "got new data"
    assert widget.status.value == f"not added: the source layer {what} during the run"
    said = [r.message for r in notification_manager.records[start:]]
    assert said == [f"K-means quantization: 'blocks' {what}; nothing was added"]


def test_rgba_transparent_pixels_get_background(viewer, widget, qtbot):
    rgba = np.concatenate([make_blocks(), np.full((32, 32, 1), 255, np.uint8)], axis=-1)
    rgba[:8, :8, 3] = 0
    viewer.add_image(rgba, name="rgba")
    run(widget, qtbot, k=4, seed="2")
    quantized, clusters = viewer.layers["rgba k=4 quantized"], viewer.layers["rgba k=4 clusters"]
    assert quantized.rgb and quantized.data.shape == (32, 32, 4)
    np.testing.assert_array_equal(quantized.data[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(clusters.data[:8, :8], 0)
    assert (clusters.data[8:] > 0).all()


def test_grayscale_uint16_keeps_colormap_and_contrast(viewer, widget, qtbot):
    image = np.zeros((20, 30), np.uint16)
    image[:, 15:] = 3000
    source = viewer.add_image(image, name="gray", colormap="magma", contrast_limits=(0, 4000))
    run(widget, qtbot, k=2, seed="0")
    quantized, clusters = viewer.layers["gray k=2 quantized"], viewer.layers["gray k=2 clusters"]
    assert quantized.data.dtype == np.uint16 and not quantized.rgb
    assert quantized.colormap.name == "magma"
    assert tuple(quantized.contrast_limits) == (0, 4000)
    np.testing.assert_array_equal(quantized.data, image)
    expected = source.colormap.map(np.array([0.0, 3000 / 4000]))
    np.testing.assert_allclose(clusters.colormap.color_dict[1], expected[0], atol=1e-6)
    np.testing.assert_allclose(clusters.colormap.color_dict[2], expected[1], atol=1e-6)


@pytest.mark.parametrize("planes", [3, 4])
def test_a_grey_stack_of_3_or_4_planes_on_the_last_axis_stays_grey(viewer, widget, qtbot, planes):
    """Not RGB: napari would guess RGB from the last axis (sides of 30 px or more) if the
    result did not say."""
    stack = np.random.default_rng(0).integers(0, 255, (40, 36, planes), np.uint8)
    viewer.add_image(stack, name="grey", rgb=False, scale=(1, 2, 3))
    run(widget, qtbot, k=3, seed="0")
    quantized, clusters = viewer.layers["grey k=3 quantized"], viewer.layers["grey k=3 clusters"]
    assert not quantized.rgb and quantized.data.shape == stack.shape
    assert tuple(quantized.scale) == tuple(clusters.scale) == (1, 2, 3)
    expected = napari_kquant.quantize(stack, 3, seed=0)
    np.testing.assert_array_equal(clusters.data, expected.labels)
    np.testing.assert_array_equal(quantized.data, expected.quantized)


def test_stack_whole_and_current_slice(viewer, widget, qtbot):
    stack = np.stack([make_blocks(seed=s) for s in range(3)])
    viewer.add_image(stack, name="stack", rgb=True)
    run(widget, qtbot, k=4, seed="3")
    clusters = viewer.layers["stack k=4 clusters"]
    assert clusters.data.shape == (3, 32, 32)
    for t in range(3):
        np.testing.assert_array_equal(clusters.data[t], expected_block_labels())

    whole = np.array(clusters.data)

    viewer.dims.set_current_step(0, 1)
    run(widget, qtbot, scope="current slice only")
    assert len(viewer.layers) == 5  # its own layers: the whole stack's result stays
    np.testing.assert_array_equal(clusters.data, whole)
    plane = viewer.layers["stack plane 1 k=4 clusters"]
    assert plane.data.shape == (3, 32, 32)
    np.testing.assert_array_equal(plane.data[[0, 2]], 0)
    np.testing.assert_array_equal(plane.data[1], expected_block_labels())
    quantized = viewer.layers["stack plane 1 k=4 quantized"]
    np.testing.assert_array_equal(quantized.data[0], stack[0])  # other planes untouched
    assert plane.metadata["napari_kquant"]["slice"] == {0: 1}
    assert widget.view.layer.name in (quantized.name, plane.name)  # (the dock's proxy layers)
    qtbot.waitUntil(lambda: not widget.view.plot_box.isVisibleTo(widget.native))  # no plot


def test_a_large_mask_layer_is_read_in_the_worker_with_the_same_result(
    viewer, widget, qtbot, monkeypatch
):
    """Masks over LAZY_MASK elements are compared (and cut to the current slice) lazily:
    in the GUI thread a 40 x 4000 x 4000 mask took 1.6-3 s. Here LAZY_MASK is made small."""
    from napari_kquant.viewer import _layers

    monkeypatch.setattr(_layers, "LAZY_MASK", 100)
    stack = np.stack([make_blocks(seed=s) for s in range(3)])
    source = viewer.add_image(stack, name="stack", rgb=True)
    keep = np.zeros((3, 32, 32), np.uint8)
    keep[:, 4:28, 2:30] = 7
    mask = viewer.add_labels(keep, name="keep")
    widget.reset_choices()
    widget.form.image.value, widget.form.mask.value = source, mask
    _, keywords = _layers.read_layer(source, mask, {0: 1}, 4)
    assert is_lazy(keywords["mask"])
    run(widget, qtbot, k=4, seed="3")
    expected = napari_kquant.quantize(stack, 4, channel_axis=-1, seed=3, mask=keep != 0)
    np.testing.assert_array_equal(viewer.layers["stack k=4 clusters"].data, expected.labels)
    viewer.dims.set_current_step(0, 1)
    run(widget, qtbot, scope="current slice only")
    plane = np.zeros((3, 32, 32), bool)
    plane[1] = True
    expected = napari_kquant.quantize(stack, 4, channel_axis=-1, seed=3, mask=(keep != 0) & plane)
    np.testing.assert_array_equal(viewer.layers["stack plane 1 k=4 clusters"].data,
                                  expected.labels)  # fmt: skip


def test_mask_layer_limits_clustering(viewer, widget, qtbot):
    image = make_blocks()
    viewer.add_image(image, name="blocks", rgb=True)
    mask = np.zeros((32, 32), np.uint8)
    mask[:16] = 1
    mask_layer = viewer.add_labels(mask, name="top")
    widget.form.image.value = viewer.layers["blocks"]
    run(widget, qtbot, k=2, seed="0", mask=mask_layer)
    clusters = viewer.layers["blocks k=2 clusters"]
    np.testing.assert_array_equal(clusters.data[16:], 0)
    np.testing.assert_array_equal(clusters.data[:16, :16], 2)
    np.testing.assert_array_equal(clusters.data[:16, 16:], 1)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({}, "There is no image layer to quantize"),
        ({"k": 600}, "k=600 is larger than the number of usable pixels (at most 512)"),
        (
            {"mask": "wrong"},
            "mask layer 'wrong' has shape (5, 5), but image 'blocks' has spatial shape (16, 32)",
        ),
        ({"seed": "abc"}, "seed must be a whole number or blank, got 'abc'"),
        ({"epsilon": "x"}, "epsilon must be a number or 'auto', got 'x'"),
        ({"sample": "lots"}, "sample must be a whole number or 'auto', got 'lots'"),
        ({"sample": "0"}, "sample must be between 1 and"),
    ],
)
def test_errors_are_notifications_and_change_nothing(viewer, widget, qtbot, setup, message):
    if setup:
        viewer.add_image(make_blocks()[:16], name="blocks", rgb=True)
        widget.form.image.value = viewer.layers["blocks"]
    if setup.get("mask") == "wrong":
        setup = {"mask": viewer.add_labels(np.ones((5, 5), np.uint8), name="wrong")}
    before = [(layer.name, layer.data.copy()) for layer in viewer.layers]
    start = len(notification_manager.records)
    run(widget, qtbot, **setup)
    assert any(message in m for m in errors_since(start)), errors_since(start)
    assert [(layer.name) for layer in viewer.layers] == [name for name, _ in before]
    for layer, (_, data) in zip(viewer.layers, before, strict=True):
        np.testing.assert_array_equal(layer.data, data)
    assert widget.run_button.enabled and widget.worker is None


def _slow_image():
    """Big and noisy enough that an exact fit takes several seconds."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8)


def kmeans_helpers():
    return [t for t in threading.enumerate() if t.name == "kquant-kmeans" and t.is_alive()]


@pytest.mark.slow
def test_cancel_gives_control_back_without_waiting_for_opencv(viewer, widget, qtbot):
    viewer.add_image(_slow_image(), name="noise", rgb=True)
    for name, value in {"k": 32, "exact": True, "attempts": 50, "seed": "0"}.items():
        getattr(widget.form, name).value = value
    widget.run()
    qtbot.waitUntil(lambda: "attempt 1 of 50" in widget.status.value, timeout=60_000)
    qtbot.waitUntil(lambda: bool(kmeans_helpers()), timeout=60_000)  # inside cv2.kmeans
    widget.cancel_button.native.click()
    # control is back at once: the button handler itself returned it
    assert widget.worker is None and widget.run_button.enabled
    assert widget.status.value == "cancelled: nothing was added"
    widget.run()  # a new run does not wait for the abandoned one
    assert widget.worker is not None
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: not kmeans_helpers(), timeout=300_000)  # the abandoned attempts end
    qtbot.wait(50)
    assert [layer.name for layer in viewer.layers] == ["noise"]  # nothing late reached it


def test_second_press_while_running_is_ignored(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    widget.form.seed.value = "0"
    widget.run()
    first = widget.worker
    widget.run()  # a second press while running is ignored
    assert widget.worker is first and not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert [layer.name for layer in viewer.layers] == [
        "blocks",
        "blocks k=8 quantized",
        "blocks k=8 clusters",
    ]


def test_closing_the_viewer_mid_run_is_silent(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    viewer.add_image(_slow_image()[:300, :300], name="noise", rgb=True)
    widget.form.exact.value = True
    widget.form.seed.value = "0"
    errors = []
    widget.run()
    worker = widget.worker
    worker.finished.connect(lambda: errors.append("finished"))
    viewer.close()
    qtbot.waitUntil(lambda: errors == ["finished"], timeout=120_000)
    qtbot.wait(50)  # queued signals delivered: none raised (pytest-qt fails on Qt exceptions)


def test_first_run_compiles_nothing_in_the_gui_thread(viewer, widget, qtbot):
    from napari.utils.colormaps import _accelerated_cmap

    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    compiled_before_drawing = []
    inner = _accelerated_cmap._labels_raw_to_texture_direct_inner_loop
    widget._bridge.progressed.connect(
        lambda f, m: (
            compiled_before_drawing.append(bool(inner.signatures)) if m == "done" else None
        )
    )
    run(widget, qtbot, k=4, seed="0")
    # napari's label colormap was compiled in the worker, before the layers were drawn
    assert compiled_before_drawing and inner.signatures
    assert "blocks k=4 clusters" in [layer.name for layer in viewer.layers]


def test_quantize_layer_from_the_console(viewer):
    source = viewer.add_image(make_blocks(), name="blocks", rgb=True, **GEOMETRY)
    layers = napari_kquant.quantize_layer(source, k=4, seed=0, color_space="lab")
    assert [layer.name for layer in layers] == ["blocks k=4 quantized", "blocks k=4 clusters"]
    assert all(layer in viewer.layers for layer in layers)
    np.testing.assert_array_equal(layers[1].data, expected_block_labels())
    assert layers[1].metadata["napari_kquant"]["color_space"] == "lab"
    np.testing.assert_allclose(layers[0].scale, source.scale)
    again = napari_kquant.quantize_layer(source, k=4, seed=1)
    assert again[0] is layers[0] and len(viewer.layers) == 3
    left = np.zeros((32, 32), bool)
    left[:, :16] = True  # array_like: a nested list of booleans
    masked = napari_kquant.quantize_layer(source, k=2, seed=0, mask=left.tolist())
    assert not masked[1].data[:, 16:].any() and masked[1].data[:, :16].all()
    with pytest.raises(TypeError, match="mask must be a boolean array, got dtype int64"):
        napari_kquant.quantize_layer(source, k=2, mask=[[1] * 32] * 32)


def test_quantize_layer_refuses_a_labels_layer(viewer):
    labels = viewer.add_labels(np.zeros((4, 4), np.uint8), name="seg")
    with pytest.raises(TypeError, match="'seg' is a Labels layer; choose an Image layer"):
        napari_kquant.quantize_layer(labels, k=2)


def test_kquant_without_output_opens_napari_with_the_widget(qtbot):
    from napari_kquant.cli._main import build_parser, open_viewer

    viewer = open_viewer(build_parser().parse_args(["-k", "5"]))
    try:
        assert [layer.name for layer in viewer.layers] == ["astronaut"]
        assert viewer.layers["astronaut"].rgb
        widget = next(
            w for w in viewer.window.dock_widgets.values() if hasattr(w, "form")
        )  # the docked K-means widget
        assert widget.form.k.value == 5 and widget.form.image.value is viewer.layers[0]
    finally:
        viewer.close()


def test_multiscale_dask_layer_gives_multiscale_lazy_layers(viewer, widget, qtbot):
    import dask.array as da
    from skimage import data

    photo = np.tile(data.coffee(), (2, 2, 1))  # (800, 1200, 3)
    levels = [da.from_array(photo[:: 2**i, :: 2**i], chunks=(128, 128, 3)) for i in range(3)]
    viewer.add_image(levels, name="pyramid", rgb=True, multiscale=True)
    run(widget, qtbot, k=6, seed="4")
    quantized = viewer.layers["pyramid k=6 quantized"]
    clusters = viewer.layers["pyramid k=6 clusters"]
    assert quantized.multiscale and clusters.multiscale and quantized.rgb
    assert [tuple(level.shape) for level in quantized.data] == [lv.shape for lv in levels]
    assert all(isinstance(level, da.Array) for level in clusters.data)
    centers = np.array(clusters.metadata["napari_kquant"]["centers"])
    crop = np.asarray(clusters.data[2][:20, :30])
    pixels = photo[::4, ::4][:20, :30].reshape(-1, 3).astype(float)
    nearest = ((pixels[:, None] - centers[None]) ** 2).sum(-1).argmin(1) + 1
    np.testing.assert_array_equal(crop.ravel(), nearest)
    assert clusters.metadata["napari_kquant"]["counts"] is None  # lazy: not computed
    assert "lazy result" in widget.view.title.text()


def test_dask_layer_stays_lazy(viewer, widget, qtbot):
    import dask.array as da

    blocks = np.tile(make_blocks(), (8, 8, 1))  # 256 x 256
    viewer.add_image(da.from_array(blocks, chunks=(64, 64, 3)), name="lazy", rgb=True)
    run(widget, qtbot, k=4, seed="1", sample="5000")
    clusters = viewer.layers["lazy k=4 clusters"]
    assert isinstance(clusters.data, da.Array)
    np.testing.assert_array_equal(np.asarray(clusters.data[:32, :32]), expected_block_labels())


# --- kept palettes ---------------------------------------------------------------------------


def _two_images(viewer):
    first = viewer.add_image(make_blocks(seed=0), name="first", rgb=True)
    second = viewer.add_image(make_blocks(seed=5)[::-1], name="second", rgb=True)
    return first, second


def test_widget_reuses_the_palette_of_a_result_layer(viewer, widget, qtbot):
    first, second = _two_images(viewer)
    widget.form.image.value = first
    run(widget, qtbot, k=4, seed="1")
    clusters_a = viewer.layers["first k=4 clusters"]
    assert any(value is clusters_a for value in widget.form.palette.choices)
    texts = [
        widget.form.palette.native.itemText(i) for i in range(widget.form.palette.native.count())
    ]
    assert "palette of 'first k=4'" in texts  # one entry for the run's two layers
    widget.form.image.value = second
    widget.form.palette.value = clusters_a
    assert not widget.form.k.native.isVisibleTo(widget.native)  # the fit options do not apply
    assert not widget.sections["Fit"].isVisibleTo(widget.native)
    run(widget, qtbot)
    clusters_b = viewer.layers["second k=4 clusters"]
    np.testing.assert_array_equal(clusters_b.data, expected_block_labels()[::-1])
    record_a, record_b = clusters_a.metadata["napari_kquant"], clusters_b.metadata["napari_kquant"]
    assert record_b["palette"] == record_a["palette"]
    assert record_b["palette_from"] == "layer first k=4 clusters"
    for i in range(1, 5):  # same label, same colour
        np.testing.assert_array_equal(
            clusters_a.colormap.color_dict[i], clusters_b.colormap.color_dict[i]
        )
    centers = np.array(record_a["centers"])
    pixels = second.data.reshape(-1, 3).astype(float)
    nearest = ((pixels[:, None] - centers[None]) ** 2).sum(-1).argmin(1) + 1
    np.testing.assert_array_equal(clusters_b.data.ravel(), nearest)


def test_widget_saves_and_loads_a_palette_file(viewer, widget, qtbot, tmp_path):
    first, second = _two_images(viewer)
    widget.form.image.value = first
    run(widget, qtbot, k=4, seed="2")
    path = tmp_path / "kept.json"
    assert widget.save_palette(str(path)) == str(path)
    saved = napari_kquant.Palette.load(path)
    clusters_a = viewer.layers["first k=4 clusters"]
    assert saved.to_dict() == clusters_a.metadata["napari_kquant"]["palette"]

    widget.form.image.value = second
    widget.form.palette.value = "load a palette file"
    assert not widget.form.palette_file.native.isHidden()
    widget.form.palette_file.value = path
    run(widget, qtbot)
    clusters_b = viewer.layers["second k=4 clusters"]
    np.testing.assert_array_equal(clusters_b.data, expected_block_labels()[::-1])
    assert clusters_b.metadata["napari_kquant"]["palette_from"] == str(path)


def test_widget_reports_a_bad_palette_file_and_changes_nothing(viewer, widget, qtbot, tmp_path):
    _two_images(viewer)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    widget.form.palette.value = "load a palette file"
    widget.form.palette_file.value = bad
    start = len(notification_manager.records)
    run(widget, qtbot)
    assert any("bad.json" in m and "not a napari-kquant palette" in m for m in errors_since(start))
    assert [layer.name for layer in viewer.layers] == ["first", "second"]


def test_palette_view_follows_the_selected_result_layer(viewer, widget, qtbot):
    first, second = _two_images(viewer)
    napari_kquant.quantize_layer(second, k=3, seed=0)  # from the console
    widget.form.image.value = first
    run(widget, qtbot, k=4, seed="1")
    assert "first k=4 clusters" in widget.view.title.text()
    viewer.layers.selection.active = viewer.layers["second k=3 clusters"]
    assert "second k=3 clusters" in widget.view.title.text() and "k=3" in widget.view.title.text()
    viewer.layers.remove("second k=3 clusters")
    viewer.layers.remove("first k=4 clusters")
    assert widget.view.title.text() == NO_RESULT or "quantized" in widget.view.title.text()


def test_quantize_layer_with_a_kept_palette(viewer, tmp_path):
    first, second = _two_images(viewer)
    _, clusters_a = napari_kquant.quantize_layer(first, k=4, seed=3)
    by_layer = napari_kquant.quantize_layer(second, palette=clusters_a)
    np.testing.assert_array_equal(by_layer[1].data, expected_block_labels()[::-1])
    palette = napari_kquant.Palette.from_dict(clusters_a.metadata["napari_kquant"]["palette"])
    palette.save(tmp_path / "p.gpl")
    by_file = napari_kquant.quantize_layer(second, palette=tmp_path / "p.gpl")
    np.testing.assert_array_equal(by_file[1].data, expected_block_labels()[::-1])
    with pytest.raises(ValueError, match="fit options do not apply: seed"):
        napari_kquant.quantize_layer(second, palette=palette, seed=1)
    with pytest.raises(ValueError, match="'first' was not made by napari-kquant"):
        napari_kquant.quantize_layer(second, palette=first)


def test_npe2_writer_saves_a_result_layers_palette(viewer, tmp_path):
    source = viewer.add_image(make_blocks(), name="blocks", rgb=True)
    _, clusters = napari_kquant.quantize_layer(source, k=4, seed=0)
    path = tmp_path / "palette.json"
    written = clusters.save(str(path), plugin="napari-kquant")
    assert written == [str(path)]
    assert (
        napari_kquant.Palette.load(path).to_dict() == clusters.metadata["napari_kquant"]["palette"]
    )


def test_widget_refuses_a_palette_with_other_channels(viewer, widget, qtbot):
    first, _ = _two_images(viewer)
    widget.form.image.value = first
    run(widget, qtbot, k=4, seed="1")
    gray = viewer.add_image(np.zeros((8, 8), np.uint8), name="gray")
    widget.form.image.value = gray
    widget.form.palette.value = viewer.layers["first k=4 clusters"]
    start = len(notification_manager.records)
    widget.run()
    assert widget.worker is None  # refused before any work
    assert any("has 3 colour channels, but image 'gray' has 1" in m for m in errors_since(start))
    assert "gray k=4 clusters" not in [layer.name for layer in viewer.layers]


def test_cancel_while_the_layers_are_added_leaves_the_whole_result(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="b", rgb=True)
    viewer.layers.events.inserted.connect(lambda event: widget.cancel())
    run(widget, qtbot, k=4, seed="1")
    assert [layer.name for layer in viewer.layers] == ["b", "b k=4 quantized", "b k=4 clusters"]
    assert widget.status.value == "done: seed 1"


# --- the measurement table in the dock ---------------------------------------------------------


# --- choosing K and editing clusters -----------------------------------------------------------


def test_live_preview_quantizes_the_plane_on_screen_and_coalesces(viewer, widget, qtbot):
    stack = np.stack([np.tile(make_blocks(seed=s), (20, 20, 1)) for s in range(3)])  # 640 px
    source = viewer.add_image(stack, name="movie", rgb=True, scale=(1, 0.5, 0.5))
    before = np.array(source.data)
    viewer.dims.set_current_step(0, 2)  # the third plane on screen
    widget.form.seed.value = "3"
    widget.form.k.value = 4
    widget.k_view.live.setChecked(True)

    def settled():
        return widget._preview_worker is None and not widget._preview_again

    qtbot.waitUntil(lambda: settled() and "movie preview" in viewer.layers, timeout=30_000)
    shown = viewer.layers["movie preview"]
    # the plane on screen, every 2nd pixel (640 x 640 > 512 x 512), one attempt on 10,000
    expected = napari_kquant.quantize(stack[2, ::2, ::2], 4, channel_axis=-1, seed=3,
                                      attempts=1, sample=10_000)  # fmt: skip
    np.testing.assert_array_equal(shown.data, expected.quantized)
    np.testing.assert_allclose(shown.scale, [1.0, 1.0])  # overlays the layer
    assert widget.form.image.value is not shown and viewer.layers.selection.active is not shown
    runs = widget.previews
    for k in range(2, 12):  # a slider drag: only the latest setting is sure to run
        widget.form.k.value = k
    qtbot.waitUntil(settled, timeout=30_000)
    assert widget.previews - runs < 10
    assert shown.metadata["napari_kquant_preview"]["k"] == 11
    assert widget.k_view.status.text() == "live preview: K=11"
    widget.k_view.live.setChecked(False)  # the preview goes with the tick, and its status
    assert "movie preview" not in viewer.layers and widget.k_view.status.text() == ""
    np.testing.assert_array_equal(source.data, before)


def test_live_preview_says_when_the_settings_cannot_be_previewed(viewer, widget, qtbot):
    viewer.add_image(np.tile(make_blocks(), (4, 4, 1)), name="b", rgb=True)
    widget.k_view.live.setChecked(True)
    qtbot.waitUntil(lambda: "b preview" in viewer.layers and widget._preview_worker is None,
                    timeout=30_000)  # fmt: skip
    widget.form.epsilon.value = "abc"
    assert "live preview not updated: epsilon must be a number" in widget.k_view.status.text()
    widget.form.epsilon.value = "auto"
    widget.form.k.value = 3
    qtbot.waitUntil(
        lambda: (
            widget._preview_worker is None
            and viewer.layers["b preview"].metadata["napari_kquant_preview"]["k"] == 3
        ),
        timeout=30_000,
    )
    assert widget.k_view.status.text() == "live preview: K=3"
    viewer.add_image(np.tile(make_blocks(seed=1), (4, 4, 1)), name="c", rgb=True)
    widget.form.image.value = viewer.layers["c"]  # another image: its preview replaces b's
    qtbot.waitUntil(lambda: "c preview" in viewer.layers and widget._preview_worker is None,
                    timeout=30_000)  # fmt: skip
    assert [layer.name for layer in viewer.layers] == ["b", "c", "c preview"]


def test_dither_and_clean_up_fields_reach_the_layers_and_their_record(viewer, widget, qtbot):
    image = np.full((40, 40, 3), 30, np.uint8)
    image[20:] = 220
    image[5:8, 5:8] = 220  # a 9-pixel speck of the light cluster in the dark half
    viewer.add_image(image, name="speck", rgb=True)
    run(widget, qtbot, k=2, seed="0", min_size=10, smooth=0)
    clusters = viewer.layers["speck k=2 clusters"]
    assert (clusters.data[:20] == 1).all() and (clusters.data[20:] == 2).all()
    quantized = viewer.layers["speck k=2 quantized"].data
    assert (quantized[5:8, 5:8] == quantized[0, 0]).all()  # the picture follows the labels
    record = clusters.metadata["napari_kquant"]
    assert record["min_size"] == 10 and record["counts"] == [800, 800]
    assert "dither" not in record
    np.testing.assert_array_equal(viewer.layers["speck"].data, image)  # source untouched

    gradient = np.tile(np.linspace(0, 255, 64), (32, 1)).astype(np.uint8)
    viewer.add_image(np.dstack([gradient] * 3), name="ramp", rgb=True)
    widget.form.image.value = viewer.layers["ramp"]
    run(widget, qtbot, k=4, seed="0", min_size=0, dither="ordered", dither_strength=0.5)
    record = viewer.layers["ramp k=4 clusters"].metadata["napari_kquant"]
    assert record["dither"] == "ordered" and record["dither_strength"] == 0.5
    plain = napari_kquant.quantize(np.dstack([gradient] * 3), 4, channel_axis=-1, seed=0)
    np.testing.assert_array_equal(viewer.layers["ramp k=4 clusters"].data, plain.labels)
    dithered = plain.palette.apply(np.dstack([gradient] * 3), channel_axis=-1, dither="ordered",
                                   dither_strength=0.5)  # fmt: skip
    np.testing.assert_array_equal(viewer.layers["ramp k=4 quantized"].data, dithered.quantized)


def test_fast_speed_sets_its_fields_and_reaches_the_fit(viewer, widget, qtbot):
    image = cv2.resize(photos.astronaut(), (160, 120), interpolation=cv2.INTER_AREA)
    viewer.add_image(image, name="photo", rgb=True)
    widget.form.speed.value = "fast"
    assert (widget.form.max_iter.value, widget.form.attempts.value) == (10, 1)
    run(widget, qtbot, k=12, seed="4")
    clusters = viewer.layers["photo k=12 clusters"]
    assert clusters.metadata["napari_kquant"]["palette"]["fit"]["speed"] == "fast"
    fast = napari_kquant.quantize(image, 12, channel_axis=-1, seed=4, speed="fast")
    np.testing.assert_array_equal(clusters.data, fast.labels)
    widget.form.speed.value = "default"  # back: the default's own values
    assert (widget.form.max_iter.value, widget.form.attempts.value) == (100, 3)


def test_od_white_field_and_bad_finishing_values_are_notifications(viewer, widget, qtbot):
    image = make_blocks()
    viewer.add_image(image, name="blocks", rgb=True)
    start = len(notification_manager.records)
    run(widget, qtbot, k=4, seed="0", color_space="od", white="glass")
    assert "white must be 'max', 'auto'" in " ".join(errors_since(start))
    run(widget, qtbot, k=4, seed="0", white="300")
    assert "above uint8's maximum" in " ".join(errors_since(start))
    run(widget, qtbot, k=4, seed="0", white="max", dither="ordered", min_size=5)
    assert "cannot be combined" in " ".join(errors_since(start))
    assert [layer.name for layer in viewer.layers] == ["blocks"]
    run(widget, qtbot, k=4, seed="0", white="auto", dither="none", min_size=0)
    record = viewer.layers["blocks k=4 clusters"].metadata["napari_kquant"]
    assert record["color_space"] == "od" and record["white"] == "auto"
    white = record["palette"]["white"]  # the brightest block: (240, 240, 240) plus noise
    assert len(white) == 3 and all(240 < w < 255 for w in white)


def test_quantize_layer_finishes_kept_palettes_and_checks_its_arguments(make_napari_viewer):
    import json

    viewer = make_napari_viewer()
    layer = viewer.add_image(make_blocks(), name="blocks", rgb=True)
    _, clusters = napari_kquant.quantize_layer(layer, 4, seed=1, min_size=np.int64(5),
                                               dither_strength=np.float32(1))  # fmt: skip
    json.dumps(clusters.metadata["napari_kquant"])  # numpy scalars recorded as plain values
    kept = napari_kquant.quantize_layer(layer, palette=clusters, dither="ordered", min_size=None)
    assert kept[1].metadata["napari_kquant"]["dither"] == "ordered"
    palette = napari_kquant.Palette.from_dict(clusters.metadata["napari_kquant"]["palette"])
    expected = palette.apply(make_blocks(), channel_axis=-1, dither="ordered")
    np.testing.assert_array_equal(kept[0].data, expected.quantized)
    for options, error, match in (
        ({"channel_axis": 0}, ValueError, "channel_axis is the layer's to decide"),
        ({"outputs": None}, TypeError, "outputs must be a list"),
        ({"outputs": ("foo",)}, ValueError, "outputs must be one or both"),
        ({"outputs": ()}, ValueError, "outputs must be one or both"),
        ({"palette": clusters, "k": 4, "seed": 2}, ValueError, "fit options do not apply: seed"),
    ):
        with pytest.raises(error, match=match):
            napari_kquant.quantize_layer(layer, **options)
    closed = make_napari_viewer()
    closed.close()
    count = len(viewer.layers)
    with pytest.raises(ValueError, match="viewer is closed"):
        napari_kquant.quantize_layer(layer, 4, viewer=closed)
    assert len(viewer.layers) == count


def test_the_samples_open_in_napari_as_rgb_layers(make_napari_viewer):
    from napari_kquant import load_photo, load_slide

    viewer = make_napari_viewer()
    for key, name, expected in (("astronaut", "astronaut", load_photo()),
                                ("slide", "slide", load_slide())):  # fmt: skip
        layers = viewer.open_sample("napari-kquant", key)
        assert [layer.name for layer in layers] == [name] and layers[0].rgb
        np.testing.assert_array_equal(layers[0].data, expected)
    assert load_slide().shape == (256, 256, 3) and load_slide().dtype == np.uint8
    timelapse = viewer.open_sample("napari-kquant", "timelapse")[0]
    assert timelapse.data.shape == (12, 256, 256, 3)


def test_result_layers_renamed_crosswise_are_not_refreshed(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="b", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    quantized, clusters = viewer.layers["b k=4 quantized"], viewer.layers["b k=4 clusters"]
    quantized.name, clusters.name = "x", "b k=4 quantized"
    quantized.name = "b k=4 clusters"
    start = len(notification_manager.records)
    widget.form.image.value = viewer.layers["b"]
    run(widget, qtbot, k=4, seed="1")
    assert errors_since(start) == []
    added = viewer.layers[-2:]
    assert isinstance(added[0], Image) and isinstance(added[1], Labels)
    np.testing.assert_array_equal(added[1].data, clusters.data)  # new layers, same result
    assert len(viewer.layers) == 5
