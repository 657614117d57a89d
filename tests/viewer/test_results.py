"""The dock widget and `quantize_layer` in a real napari viewer (run under Xvfb)."""

import numpy as np
from napari.utils.notifications import notification_manager

import napari_kquant
from napari_kquant.viewer._result_view import NO_RESULT

from conftest import errors_since, make_blocks, run


def test_clusters_layer_carries_the_table_as_features(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="blocks", rgb=True, scale=(0.5, 0.25), units="um")
    run(widget, qtbot, k=4, seed="1")
    features = viewer.layers["blocks k=4 clusters"].features
    assert features["label"].tolist() == [0, 1, 2, 3, 4]  # napari's convention: row i = label i
    assert features["count"].tolist() == [0, 256, 256, 256, 256]
    np.testing.assert_allclose(features["area"][1:], 256 * 0.125)
    assert features["area_unit"][1] == "µm²"


def plot_lines(view, qtbot, n):
    """The plot's cluster lines once it shows ``n`` (it is drawn a turn of the event loop
    later); the marker at the plane on screen is not one of them."""

    def lines():
        if view.plot is None or not view.plot.figure.axes:
            return []
        return [line for line in view.plot.figure.axes[0].lines if line.get_label().isdigit()]

    qtbot.waitUntil(lambda: len(lines()) == n, timeout=10_000)
    return lines()


def _stack(viewer):
    stack = np.stack([make_blocks(seed=s) for s in range(4)])
    stack[1:3, :16] = 240  # planes 1 and 2: the top half light
    return viewer.add_image(stack, name="movie", rgb=True, scale=(1, 0.5, 0.25),
                            units=("s", "um", "um"), axis_labels=("t", "y", "x"))  # fmt: skip


def test_an_unnamed_stack_axis_is_plotted_under_its_plain_name(viewer, widget, qtbot):
    stack = np.stack([make_blocks(seed=s) for s in range(3)])
    viewer.add_image(stack, name="unnamed", rgb=True)  # napari labels the axis '-3'
    run(widget, qtbot, k=4, seed="1")
    plot_lines(widget.view, qtbot, 4)
    label = widget.view.plot.figure.axes[0].get_xlabel()
    assert label and not label.lstrip("-").isdigit(), label


def test_stack_table_background_and_plot_follow_each_other(viewer, widget, qtbot):
    source = _stack(viewer)
    before = np.array(source.data)
    run(widget, qtbot, k=4, seed="1")
    view = widget.view
    clusters = viewer.layers["movie k=4 clusters"]
    quantized = viewer.layers["movie k=4 quantized"]
    assert view.layer.name == clusters.name  # (the plugin's viewer is napari's public proxy)
    # planes 0 and 3: 256 px per label; planes 1 and 2: 768 light, 256 red
    total = np.array([512, 512, 1024, 2048])
    assert [row[1:] for row in view.rows()] == [
        (str(i + 1), f"{100 * n / 4096:.1f}%", f"{n * 0.125 / 4:.4g} µm²", False)  # per plane
        for i, n in enumerate(total)
    ]
    colours = [clusters.colormap.color_dict[i][:3] for i in range(1, 5)]
    swatches = ["#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgb)) for rgb in colours]
    assert [row[0] for row in view.rows()] == swatches
    assert "Cluster 4 is near-white" in view.title.text()  # suggested, not marked
    lines = plot_lines(view, qtbot, 4)  # one line per cluster
    assert view.plot_box.isVisibleTo(widget.native)
    np.testing.assert_allclose(lines[3].get_ydata(), [25, 75, 75, 25])  # the light share per t
    assert view.plot.figure.axes[0].get_xlabel() == "t"

    # tick cluster 4 as background: shares, features, metadata and plot follow, on both layers
    from qtpy.QtCore import Qt

    view.table.item(3, 4).setCheckState(Qt.CheckState.Checked)
    foreground = total[:3].sum()
    assert [row[2] for row in view.rows()] == [
        *(f"{100 * n / foreground:.1f}%" for n in total[:3]),
        "bg",
    ]
    for layer in (clusters, quantized):
        assert layer.metadata["napari_kquant"]["background"] == [4]
    np.testing.assert_allclose(clusters.features["foreground_share"][1:4], total[:3] / foreground)
    assert clusters.features["background"].tolist() == [False, False, False, False, True]
    lines = plot_lines(view, qtbot, 3)
    np.testing.assert_allclose(lines[2].get_ydata(), [100 / 3, 100, 100, 100 / 3])
    import json

    json.dumps(clusters.metadata)  # metadata stays JSON-serialisable
    # the quantized layer shows the same run's table
    viewer.layers.selection.active = quantized
    assert view.layer.name == quantized.name and view.rows()[3][4] is True
    np.testing.assert_array_equal(source.data, before)


def test_save_table_writes_the_table_and_the_per_plane_table(viewer, widget, qtbot, tmp_path):
    import pandas as pd

    _stack(viewer)
    run(widget, qtbot, k=4, seed="1")
    widget.view.set_background([4])
    written = widget.save_table(str(tmp_path / "movie.csv"))
    assert written == [str(tmp_path / "movie.csv"), str(tmp_path / "movie-planes.csv")]
    whole = pd.read_csv(tmp_path / "movie.csv")
    assert whole["count"].tolist() == [0, 512, 512, 1024, 2048]
    assert whole["background"].tolist() == [False, False, False, False, True]
    planes = pd.read_csv(tmp_path / "movie-planes.csv")
    assert list(planes.columns[:2]) == ["t", "label"] and len(planes) == 4 * 5
    assert planes[planes.label == 4]["count"].tolist() == [256, 768, 768, 256]
    np.testing.assert_allclose(planes[planes.label == 4]["area"], [32, 96, 96, 32])

    # bad paths: a notification, and nothing written or lost
    start = len(notification_manager.records)
    (tmp_path / "keep.txt").write_text("mine")
    assert widget.save_table(str(tmp_path / "keep.txt")) is None
    assert (tmp_path / "keep.txt").read_text() == "mine"
    (tmp_path / "dir.csv").mkdir()
    assert widget.save_table(str(tmp_path / "dir.csv")) is None
    assert widget.save_table(str(tmp_path / "missing" / "t.csv")) is None
    (tmp_path / "notes-planes.csv").write_text("my own notes\n")  # beside the chosen file
    assert widget.save_table(str(tmp_path / "notes.csv")) is None
    assert (tmp_path / "notes-planes.csv").read_text() == "my own notes\n"
    assert len(errors_since(start)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dir.csv",
        "keep.txt",
        "movie-planes.csv",
        "movie.csv",
        "notes-planes.csv",
    ]
    assert widget.save_table(str(tmp_path / "movie.csv")) is not None  # our own: replaced


def test_lazy_result_is_measured_on_request_in_one_pass(viewer, widget, qtbot):
    import dask.array as da

    blocks = np.tile(make_blocks(), (4, 4, 1))  # 128 x 128
    viewer.add_image(da.from_array(blocks, chunks=(64, 64, 3)), name="lazy", rgb=True)
    run(widget, qtbot, k=4, seed="1", sample="5000")
    view = widget.view
    assert view.measure_button.isVisibleTo(view) and not view.save_table_button.isEnabled()
    assert [row[2] for row in view.rows()] == ["—"] * 4
    worker = view.measure()
    qtbot.waitUntil(lambda: view._measuring is None, timeout=60_000)
    assert worker is not None
    clusters = viewer.layers["lazy k=4 clusters"]
    assert clusters.features["count"].tolist() == [0, 4096, 4096, 4096, 4096]
    assert clusters.metadata["napari_kquant"]["counts"] == [4096] * 4
    assert [row[2] for row in view.rows()] == ["25.0%"] * 4
    assert view.save_table_button.isEnabled() and not view.measure_button.isVisibleTo(view)
    assert isinstance(clusters.data, da.Array)  # still lazy


def test_measuring_a_layer_that_is_removed_meanwhile_changes_nothing(viewer, widget, qtbot):
    import dask.array as da

    blocks = np.tile(make_blocks(), (4, 4, 1))
    viewer.add_image(da.from_array(blocks, chunks=(64, 64, 3)), name="lazy", rgb=True)
    run(widget, qtbot, k=4, seed="1", sample="5000")
    clusters = viewer.layers["lazy k=4 clusters"]
    assert widget.view.measure() is not None
    viewer.layers.remove(clusters)
    viewer.layers.remove("lazy k=4 quantized")
    qtbot.waitUntil(lambda: widget.view._measuring is None, timeout=60_000)
    assert widget.view.layer is None and widget.view.title.text() == NO_RESULT
    assert clusters.metadata["napari_kquant"]["plane_counts"] is None


def test_flipped_layers_and_axis_names_that_clash_still_give_tables(
    viewer, widget, qtbot, tmp_path
):
    import pandas as pd

    viewer.add_image(make_blocks(), name="flipped", rgb=True, scale=(-0.5, 0.25))  # napari flips
    run(widget, qtbot, k=4, seed="1")
    assert widget.worker is None and widget.run_button.enabled  # idle again
    features = viewer.layers["flipped k=4 clusters"].features
    np.testing.assert_allclose(features["area"][1:], 256 * 0.125)  # areas stay positive
    stack = np.stack([make_blocks(seed=s) for s in range(2)])
    viewer.add_image(stack, name="clash", rgb=True, axis_labels=("count", "y", "x"))
    widget.form.image.value = viewer.layers["clash"]
    run(widget, qtbot, k=4, seed="1")
    widget.save_table(str(tmp_path / "clash.csv"))
    planes = pd.read_csv(tmp_path / "clash-planes.csv")
    assert list(planes.columns[:2]) == ["axis_0", "label"]  # not the 'count' column twice
    assert planes["count"].tolist() == [0, 256, 256, 256, 256] * 2


def test_suggest_k_draws_the_curve_and_a_click_sets_k(viewer, widget, qtbot):
    from conftest import blobs

    viewer.add_image(blobs(5), name="blobs", rgb=True)
    widget.form.seed.value = "0"
    assert widget.k_view.suggest() is not None
    qtbot.waitUntil(lambda: widget.k_view.worker is None, timeout=60_000)
    curve = widget.k_view.curve
    assert curve.knee == 5 and "knee K=5" in widget.k_view.status.text()
    axes = widget.k_view.plot.figure.axes[0]
    np.testing.assert_allclose(axes.collections[0].get_offsets()[:, 1], curve.delta_e)
    assert axes.lines[1].get_xdata()[0] == 5  # the knee's mark
    widget.k_view.choose(int(curve.knee))  # what clicking its point does
    assert widget.form.k.value == 5


def test_suggest_k_stops_when_pressed_again_and_refuses_no_image(viewer, widget, qtbot):
    start = len(notification_manager.records)
    assert widget.k_view.suggest() is None  # no image
    assert any("no image layer to suggest K" in m for m in errors_since(start))
    from skimage import data

    viewer.add_image(data.astronaut(), name="photo", rgb=True)
    assert widget.k_view.suggest() is not None
    widget.k_view.suggest()  # pressed again: stop
    qtbot.waitUntil(lambda: widget.k_view.worker is None, timeout=60_000)
    assert widget.k_view.curve is None and widget.k_view.status.text() == "stopped"


def test_merge_split_and_undo_in_the_dock_equal_the_engine(viewer, widget, qtbot):
    source = viewer.add_image(make_blocks(), name="b", rgb=True)
    before = np.array(source.data)
    run(widget, qtbot, k=3, seed="1")
    view = widget.view
    clusters, quantized = viewer.layers["b k=3 clusters"], viewer.layers["b k=3 quantized"]
    original = napari_kquant.quantize(make_blocks(), 3, channel_axis=-1, seed=1)
    view.select([2])  # one cluster: shown alone in the Labels layer, ready to paint with
    assert clusters.show_selected_label and clusters.selected_label == 2
    joined = int(np.argmax(original.counts)) + 1
    view.select([joined])
    assert view.split() is not None
    qtbot.waitUntil(lambda: view._editing is None, timeout=30_000)
    expected = napari_kquant.split(original, make_blocks(), joined, 2, channel_axis=-1,
                                   seed=clusters.metadata["napari_kquant"]["palette"]["fit"]
                                   ["edits"][0]["seed"])  # fmt: skip
    np.testing.assert_array_equal(clusters.data, expected.labels)
    np.testing.assert_array_equal(quantized.data, expected.quantized)
    assert clusters.features["count"].tolist() == [0, 256, 256, 256, 256]
    assert [row[1] for row in view.rows()] == ["1", "2", "3", "4"]
    view.select([3, 4])
    assert view.merge() is not None
    qtbot.waitUntil(lambda: view._editing is None, timeout=30_000)
    merged = napari_kquant.merge(expected, [3, 4])
    np.testing.assert_array_equal(clusters.data, merged.labels)
    np.testing.assert_array_equal(quantized.data, merged.quantized)
    assert sorted(np.unique(clusters.data)) == [1, 2, 3]  # no gaps
    import json

    json.dumps(clusters.metadata)
    assert clusters.metadata["napari_kquant"]["edited"] == [f"split {joined}", "merge [3, 4]"]
    view.undo()  # one step back: the split result again
    np.testing.assert_array_equal(clusters.data, expected.labels)
    np.testing.assert_array_equal(quantized.data, expected.quantized)
    assert clusters.features["count"].tolist() == [0, 256, 256, 256, 256]
    view.undo()  # only one step is kept: nothing more happens
    np.testing.assert_array_equal(clusters.data, expected.labels)
    assert view.recolour(1, "#ff00ff") is not None
    qtbot.waitUntil(lambda: view._editing is None, timeout=30_000)
    np.testing.assert_allclose(clusters.colormap.color_dict[1][:3], [1, 0, 1])
    recoloured = napari_kquant.recolour(expected, 1, "#ff00ff")
    np.testing.assert_array_equal(quantized.data, recoloured.quantized)
    assert (quantized.data[clusters.data == 1] == [255, 0, 255]).all()
    assert clusters.metadata["napari_kquant"]["centers"] == expected.centers.tolist()
    view.undo()
    np.testing.assert_array_equal(quantized.data, expected.quantized)
    np.testing.assert_array_equal(source.data, before)  # the source is untouched


def test_edits_that_cannot_be_made_are_notifications(viewer, widget, qtbot):
    import dask.array as da

    viewer.add_image(make_blocks(), name="b", rgb=True)
    run(widget, qtbot, k=3, seed="1")
    view = widget.view
    start = len(notification_manager.records)
    view.select([1])
    assert view.merge() is None  # one cluster: nothing to merge
    viewer.layers.remove("b")
    view.select([1])
    assert view.split() is None  # the source image is gone
    blocks = np.tile(make_blocks(), (4, 4, 1))
    viewer.add_image(da.from_array(blocks, chunks=(64, 64, 3)), name="lazy", rgb=True)
    widget.form.image.value = viewer.layers["lazy"]
    run(widget, qtbot, k=3, seed="1", sample="5000")
    view.select([1, 2])
    assert view.merge() is None  # lazy results are not edited
    messages = errors_since(start)
    assert any("Select two or more clusters" in m for m in messages)
    assert any("not in the viewer" in m for m in messages)
    assert any("lazy result" in m for m in messages)


def test_undo_after_a_new_run_changes_nothing_and_says_so(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="b", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    view = widget.view
    view.select([1, 2])
    assert view.merge() is not None
    qtbot.waitUntil(lambda: view._editing is None, timeout=30_000)
    assert [layer.name for layer in viewer.layers] == ["b", "b k=3 quantized", "b k=3 clusters"]
    run(widget, qtbot, k=3, seed="2")  # the same names: the layers refreshed by a new run
    clusters = viewer.layers["b k=3 clusters"]
    fresh = np.array(clusters.data)
    start = len(notification_manager.records)
    view.undo()
    np.testing.assert_array_equal(clusters.data, fresh)  # the new run's result stays
    assert any("Nothing to undo" in m for m in errors_since(start))
