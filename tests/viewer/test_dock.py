"""The dock's layout in a real viewer: it fits a laptop screen, shows only the fields that
apply, keeps results in their own tab, shows a selected cluster, and turns errors into
notifications."""

import os

import cv2
import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from napari.utils.theme import get_theme
from qtpy.QtWidgets import QPushButton

from napari_kquant import fit, load_photo, quantize
from napari_kquant.files._files import FileError
from napari_kquant.viewer._plots import notifying
from napari_kquant.viewer._result_view import TABLE_ROWS

from conftest import errors_since, make_blocks, run, snapshot, write_rgb

#: A laptop screen's height, less a taskbar.
SCREEN = 768


def shown_fields(widget) -> list[str]:
    """The fields a user can see: visible, and not inside a folded section."""
    return [
        name
        for container in widget.form.containers
        for name in container.asdict()
        if getattr(widget.form, name).native.isVisible()
        and not getattr(widget.form, name).native.visibleRegion().isEmpty()
    ]


def show(viewer, widget, qtbot):
    """Show the viewer's window (tests make it hidden), as a user sees it."""
    viewer.window._qt_window.resize(1366, SCREEN - 28)  # a laptop's screen, less a taskbar
    viewer.window._qt_window.show()
    qtbot.waitUntil(lambda: widget.native.isVisible())


def fits(viewer, widget):
    """The window needs no more than the screen, and no visible field is squashed."""
    window = viewer.window._qt_window
    assert window.minimumSizeHint().height() <= SCREEN
    assert widget.native.minimumSizeHint().height() <= SCREEN
    for name in shown_fields(widget):
        field = getattr(widget.form, name).native
        assert field.height() >= field.minimumSizeHint().height(), name
    for i in range(widget.tabs.count()):  # nothing cut off on the right, under the scroll bar
        scroll = widget.tabs.widget(i)
        needs = scroll.widget().minimumSizeHint().width()
        until(lambda s=scroll, n=needs: s.viewport().width() >= n)
        assert scroll.viewport().width() >= needs, widget.tabs.tabText(i)


def until(condition, timeout=5.0):
    """Process Qt events until ``condition()`` holds or ``timeout`` seconds pass."""
    import time

    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        QApplication.processEvents()


@pytest.fixture
def photo(viewer):
    return viewer.add_image(load_photo(), name="photo", rgb=True)


def test_the_dock_opens_with_the_essentials_and_folded_sections(viewer, widget, photo, qtbot):
    show(viewer, widget, qtbot)
    shown = shown_fields(widget)
    assert shown == ["image", "palette", "k"]
    assert len(shown) <= 10
    assert all(not section.isExpanded() for section in widget.sections.values())
    assert widget.k_view.isVisible()  # Suggest K and live, beside K
    assert widget.run_button.native.isDefault()
    assert not widget.view.actions.isVisibleTo(widget.native)  # nothing to edit or save yet
    fits(viewer, widget)


def test_fields_show_only_where_they_apply(viewer, widget, photo):
    def showing(name):
        if name in widget.sections:
            return widget.sections[name].isVisibleTo(widget.native)
        return getattr(widget.form, name).native.isVisibleTo(widget.native)

    assert showing("Colour space") and not showing("white")
    widget.form.color_space.value = "od"
    assert showing("white")
    assert not showing("dither_strength")
    widget.form.dither.value = "ordered"
    assert showing("dither_strength")
    assert not showing("scope")  # a single photo has no planes
    assert showing("sample")
    widget.form.exact.value = True
    assert not showing("sample")

    gray = viewer.add_image(make_blocks()[..., 0], name="gray")
    widget.form.image.value = gray
    assert not showing("Colour space")  # one channel: nothing to choose
    stack = viewer.add_image(np.stack([make_blocks()] * 3), name="stack", rgb=True)
    widget.form.image.value = stack
    assert showing("scope")

    widget.form.palette.value = "load a palette file"
    assert showing("palette_file")
    assert not showing("k") and not showing("Fit") and not showing("Colour space")
    assert not widget.k_view.isVisibleTo(widget.native)


def test_a_gray_image_is_fitted_in_rgb_whatever_the_hidden_colour_field_holds(
    viewer, widget, qtbot
):
    widget.form.color_space.value = "lab"  # chosen for a colour image, then hidden
    viewer.add_image(make_blocks()[..., 0], name="gray")
    start = len(notification_manager.records)
    run(widget, qtbot, k=2, seed="1")
    assert errors_since(start) == []
    assert viewer.layers["gray k=2 clusters"].metadata["napari_kquant"]["color_space"] == "rgb"


def test_results_have_their_own_tab_with_eight_table_rows(viewer, widget, photo, qtbot):
    show(viewer, widget, qtbot)
    run(widget, qtbot, k=12, seed="1")
    assert widget.tabs.currentIndex() == 1  # the result is shown where it is
    table = widget.view.table
    assert table.rowCount() == 12
    qtbot.waitUntil(lambda: table.isVisible())
    row = table.rowHeight(0)
    assert table.minimumHeight() >= TABLE_ROWS * row
    qtbot.waitUntil(lambda: table.viewport().height() >= TABLE_ROWS * row)
    assert widget.tabs.currentWidget().verticalScrollBar().value() == 0  # seen from the top
    assert widget.view.actions.isVisible()
    fits(viewer, widget)


def test_a_stack_with_its_k_curve_fits_the_dock_width(viewer, widget, qtbot):
    show(viewer, widget, qtbot)
    stack = np.stack([np.roll(load_photo()[::2, ::2], 20 * s, axis=1) for s in range(12)])
    widget.form.image.value = viewer.add_image(stack, name="stack", rgb=True)
    fits(viewer, widget)
    run(widget, qtbot, k=6, seed="1")
    assert widget.k_view.suggest() is not None
    qtbot.waitUntil(lambda: widget.k_view.worker is None, timeout=120_000)
    assert widget.tabs.currentIndex() == 1
    fits(viewer, widget)


def test_selecting_a_cluster_shows_it_and_clearing_restores_the_view(viewer, widget, photo, qtbot):
    show(viewer, widget, qtbot)
    run(widget, qtbot, k=8, seed="1")
    clusters = viewer.layers["photo k=8 clusters"]
    colours = dict(clusters.colormap.color_dict)
    before = viewer.screenshot(canvas_only=True, flash=False)
    widget.view.select([3])
    shown = viewer.screenshot(canvas_only=True, flash=False)
    changed = (shown != before).any(axis=-1).mean()
    assert changed >= 0.01
    assert not viewer.layers["photo k=8 quantized"].visible
    widget.view.table.clearSelection()
    after = viewer.screenshot(canvas_only=True, flash=False)
    np.testing.assert_array_equal(after, before)
    assert viewer.layers["photo k=8 quantized"].visible
    assert all(np.array_equal(clusters.colormap.color_dict[i], colours[i]) for i in range(1, 9))
    np.testing.assert_array_equal(photo.data, load_photo())


def test_an_error_in_a_qt_callback_is_a_notification(viewer, qtbot):
    def broken():
        raise RuntimeError("the details of what went wrong")

    button = QPushButton("go")
    qtbot.addWidget(button)
    button.clicked.connect(notifying(broken))
    start = len(notification_manager.records)
    button.click()  # no exception escapes into Qt (which would abort a plain script)
    (said,) = errors_since(start)
    first, _, rest = said.partition("\n")
    assert len(first) < 60 and "the details of what went wrong" in rest


def test_a_refused_run_says_all_of_it_below_a_short_first_line(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    start = len(notification_manager.records)
    widget.form.k.value = 1000  # more clusters than the 1,024 pixels' distinct colours
    widget.form.sample.value = "5"
    widget.run()
    (said,) = errors_since(start)
    first, _, rest = said.partition("\n")
    assert first == "K-means quantization: not run"
    assert "sample=5 is smaller than k=1000" in rest


@pytest.mark.parametrize(
    "image, mask, k, said",
    [
        (np.zeros((20, 20), bool), None, 3, "image dtype bool is not supported"),
        (np.zeros((20, 20), np.float16), None, 3, "image dtype float16 is not supported"),
        (np.zeros((3, 3), np.uint8), None, 16, "k=16 is larger than the number of usable"),
        (np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), 3, "no usable pixel"),
    ],
    ids=["bool", "float16", "k above the pixels", "an empty mask"],
)
def test_input_a_run_cannot_take_is_refused_before_the_worker_starts(
    viewer, widget, qtbot, image, mask, k, said
):
    layer = viewer.add_image(image, name="image")
    if mask is not None:
        widget.reset_choices()
        widget.form.mask.value = viewer.add_labels(mask, name="mask")
    widget.form.image.value = layer
    widget.form.k.value = k
    start = len(notification_manager.records)
    widget.run()
    assert widget.worker is None  # nothing started: "not run", not "failed"
    (message,) = errors_since(start)
    assert message.startswith("K-means quantization: not run\n") and said in message
    assert widget.status.value == "not run: see the notification"
    assert [layer.name for layer in viewer.layers] == ["image"] + ["mask"] * (mask is not None)


@pytest.mark.parametrize("levels", [1, 2], ids=["one level", "two of one size"])
def test_a_multiscale_layer_that_is_no_pyramid_is_quantized_as_its_first_level(
    viewer, widget, qtbot, levels
):
    """napari takes a multiscale layer of one level, or of levels of one size; the engine's
    pyramid is finest first, each level smaller: the first level is the image."""
    blocks = make_blocks()
    layer = viewer.add_image([blocks] * levels, multiscale=True, rgb=True, name="ms")
    widget.form.image.value = layer
    start = len(notification_manager.records)
    run(widget, qtbot, k=4, seed="1")
    assert errors_since(start) == []
    labels = viewer.layers["ms k=4 clusters"].data
    np.testing.assert_array_equal(np.asarray(labels), quantize(blocks, 4, channel_axis=-1,
                                                               seed=1).labels)  # fmt: skip


def test_a_kept_palette_applied_under_a_mask_with_nothing_in_it_labels_nothing(
    viewer, widget, qtbot
):
    source = viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    kept = viewer.layers["blocks k=4 clusters"]
    widget.reset_choices()
    empty = viewer.add_labels(np.zeros((32, 32), np.uint8), name="empty")
    widget.reset_choices()
    widget.form.image.value, widget.form.mask.value = source, empty
    start = len(notification_manager.records)
    run(widget, qtbot, palette=kept)
    assert errors_since(start) == [] and widget.status.value.startswith("done")
    assert not np.asarray(viewer.layers["blocks k=4 clusters"].data).any()  # refreshed: all 0


def test_the_palette_list_offers_each_run_once(viewer, widget, photo, qtbot):
    run(widget, qtbot, k=3, seed="1")
    run(widget, qtbot, k=4, seed="1")
    combo = widget.form.palette.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert sorted(labels) == ["fit a new palette", "load a palette file",
                              "palette of 'photo k=3'", "palette of 'photo k=4'"]  # fmt: skip


def test_plots_follow_the_theme_with_a_legend_and_the_plane_on_screen(viewer, widget, qtbot):
    stack = np.stack([make_blocks(seed=s) for s in range(4)])
    stack[1:3, :16] = 240
    viewer.add_image(stack, name="movie", rgb=True, axis_labels=("t", "y", "x"))
    run(widget, qtbot, k=4, seed="1")
    view = widget.view
    qtbot.waitUntil(lambda: view.plot_box.isVisibleTo(widget.native))
    figure = view.plot.figure
    (axes,) = figure.axes
    theme = get_theme(viewer.theme)
    assert figure.get_facecolor()[:3] == pytest.approx(
        tuple(int(theme.background.as_hex()[i : i + 2], 16) / 255 for i in (1, 3, 5))
    )
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["1", "2", "3", "4"]
    assert axes.get_xlabel() == "t"
    viewer.dims.set_current_step(0, 2)
    assert list(view.plot_box._marker.get_xdata()) == [2, 2]
    viewer.theme = "light"  # the plot follows at once, without a new run
    qtbot.waitUntil(lambda: figure.get_facecolor()[0] > 0.5)


def test_merge_names_the_new_k_and_lazy_results_cannot_be_merged(viewer, widget, qtbot):
    import dask.array as da

    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    widget.view.select([1, 2])
    worker = widget.view.merge()
    qtbot.waitUntil(lambda: widget.view._editing is None)
    assert worker is not None
    names = [layer.name for layer in viewer.layers]
    assert names == ["blocks", "blocks k=3 quantized", "blocks k=3 clusters"]

    viewer.add_image(da.from_array(make_blocks(), chunks=(16, 16, 3)), name="lazy", rgb=True)
    widget.form.image.value = viewer.layers["lazy"]
    run(widget, qtbot, k=4, seed="1", sample="1000")
    widget.view.show_layer(viewer.layers["lazy k=4 clusters"])
    widget.view.select([1, 2])
    assert not widget.view.merge_button.isEnabled()
    assert "lazy result" in widget.view.merge_button.toolTip()


def test_every_control_has_a_tooltip(viewer, widget, photo):
    for container in widget.form.containers:
        for name in container.asdict():
            assert getattr(widget.form, name).tooltip, name
    buttons = [widget.run_button.native, widget.cancel_button.native, widget.k_view.button,
               widget.k_view.live, widget.view.save_table_button, widget.view.save_palette_button,
               widget.view.merge_button, widget.view.split_button, widget.view.recolour_button,
               widget.view.undo_button, widget.view.measure_button]  # fmt: skip
    for button in buttons:
        assert button.toolTip(), button.text()
    for title, section in widget.sections.items():
        assert section.toolTip(), title


def test_stacks_are_measured_as_what_they_are(viewer, widget, qtbot):
    stack = np.stack([make_blocks(seed=s) for s in range(4)])
    viewer.add_image(stack, name="z", rgb=True, scale=(2, 0.5, 0.5), units=("um", "um", "um"))
    run(widget, qtbot, k=4, seed="1")
    features = viewer.layers["z k=4 clusters"].features
    assert features["count"].tolist()[1:] == [1024] * 4  # 256 px x 4 planes
    np.testing.assert_allclose(features["area"][1:], 256 * 0.25)  # per plane, in µm²
    np.testing.assert_allclose(features["volume"][1:], 1024 * 0.5)  # voxels of 0.5 µm³
    assert features["volume_unit"][1] == "µm³"
    header = widget.view.table.horizontalHeaderItem(3).text()
    assert header == "volume" and widget.view.rows()[0][3] == "512 µm³"

    viewer.add_image(stack, name="t", rgb=True, scale=(1, 0.5, 0.5), units=("s", "um", "um"))
    widget.form.image.value = viewer.layers["t"]
    run(widget, qtbot, k=4, seed="1")
    features = viewer.layers["t k=4 clusters"].features
    np.testing.assert_allclose(features["area"][1:], 256 * 0.25)  # the mean, not 4x
    assert "volume" not in features
    assert widget.view.table.horizontalHeaderItem(3).text() == "area / plane"


def test_apply_to_many_writes_a_folder_through_the_palette_with_one_table(
    viewer, widget, qtbot, tmp_path
):
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        write_rgb(images / f"b{seed}.png", make_blocks(seed=seed))
    before = snapshot(images)
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    with pytest.raises(FileError, match="exists"):  # it would write over the inputs
        widget.apply_to_many(str(images), str(images))
    assert snapshot(images) == before and widget.worker is None

    out = tmp_path / "out"
    worker = widget.apply_to_many(str(images), str(out))
    assert worker is not None and not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    table = widget.batch_view.result.table
    assert table["file"].tolist() == [f"b{s}.png" for s in range(3) for _ in range(5)]
    assert widget.batch_view.table.model().rowCount() == 15
    palette = fit(make_blocks(), 4, channel_axis=-1, seed=1)
    for seed in range(3):
        direct = palette.apply(make_blocks(seed=seed), channel_axis=-1)
        written = cv2.imread(str(out / f"b{seed}-labels.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written, direct.labels)
    saved = widget.batch_view.save(str(tmp_path / "batch.csv"))
    assert saved and (tmp_path / "batch.csv").read_text().startswith("file,label,hex,count")
    assert snapshot(images) == before


def test_undo_after_an_edit_of_a_shown_cluster_restores_its_own_colours(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    clusters = viewer.layers["blocks k=4 clusters"]
    colours = {i: np.array(clusters.colormap.color_dict[i]) for i in range(1, 5)}
    opacity = clusters.opacity
    widget.view.select([2])  # shown alone, in a highlight colour
    assert widget.view.split() is not None
    qtbot.waitUntil(lambda: widget.view._editing is None, timeout=30_000)
    assert clusters.name == "blocks k=5 clusters" and clusters.opacity == opacity
    widget.view.undo()
    assert clusters.name == "blocks k=4 clusters"
    for i in range(1, 5):
        np.testing.assert_array_equal(clusters.colormap.color_dict[i], colours[i])
    assert viewer.layers["blocks k=4 quantized"].visible


def test_a_new_run_while_a_cluster_is_shown_keeps_the_table_in_the_clusters_colours(
    viewer, widget, qtbot
):
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    widget.view.select([2])
    run(widget, qtbot, k=4, seed="9")  # refreshes the same layers
    clusters = viewer.layers["blocks k=4 clusters"]
    own = [
        "#{:02x}{:02x}{:02x}".format(
            *(round(255 * c) for c in clusters.colormap.color_dict[i][:3])
        )
        for i in range(1, 5)
    ]
    assert [row[0] for row in widget.view.rows()] == own
    assert not clusters.show_selected_label and viewer.layers["blocks k=4 quantized"].visible


def test_an_edit_overtaken_by_a_new_run_is_not_applied(viewer, widget, qtbot):
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    widget.view.select([1])
    worker = widget.view.split()
    assert worker is not None
    run(widget, qtbot, k=4, seed="7")
    qtbot.waitUntil(lambda: widget.view._editing is None, timeout=30_000)
    clusters = viewer.layers["blocks k=4 clusters"]
    assert clusters.metadata["napari_kquant"]["seed"] == 7
    assert "edited" not in clusters.metadata["napari_kquant"]


def test_apply_to_many_refuses_a_second_start_and_stops_when_the_viewer_closes(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(120):  # far more work than the close takes to reach the worker
        write_rgb(images / f"b{i:03d}.png", np.tile(make_blocks(seed=i), (4, 4, 1)))
    before = snapshot(images)
    viewer.add_image(make_blocks(), name="blocks", rgb=True)
    run(widget, qtbot, k=4, seed="1")
    out = tmp_path / "out"
    worker = widget.apply_to_many(str(images), str(out))
    assert worker is not None
    assert widget.apply_to_many(str(images), str(tmp_path / "other")) is None  # one at a time
    widget.run()  # ignored while the batch runs
    assert widget.worker is worker
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    stop = widget._stop
    viewer.close()
    qtbot.waitUntil(stop.is_set, timeout=10_000)  # the dock's end stops the batch
    qtbot.waitUntil(lambda: finished == [True], timeout=120_000)
    written = sorted(os.listdir(out)) if out.exists() else []
    assert len(written) < 240  # stopped before the end
    assert not [name for name in written if ".part" in name or name.startswith(".")]
    for name in written:  # every file that landed is whole
        assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED) is not None, name
    assert snapshot(images) == before
    assert not (tmp_path / "other").exists()


def test_closing_the_dock_during_a_run_stops_it_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.image.value = viewer.add_image(cv2.resize(load_photo(), (1000, 1000)))
    widget.form.k.value = 12
    widget.form.exact.value = True  # every pixel: seconds of cv2.kmeans
    widget.run()
    worker = widget.worker
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    qtbot.waitUntil(lambda: widget.progress.value > 0, timeout=60_000)  # it is fitting
    dock.title.close_button.click()  # napari's "x": the dock leaves the window, not destroyed
    assert widget.worker is None and widget._stop.is_set()
    qtbot.waitUntil(lambda: finished == [True], timeout=120_000)  # after what it returned
    assert widget._drawing is None
    assert [layer.name for layer in viewer.layers] == [widget.form.image.value.name]


def test_closing_the_dock_during_a_live_preview_adds_no_preview(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.image.value = viewer.add_image(load_photo(), name="p")
    widget.form.exact.value = True  # every pixel on screen: the preview takes a while
    widget.k_view.live.setChecked(True)
    worker = widget._preview_worker
    assert worker is not None
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    dock.title.close_button.click()
    qtbot.waitUntil(lambda: finished == [True], timeout=120_000)
    assert [layer.name for layer in viewer.layers] == ["p"]


def test_unticking_live_during_a_preview_adds_no_preview(viewer, widget, qtbot):
    widget.form.image.value = viewer.add_image(load_photo(), name="p")
    widget.form.exact.value = True  # every pixel on screen: the preview takes a while
    widget.k_view.live.setChecked(True)
    worker = widget._preview_worker
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    widget.k_view.live.setChecked(False)
    qtbot.waitUntil(lambda: finished == [True], timeout=120_000)
    assert [layer.name for layer in viewer.layers] == ["p"]


def test_a_preview_keeps_the_docks_image_when_another_layer_is_selected(viewer, widget, qtbot):
    """Adding the preview selects it; putting the selection back must not make the dock
    (which follows the selected layer) preview or run that other layer."""
    chosen = viewer.add_image(make_blocks(), name="chosen", rgb=True)
    other = viewer.add_image(make_blocks(seed=2), name="other", rgb=True)
    widget.form.image.value = chosen
    assert viewer.layers.selection.active is other
    widget.k_view.live.setChecked(True)
    qtbot.waitUntil(lambda: "chosen preview" in viewer.layers and widget._preview_worker is None
                    and not widget._preview_again, timeout=30_000)  # fmt: skip
    assert viewer.layers.selection.active is other  # the selection as it was
    assert widget.form.image.value is chosen
    assert [layer.name for layer in viewer.layers] == ["chosen", "other", "chosen preview"]


def test_closing_the_dock_takes_its_live_preview_away(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.form.image.value = viewer.add_image(make_blocks(), name="b", rgb=True)
    widget.k_view.live.setChecked(True)
    qtbot.waitUntil(lambda: "b preview" in viewer.layers, timeout=30_000)
    dock.title.close_button.click()
    assert [layer.name for layer in viewer.layers] == ["b"]


def test_the_first_session_compiles_the_kernels_elsewhere_and_later_ones_start_nothing():
    """numba's compiler holds the GIL, so a fresh install's first session compiles in a
    Python of its own (`_warm.PRECOMPILE`, started by the dock's warm-up). Here the cache
    is warm (this suite has run the kernels): nothing starts, and the code the first
    session runs works as a process of its own."""
    import subprocess
    import sys

    from napari_kquant.core._lloyd import lloyd
    from napari_kquant.viewer import _warm

    lloyd(np.array([[0.0, 0, 0], [9, 9, 9]]), np.ones(2), np.array([[1.0, 1, 1], [8, 8, 8]]), 5,
          0.0, np.zeros(2, np.int64))  # fmt: skip
    assert _warm.kernels_cached() and _warm.compile_elsewhere() is None
    done = subprocess.run([sys.executable, "-c", _warm.PRECOMPILE], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_the_first_sessions_compile_covers_dithering_and_clean_up(tmp_path):
    """A fresh install (an empty numba cache): after `_warm.PRECOMPILE`, a run with
    dithering and clean-up (whole planes and in chunks) loads those kernels from the
    cache and compiles none."""
    import os
    import subprocess
    import sys

    from napari_kquant.viewer import _warm

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", _warm.PRECOMPILE], capture_output=True,
                           text=True, timeout=600, env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    probe = (
        "import numpy as np; from napari_kquant import quantize; "
        "from napari_kquant.finish import _clean, _dither, _regions; "
        "x = np.random.default_rng(1).integers(0, 256, (80, 90, 3), np.uint8); "
        "quantize(x, 5, channel_axis=-1, seed=1, min_size=6, smooth=2); "
        "quantize(x, 5, channel_axis=-1, seed=1, dither=True); "
        "quantize(x, 5, channel_axis=-1, seed=1, dither='ordered'); "
        "import dask.array as da; "
        "y = np.ones((90, 100), np.uint8); y[2::9, 4::6] = 3; "
        "_clean.clean_lazy(da.from_array(y, chunks=45), min_size=5).compute(); "
        "kernels = [_regions._merge_kernel, _regions._adjacency_kernel, "
        "_regions._components_kernel, _clean._smooth_kernel, _dither._floyd_steinberg, "
        "_dither._ordered]; "
        "print(sum(sum(k.stats.cache_misses.values()) for k in kernels), "
        "sum(sum(k.stats.cache_hits.values()) for k in kernels))"
    )
    later = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=600, env=env)  # fmt: skip
    assert later.returncode == 0, later.stderr
    misses, hits = map(int, later.stdout.split())
    assert misses == 0 and hits >= 7


def test_the_warm_up_stops_when_the_application_quits(viewer, widget, qtbot):
    """The warm-up is not a daemon (at exit a daemon still compiling or importing could
    abort the process): when the application quits it stops after its current step, so
    a viewer closed at once does not wait through all of it. A new dock clears the flag."""
    import subprocess
    import sys

    from qtpy.QtWidgets import QApplication

    from napari_kquant.viewer import _warm
    from napari_kquant.viewer._widget import KQuantWidget

    app = QApplication.instance()
    _warm.quitting.set()  # as an earlier event loop's end would have
    listening = app.receivers(app.aboutToQuit)
    KQuantWidget(viewer)
    assert not _warm.quitting.is_set()  # a new dock: cleared
    assert app.receivers(app.aboutToQuit) == listening + 1  # and set when the app quits
    probe = (
        "import sys; from napari_kquant.viewer import _warm; _warm.quitting.set(); "
        "_warm.warm_up(); print(_warm._warmed, 'matplotlib.figure' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr  # stopped before its steps


CLOSE_DURING_A_FIT = """
import atexit, threading
import cv2, napari
from qtpy.QtCore import QTimer
from napari_kquant import load_photo

def helper_alive():
    return any(t.name == "kquant-kmeans" and t.is_alive() for t in threading.enumerate())

atexit.register(lambda: print("helper alive at exit" if helper_alive() else "helper done",
                              flush=True))
viewer = napari.Viewer()
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
widget.form.image.value = viewer.add_image(cv2.resize(load_photo(), (1000, 1000)))
widget.form.k.value = 12
widget.form.exact.value = True  # every pixel: cv2.kmeans runs for seconds

def close_once_fitting():
    if helper_alive():
        viewer.window._qt_window.close()
    else:
        QTimer.singleShot(10, close_once_fitting)

QTimer.singleShot(0, widget.run_button.native.click)
QTimer.singleShot(0, close_once_fitting)
napari.run()
"""


@pytest.mark.slow
def test_closing_napari_during_a_fit_ends_the_process_cleanly():
    """A cv2.kmeans call that returns while Python shuts down aborts the process
    ("FATAL: exception not rethrown"): the interpreter waits for the fit's helper
    thread before it shuts down."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CLOSE_DURING_A_FIT], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "helper done", done.stdout
    assert "FATAL" not in done.stderr
