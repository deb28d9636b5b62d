import cv2
import numpy as np
import pytest

from microexp import kernels as K
from microexp.kernels.reference import hsv28 as reference_hsv28

from .corpus import flow_cases

CASES = flow_cases(seed=1)


@pytest.mark.parametrize("kind,size,flow", CASES, ids=[f"{k}-{s[0]}x{s[1]}" for k, s, _ in CASES])
def test_bit_identical_to_opencv_chain(kind, size, flow):
    ours = K.encode_hsv28(flow)
    ref = reference_hsv28(flow)
    assert ours.shape == (28, 28, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, ref)


def test_writes_into_caller_buffer():
    flow = CASES[0][2]
    out = np.full((28, 28, 3), 7, np.uint8)
    res = K.encode_hsv28(flow, out=out)
    assert res is out or np.shares_memory(res, out)
    np.testing.assert_array_equal(out, reference_hsv28(flow))


def test_strided_rows_are_accepted():
    rng = np.random.default_rng(3)
    big = rng.normal(0, 2, (120, 140, 2)).astype(np.float32)
    view = big[10:110, 20:120]  # rows padded, pixels packed
    np.testing.assert_array_equal(K.encode_hsv28(view), reference_hsv28(np.ascontiguousarray(view)))


def test_zero_flow_is_black():
    assert not K.encode_hsv28(np.zeros((64, 64, 2), np.float32)).any()


def test_nonfinite_raises_by_default_and_zero_policy_reads_zero_motion():
    rng = np.random.default_rng(4)
    flow = rng.normal(0, 2, (56, 56, 2)).astype(np.float32)
    bad = flow.copy()
    bad[3, 4, 0] = np.nan
    bad[10, 11, 1] = np.inf
    with pytest.raises(ValueError, match=r"'flow' contains 2 NaN or infinite"):
        K.encode_hsv28(bad)
    cleaned = flow.copy()
    cleaned[3, 4] = 0
    cleaned[10, 11] = 0
    np.testing.assert_array_equal(K.encode_hsv28(bad, nonfinite="zero"), reference_hsv28(cleaned))


@pytest.mark.parametrize("cols", [256, 31, 188])
def test_every_hue_value_pair_converts_like_opencv(cols):
    """HSV->BGR with S = 255 for all 181 x 256 (H, V) pairs: rows of 256 are all vector-path
    columns, rows of 31 all scalar-tail columns (OpenCV's vector blocks are 32 or 16 wide),
    rows of 188 mix both."""
    hue, value = np.meshgrid(np.arange(181, dtype=np.uint8), np.arange(256, dtype=np.uint8),
                             indexing="ij")
    if cols != 256:  # the same pairs, wrapped into rows of `cols`
        hue, value = hue.ravel(), value.ravel()
        rows = -(-hue.size // cols)
        pad = rows * cols - hue.size
        hue = np.concatenate([hue, np.zeros(pad, np.uint8)]).reshape(rows, cols)
        value = np.concatenate([value, np.zeros(pad, np.uint8)]).reshape(rows, cols)
        hue, value = np.ascontiguousarray(hue), np.ascontiguousarray(value)
    hsv = np.dstack([hue, np.full_like(hue, 255), value])
    expected = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    np.testing.assert_array_equal(K._kernels._hsv_to_bgr(hue, value), expected)
