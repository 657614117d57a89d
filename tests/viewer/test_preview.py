"""The live preview's view of the plane on screen (no viewer needed)."""

import numpy as np
import pytest


def test_screen_view_takes_the_plane_on_screen_thinned_or_a_coarse_level():
    from napari_kquant.viewer._preview import screen_view

    stack = np.arange(3 * 1000 * 600).reshape(3, 1000, 600)
    view, stride, step = screen_view(stack, False, {0: 1}, max_pixels=512 * 512)
    assert stride == 2 and step == 1
    np.testing.assert_array_equal(view, stack[1, ::2, ::2])
    pyramid = [np.zeros((2048, 2048, 3), np.uint8), np.zeros((1024, 1024, 3), np.uint8),
               np.zeros((512, 512, 3), np.uint8), np.zeros((256, 256, 3), np.uint8)]  # fmt: skip
    view, stride, step = screen_view(pyramid, True, {}, max_pixels=512 * 512)
    assert view.shape == (512, 512, 3) and stride == 1 and step == 4
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        screen_view(np.zeros(5), False, {})
