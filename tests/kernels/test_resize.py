import cv2
import numpy as np
import pytest

from microexp import kernels as K

from .corpus import CV2_RESIZE_SLACK, ON_ARM

SIZES = [((37, 108), (223, 38)), ((400, 400), (224, 224)), ((224, 224), (224, 224)),
         ((81, 33), (17, 9)), ((5, 7), (40, 30)), ((480, 640), (224, 224))]


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("src_size,dst_size", SIZES)
def test_linear_within_one_level_of_opencv(channels, src_size, dst_size):
    rng = np.random.default_rng(sum(src_size) + channels)
    shape = src_size + ((channels,) if channels > 1 else ())
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    ours = K.resize_linear(img, dst_size)
    ref = cv2.resize(img, dst_size, interpolation=cv2.INTER_LINEAR)
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= CV2_RESIZE_SLACK["linear"]
    if not ON_ARM and dst_size[0] <= src_size[1] and dst_size[1] <= src_size[0]:  # shrinking: the runtime's case
        assert (diff > 0).mean() < 0.01


@pytest.mark.parametrize("src_size", [(224, 224), (56, 56), (57, 100), (29, 31), (28, 28), (300, 41)])
def test_area_shrink_is_exact(src_size):
    rng = np.random.default_rng(src_size[0])
    img = rng.integers(0, 256, src_size + (3,), dtype=np.uint8)
    np.testing.assert_array_equal(K.resize_area(img, (28, 28)),
                                  cv2.resize(img, (28, 28), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_area_shrink_reads_padded_rows(channels):
    """A column slice of a larger image (rows further apart than their pixels): the
    fractional-weight path steps by the row stride, the integer one too."""
    img = np.random.default_rng(channels).integers(0, 256, (120, 150, channels), dtype=np.uint8)
    for view in (img[:, 7:120], img[:, 10:122]):  # 113 columns (fractional), 112 (4x)
        view = view[..., 0] if channels == 1 else view
        ours = K.resize_area(view, (28, 28)).astype(int)
        theirs = cv2.resize(np.ascontiguousarray(view), (28, 28), interpolation=cv2.INTER_AREA)
        assert np.abs(ours - theirs).max() <= CV2_RESIZE_SLACK["area"]
