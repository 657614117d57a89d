"""Indexed (palette) PNG, GIF and TIFF files of quantized pictures and of labels."""

import io

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage import data

from napari_kquant import quantize
from napari_kquant.engine._apply import output_colours
from napari_kquant.finish._indexed import (
    _same_colours,
    encode_indexed,
    labels_palette,
    picture_indices,
    rgb8,
)

FIVE = np.array([[10, 20, 30], [250, 0, 0], [0, 200, 0], [30, 30, 240], [255, 255, 255]], np.uint8)
EXTS = [".png", ".gif", ".tif"]


def five_colour_picture(shape=(12, 20), seed=0):
    """(H, W, 3) uint8 of random FIVE colours, and the index of each pixel's colour."""
    which = np.random.default_rng(seed).integers(0, 5, shape)
    return FIVE[which], which


def read_pillow(blob):
    """Indices, (m, 3) palette, transparency and the RGBA each pixel shows."""
    with Image.open(io.BytesIO(blob)) as image:
        image.load()
        if image.mode == "L":  # Pillow opens a GIF whose palette is the gray ramp as gray
            palette = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
        else:
            palette = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)
        return (
            image.mode,
            np.asarray(image),
            palette,
            image.info.get("transparency"),
            np.asarray(image.convert("RGBA")),
        )


def read_tiff(blob):
    """Indices and (256, 3) 8-bit palette of a palette TIFF."""
    with tifffile.TiffFile(io.BytesIO(blob)) as tif:
        page = tif.pages.first
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        colormap = page.colormap
        assert np.all(colormap % 257 == 0)
        return page.asarray(), (colormap // 257).T.astype(np.uint8)


def shown_rgba(ext, blob):
    """What a viewer shows: (H, W, 4) uint8 (a TIFF palette has no alpha)."""
    if ext == ".tif":
        indices, palette = read_tiff(blob)
        rgb = palette[indices]
        return np.dstack([rgb, np.full(indices.shape, 255, np.uint8)])
    return read_pillow(blob)[4]


def png_bit_depth(blob):
    return blob[24]  # signature (8), IHDR length and type (8), width and height (8)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", EXTS)
def test_five_colours_round_trip_with_same_indices_palette_and_colours(ext):
    picture, which = five_colour_picture()
    indexed = picture_indices(picture, FIVE, channel_axis=-1)
    np.testing.assert_array_equal(indexed.indices, which)
    np.testing.assert_array_equal(indexed.palette, FIVE)
    assert indexed.transparent is None
    blob = encode_indexed(ext, *indexed)
    if ext == ".tif":
        indices, palette = read_tiff(blob)
        np.testing.assert_array_equal(palette[:5], FIVE)
        assert not palette[5:].any()  # padded to 256 entries with black
    else:
        mode, indices, palette, transparency, rgba = read_pillow(blob)
        assert mode == "P" and transparency is None
        # PNG: exactly 5 entries; GIF: the table padded with black to 8, in the same order
        np.testing.assert_array_equal(palette[:5], FIVE)
        assert len(palette) == (5 if ext == ".png" else 8)
        np.testing.assert_array_equal(rgba[..., 3], 255)
    np.testing.assert_array_equal(indices, which)
    np.testing.assert_array_equal(shown_rgba(ext, blob)[..., :3], picture)


def test_png_holds_exactly_its_entries_at_the_smallest_bit_depth():
    for k, depth in [(2, 1), (4, 2), (5, 4), (16, 4), (17, 8)]:
        palette = np.repeat(np.arange(k, dtype=np.uint8)[:, None] * 15, 3, axis=1)
        indices = (np.arange(64, dtype=np.uint8) % k).reshape(8, 8)
        blob = encode_indexed(".png", indices, palette)
        assert png_bit_depth(blob) == depth
        assert read_pillow(blob)[2].shape == (k, 3)


def test_upper_case_extension_and_tiff_spelling():
    picture, which = five_colour_picture()
    indexed = picture_indices(picture, FIVE, channel_axis=-1)
    assert encode_indexed(".PNG", *indexed)[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(read_tiff(encode_indexed(".tiff", *indexed))[0], which)


def test_indexed_png_of_a_photo_is_several_times_smaller_than_rgb():
    image = data.astronaut()
    result = quantize(image, 16, channel_axis=-1, seed=0)
    colours = output_colours(result.centers, image.dtype)[1:]
    indexed = picture_indices(result.quantized, colours, channel_axis=-1)
    # an undithered picture's indices are its labels, less one
    np.testing.assert_array_equal(indexed.indices.astype(int) + 1, result.labels)
    _, rgb_png = cv2.imencode(".png", result.quantized[..., ::-1])
    blob = encode_indexed(".png", *indexed)
    mode, _, palette, _, rgba = read_pillow(blob)
    assert mode == "P" and len(palette) == 16 and png_bit_depth(blob) == 4
    np.testing.assert_array_equal(rgba[..., :3], result.quantized)
    assert len(rgb_png) / len(blob) > 3.5  # measured 165,749 / 38,267 bytes = 4.3


def test_three_colour_png_is_palette_and_smaller_than_rgb():
    which = np.kron(np.arange(3).reshape(3, 1), np.ones((40, 60), int))
    picture = FIVE[:3][which]
    blob = encode_indexed(".png", *picture_indices(picture, FIVE[:3], channel_axis=-1))
    _, rgb_png = cv2.imencode(".png", picture[..., ::-1])
    assert read_pillow(blob)[0] == "P" and png_bit_depth(blob) == 2
    assert len(blob) < len(rgb_png)


def test_channels_first_picture():
    picture, which = five_colour_picture()
    indexed = picture_indices(np.moveaxis(picture, -1, 0), FIVE, channel_axis=0)
    np.testing.assert_array_equal(indexed.indices, which)


# --- colours are found by value ----------------------------------------------------------------


def test_dithered_picture_gets_the_index_of_each_pixels_colour_not_its_label():
    image = data.astronaut()[:96, :128]
    result = quantize(image, 6, channel_axis=-1, seed=0)
    colours = output_colours(result.centers, image.dtype)[1:]
    rng = np.random.default_rng(1)
    dithered = colours[rng.integers(0, 6, result.labels.shape)]  # any palette colour anywhere
    indexed = picture_indices(dithered, colours, channel_axis=-1, left_out=result.labels == 0)
    np.testing.assert_array_equal(colours[indexed.indices], dithered)
    for ext in EXTS:
        np.testing.assert_array_equal(
            shown_rgba(ext, encode_indexed(ext, *indexed))[..., :3], dithered
        )


def test_a_repeated_colour_gets_its_first_index_and_survives_gif():
    colours = np.array([[5, 5, 5], [90, 10, 10], [5, 5, 5], [200, 200, 0]], np.uint8)
    which = np.array([[0, 1, 2, 3]] * 4)
    indexed = picture_indices(colours[which], colours, channel_axis=-1)
    np.testing.assert_array_equal(indexed.indices, [[0, 1, 0, 3]] * 4)
    np.testing.assert_array_equal(indexed.palette, colours)  # the duplicate is kept
    _, indices, palette, _, _ = read_pillow(encode_indexed(".gif", *indexed))
    np.testing.assert_array_equal(palette[:4], colours)
    np.testing.assert_array_equal(indices, indexed.indices)


def test_gif_keeps_indices_where_pillows_default_would_renumber_them():
    # Pillow's GIF writer, by default, drops unused entries of a small image and renumbers the
    # rest; encode_indexed turns that off, so a GIF's indices are ours too.
    palette = np.arange(48, dtype=np.uint8).reshape(16, 3) * 5
    indices = np.array([[3, 15], [15, 9]], np.uint8)
    default = io.BytesIO()
    image = Image.frombytes("P", (2, 2), indices.tobytes())
    image.putpalette(palette.tobytes(), "RGB")
    image.save(default, format="GIF")
    assert not np.array_equal(read_pillow(default.getvalue())[1], indices)
    _, ours, back_palette, _, _ = read_pillow(encode_indexed(".gif", indices, palette))
    np.testing.assert_array_equal(ours, indices)
    np.testing.assert_array_equal(back_palette, palette)


def test_colour_check_compares_what_each_pixel_shows():
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    palette = np.array([[0, 0, 0], [10, 20, 30], [40, 50, 60]], np.uint8)
    renumbered = np.array([[2, 0], [1, 0]], np.uint8)
    moved = palette[[1, 2, 0]]
    assert _same_colours(indices, palette, 0, renumbered, moved, 2)
    assert not _same_colours(indices, palette, 0, renumbered, moved, None)  # opaque now
    assert not _same_colours(indices, palette, None, renumbered, palette, None)
    # a transparent pixel's colour may be anything
    assert _same_colours(indices, palette, 0, indices, palette[[2, 1, 2]], 0)


# --- left-out pixels -------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".gif"])
def test_rgba_alpha_zero_pixels_become_the_transparent_index(ext):
    picture, which = five_colour_picture()
    alpha = np.full(which.shape, 255, np.uint8)
    alpha[2:5, 3:9] = 0
    rgba = np.dstack([picture, alpha])
    rgba[2:5, 3:9, :3] = (1, 2, 3)  # a transparent pixel's colour is not in the palette
    rgba[2, 3, :3] = FIVE[1]  # nor does it matter when it is
    indexed = picture_indices(rgba, FIVE, channel_axis=-1)
    assert indexed.transparent == 0
    np.testing.assert_array_equal(indexed.palette, np.vstack([[0, 0, 0], FIVE]))
    np.testing.assert_array_equal(indexed.indices, np.where(alpha == 0, 0, which + 1))
    _, indices, _, transparency, shown = read_pillow(encode_indexed(ext, *indexed))
    assert transparency == 0
    np.testing.assert_array_equal(indices, indexed.indices)
    np.testing.assert_array_equal(shown[..., 3], alpha)
    np.testing.assert_array_equal(shown[alpha > 0][:, :3], picture[alpha > 0])


def test_png_transparency_is_one_trns_entry():
    picture, _ = five_colour_picture()
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0
    blob = encode_indexed(".png", *picture_indices(rgba, FIVE, channel_axis=-1))
    trns = blob.index(b"tRNS")
    assert blob[trns - 4 : trns] == b"\x00\x00\x00\x01" and blob[trns + 4] == 0


def test_masked_pixels_are_transparent_and_the_rest_must_be_palette_colours():
    image = data.astronaut()[:96, :128]
    mask = np.ones(image.shape[:2], bool)
    mask[:, :40] = False
    result = quantize(image, 5, channel_axis=-1, mask=mask, seed=0)
    colours = output_colours(result.centers, image.dtype)[1:]
    picture = result.quantized
    picture[0, 0] = colours[2]  # a masked pixel that happens to have a palette colour
    strict = picture_indices(picture, colours, channel_axis=-1, left_out=result.labels == 0)
    np.testing.assert_array_equal(strict.indices, result.labels)  # index i = label i
    loose = picture_indices(picture, colours, channel_axis=-1)
    assert loose.indices[0, 0] == 3  # shown in its own (palette) colour
    np.testing.assert_array_equal(loose.indices[1:, :40], 0)
    np.testing.assert_array_equal(loose.indices[:, 40:], result.labels[:, 40:])
    picture[50, 60] = (1, 2, 3)  # a clustered pixel off the palette: not this picture's colours
    with pytest.raises(ValueError, match=r"1 pixels that were not left out .* row 50, column 60"):
        picture_indices(picture, colours, channel_axis=-1, left_out=result.labels == 0)


def test_partial_alpha_is_refused():
    picture, _ = five_colour_picture()
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)])
    rgba[3, 4, 3] = 128
    with pytest.raises(ValueError, match=r"1 pixels are partly transparent \(alpha 128 at row 3"):
        picture_indices(rgba, FIVE, channel_axis=-1)


def test_gray_alpha_float_picture():
    gray = np.array([[0.0, 0.25, 1.0], [0.25, 0.5, 0.0]], np.float32)
    alpha = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
    gray[1, 1] = np.nan  # left out by its alpha and its value alike
    indexed = picture_indices(np.stack([gray, alpha]), [0.0, 0.25], channel_axis=0)
    np.testing.assert_array_equal(indexed.indices, [[1, 2, 0], [2, 0, 1]])
    np.testing.assert_array_equal(indexed.palette, [[0, 0, 0], [0, 0, 0], [64, 64, 64]])
    half = np.stack([gray, np.where(alpha == 1, np.float32(0.5), alpha)])
    with pytest.raises(ValueError, match=r"only 0 and 1.0 fit"):
        picture_indices(half, [0.0, 0.25], channel_axis=0)


def test_256_colours_fit_without_left_out_pixels_only():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    colours = np.arange(256, dtype=np.uint8)
    indexed = picture_indices(ramp, colours, channel_axis=None)
    assert indexed.transparent is None and len(indexed.palette) == 256
    np.testing.assert_array_equal(indexed.indices, ramp)
    for ext in EXTS:  # the GIF's palette is the gray ramp: Pillow opens it as gray values
        np.testing.assert_array_equal(shown_rgba(ext, encode_indexed(ext, *indexed))[..., 0], ramp)
    with pytest.raises(ValueError, match="256 colours and transparent"):
        picture_indices(ramp, colours, channel_axis=None, left_out=ramp == 7)
    rgba = np.dstack([ramp, ramp, ramp, np.where(ramp == 7, 0, 255).astype(np.uint8)])
    with pytest.raises(ValueError, match="256 colours and transparent"):
        picture_indices(rgba, np.repeat(colours[:, None], 3, axis=1), channel_axis=-1)


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_uint16_gray_picture_gets_a_rounded_8_bit_palette(channel_axis):
    colours = np.array([0, 1000, 1001, 30000, 65535], np.uint16)
    which = np.array([[0, 1, 2], [3, 4, 1]])
    picture = colours[which] if channel_axis is None else colours[which][..., None]
    indexed = picture_indices(picture, colours, channel_axis=channel_axis)
    np.testing.assert_array_equal(indexed.indices, which)
    # 1000 and 1001 both round to 4: two entries, one colour
    np.testing.assert_array_equal(indexed.palette[:, 0], [0, 4, 4, 117, 255])
    for ext in EXTS:
        shown = shown_rgba(ext, encode_indexed(ext, *indexed))
        np.testing.assert_array_equal(shown[..., 1], indexed.palette[which, 0])


def test_uint16_and_float_rgb_pictures_match_exactly():
    _, which = five_colour_picture()
    for dtype, colours in [
        (np.uint16, FIVE.astype(np.uint16) * 257),
        (np.float32, FIVE.astype(np.float32) / 255),
        (np.float64, FIVE / 255.0),
    ]:
        indexed = picture_indices(colours[which], colours, channel_axis=-1)
        np.testing.assert_array_equal(indexed.indices, which)
        np.testing.assert_array_equal(indexed.palette, FIVE)
        off = colours[which].copy()
        value = off[0, 0, 1]  # one step off
        off[0, 0, 1] = value ^ 1 if dtype == np.uint16 else np.nextafter(value, dtype(2))
        assert picture_indices(off, colours, channel_axis=-1).indices[0, 0] == 0


def test_float_zero_and_negative_zero_are_one_colour():
    picture = np.array([[0.0, -0.0], [0.5, np.inf]])
    indexed = picture_indices(picture, np.array([-0.0, 0.5]), channel_axis=None)
    np.testing.assert_array_equal(indexed.indices, [[1, 1], [2, 0]])


def test_rgb8_units():
    np.testing.assert_array_equal(rgb8([[0, 128, 255]], np.uint8), [[0, 128, 255]])
    np.testing.assert_array_equal(rgb8([[127.4, 127.6, 300.0]], np.uint8), [[127, 128, 255]])
    np.testing.assert_array_equal(rgb8([[257, 65535, 128]], np.uint16), [[1, 255, 0]])
    np.testing.assert_array_equal(rgb8([[-0.2, 0.5, 1.5]], np.float32), [[0, 128, 255]])
    np.testing.assert_array_equal(rgb8([[-5, 12850, 32767]], np.int16), [[0, 100, 255]])
    np.testing.assert_array_equal(rgb8([7, 9], np.uint8), [[7, 7, 7], [9, 9, 9]])
    with pytest.raises(ValueError, match="finite"):
        rgb8([[np.nan, 0, 0]], np.float32)
    with pytest.raises(ValueError, match=r"\(n, 1\) gray or \(n, 3\) RGB"):
        rgb8(np.zeros((2, 4)), np.uint8)
    with pytest.raises(ValueError, match="bool image"):
        rgb8([[1, 0, 0]], bool)


def test_labels_file_shows_cluster_colours_and_keeps_label_values():
    image = data.astronaut()[:96, :128]
    mask = np.ones(image.shape[:2], bool)
    mask[10:20, 10:30] = False
    result = quantize(image, 6, channel_axis=-1, mask=mask, seed=0)
    palette = labels_palette(result.centers, image.dtype)
    np.testing.assert_array_equal(palette[0], [0, 0, 0])
    np.testing.assert_array_equal(palette[1:], output_colours(result.centers, np.uint8)[1:])
    for ext in EXTS:
        blob = encode_indexed(ext, result.labels, palette, transparent=0)
        if ext == ".tif":
            indices, back = read_tiff(blob)
        else:
            mode, indices, back, transparency, shown = read_pillow(blob)
            assert mode == "P" and transparency == 0
            np.testing.assert_array_equal(shown[..., 3], np.where(mask, 255, 0))
        np.testing.assert_array_equal(indices, result.labels)
        np.testing.assert_array_equal(back[:7], palette)


def test_labels_palette_holds_at_most_255_labels():
    assert labels_palette(np.zeros((255, 3))).shape == (256, 3)
    with pytest.raises(ValueError, match="1 to 255 labels"):
        labels_palette(np.zeros((256, 3)))


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("picture", "colours", "axis", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((257, 3), np.uint8), -1, "1 to 256 colours"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((0, 3), np.uint8), -1, "1 to 256 colours"),
        (np.zeros((4, 4, 3), np.uint8), FIVE + 0.5, -1, "exact uint8 values"),
        (np.zeros((4, 4, 3), np.uint8), FIVE.astype(np.int64) + 250, -1, "exact uint8"),
        (np.zeros((4, 4, 3), np.float32), [[np.nan, 0, 0]], -1, "colours must be finite"),
        (np.zeros((4, 4, 3), np.uint8), FIVE[:, :1], -1, "3 channels but the colours have 1"),
        (np.zeros((4, 4, 5), np.uint8), FIVE, -1, "5 channels but the colours have 3"),
        (np.zeros((4, 4, 4), np.uint8), np.zeros((3, 4)), -1, r"\(n, 1\) gray or \(n, 3\)"),
        (np.zeros((4, 4, 3), np.uint8), FIVE, None, "without channel_axis must be 2-D"),
        (np.zeros((2, 4, 4, 3), np.uint8), FIVE, -1, "must be 3-D"),
        (np.zeros((4, 4, 3), np.uint8), FIVE, 3, "out of range"),
        (np.zeros((4, 4, 3), np.uint8), FIVE, 1.0, "must be an integer or None"),
        (np.zeros((4, 4, 3), bool), FIVE, -1, "dtype bool cannot be written"),
        (np.zeros((4, 4, 3), np.complex64), FIVE, -1, "dtype complex64"),
        (np.zeros((0, 4, 3), np.uint8), FIVE, -1, "empty"),
    ],
)
def test_picture_errors(picture, colours, axis, message):
    with pytest.raises(ValueError, match=message):
        picture_indices(picture, colours, channel_axis=axis)


def test_left_out_must_be_a_boolean_image():
    picture, _ = five_colour_picture()
    with pytest.raises(ValueError, match=r"left_out must be a boolean array of shape \(12, 20\)"):
        picture_indices(picture, FIVE, channel_axis=-1, left_out=np.zeros((12, 20), np.uint8))


@pytest.mark.parametrize(
    ("ext", "indices", "palette", "transparent", "message"),
    [
        (".jpg", np.zeros((2, 2), np.uint8), FIVE, None, "not '.jpg'"),
        (".png", np.zeros((2, 2), np.uint16), FIVE, None, "2-D uint8 array, got uint16"),
        (".png", np.zeros((2, 2, 1), np.uint8), FIVE, None, "2-D uint8"),
        (".png", np.zeros((0, 2), np.uint8), FIVE, None, "non-empty"),
        (".png", np.zeros((2, 2), np.uint8), FIVE[:, :2], None, r"\(m, 3\) uint8"),
        (".png", np.zeros((2, 2), np.uint8), FIVE.astype(int), None, r"\(m, 3\) uint8"),
        (".png", np.zeros((2, 2), np.uint8), np.zeros((257, 3), np.uint8), None, "1 to 256"),
        (".gif", np.full((2, 2), 5, np.uint8), FIVE, None, "index 5 is past the palette's 5"),
        (".tif", np.zeros((2, 2), np.uint8), FIVE, 5, r"outside the palette \(0..4\)"),
        (".png", np.zeros((2, 2), np.uint8), FIVE, True, "an index or None"),
        (".gif", np.zeros((1, 65536), np.uint8), FIVE, None, "at most 65535 pixels"),
    ],
)
def test_encode_errors(ext, indices, palette, transparent, message):
    with pytest.raises(ValueError, match=message):
        encode_indexed(ext, indices, palette, transparent)


def test_tiff_keeps_the_transparent_index_as_its_palette_colour():
    picture, which = five_colour_picture()
    rgba = np.dstack([picture, np.where(which == 4, 0, 255).astype(np.uint8)])
    indexed = picture_indices(rgba, FIVE, channel_axis=-1)
    indices, palette = read_tiff(encode_indexed(".tif", *indexed))
    np.testing.assert_array_equal(indices, indexed.indices)
    np.testing.assert_array_equal(palette[indices[which == 4]], 0)


def test_indices_of_a_large_picture_are_exact():
    picture, which = five_colour_picture((2048, 2048), seed=3)
    indexed = picture_indices(picture, FIVE, channel_axis=-1)
    np.testing.assert_array_equal(indexed.indices, which)


def test_big_endian_picture_is_compared_by_value():
    colours = np.array([[1, 2, 3], [256, 0, 65535]], np.uint16)
    which = np.array([[0, 1], [1, 0]])
    picture = colours[which].astype(">u2")
    indexed = picture_indices(picture, colours.astype(">u2"), channel_axis=-1)
    np.testing.assert_array_equal(indexed.indices, which)
    np.testing.assert_array_equal(indexed.palette, [[0, 0, 0], [1, 0, 255]])
