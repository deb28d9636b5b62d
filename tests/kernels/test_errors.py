"""Every bad-input class gets a TypeError/ValueError naming the argument, never a crash."""
import numpy as np
import pytest

from microexp import kernels as K

IMG = np.zeros((50, 60, 3), np.uint8)
TPL = np.zeros((10, 12, 3), np.uint8)
FLOW = np.zeros((40, 40, 2), np.float32)


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (lambda: K.match_template(IMG.astype(np.float32), TPL), TypeError, r"'image' must have dtype uint8, got float32"),
        (lambda: K.match_template([[1, 2]], TPL), TypeError, r"'image' must be a numpy.ndarray"),
        (lambda: K.match_template(IMG, np.zeros((10, 12), np.uint8)), ValueError, r"same number of channels"),
        (lambda: K.match_template(TPL, IMG), ValueError, r"must not be larger than 'image'"),
        (lambda: K.match_template(IMG[:0], TPL), ValueError, r"'image' is empty"),
        (lambda: K.match_template(IMG[:, ::2], TPL), ValueError, r"'image' must be contiguous within rows"),
        (lambda: K.match_template(np.zeros((4, 4, 4, 1), np.uint8), TPL), ValueError, r"'image' must have shape"),
        (lambda: K.match_template(np.zeros((9, 9, 5), np.uint8), TPL), ValueError, r"1 to 4 channel"),
        (lambda: K.match_template(IMG, TPL, mode="fast"), ValueError, r"'mode' must be one of"),
        (lambda: K.match_template(IMG, TPL.astype(np.int16), mode="pyramid"), TypeError, r"'template' must have dtype uint8"),
        (lambda: K.encode_hsv28(FLOW.astype(np.float64)), TypeError, r"'flow' must have dtype float32, got float64"),
        (lambda: K.encode_hsv28(FLOW[..., :1]), ValueError, r"'flow' must have shape \(rows, cols, 2\)"),
        (lambda: K.encode_hsv28(np.zeros((27, 40, 2), np.float32)), ValueError, r"at least 28x28"),
        (lambda: K.encode_hsv28(np.zeros((0, 40, 2), np.float32)), ValueError, r"'flow'"),
        (lambda: K.encode_hsv28(FLOW, nonfinite="ignore"), ValueError, r"'nonfinite' must be one of \('raise', 'zero'\)"),
        (lambda: K.encode_hsv28(FLOW, out=np.zeros((28, 28, 3), np.float32)), TypeError, r"'out' must have dtype uint8"),
        (lambda: K.encode_hsv28(FLOW, out=np.zeros((28, 28), np.uint8)), ValueError, r"'out' must have shape \(28, 28, 3\)"),
        (lambda: K.encode_hsv28(FLOW, out=np.zeros((28, 28, 6), np.uint8)[..., ::2]), ValueError, r"'out' must be C-contiguous"),
        (lambda: K.encode_uvs28(FLOW, scale=-1), ValueError, r"'scale' must be from 1e-30 to 1e\+30, got -1"),
        (lambda: K.encode_uvs28(FLOW, out=np.zeros((28, 28, 3), np.float32)), ValueError, r"'out' must have shape \(3, 28, 28\)"),
        (lambda: K.compose_regions(np.zeros((28, 28, 3), np.float32), np.zeros((5, 2))), ValueError,
         r"'map28' must be a C-contiguous \(3, 28, 28\)"),
        (lambda: K.compose_regions(np.zeros((3, 28, 28), np.float32), "eyes"), ValueError, r"'landmarks5'"),
        (lambda: K.align_crop(IMG, TPL, (5, 5)), TypeError, r"'box' must be four numbers"),
        (lambda: K.align_crop(IMG, TPL, (20, 20, 10, 30)), ValueError, r"'box' must have x2 > x1"),
        (lambda: K.align_crop(IMG, TPL, (0, 0, 12, 10), margin=-1), ValueError, r"'margin'"),
        (lambda: K.align_crop(IMG, TPL, (0, 0, 12, 10), size=224), TypeError, r"'size' must be \(width, height\)"),
        (lambda: K.resize_linear(IMG, (0, 10)), ValueError, r"'size\[0\] \(width\)' must be from 1 to 65536, got 0"),
        (lambda: K.resize_area(IMG, (100, 10)), ValueError, r"must shrink"),
    ],
)
def test_bad_input_raises_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_read_only_output_buffer_is_rejected():
    out = np.zeros((28, 28, 3), np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="'out' is read-only"):
        K.encode_hsv28(FLOW, out=out)
