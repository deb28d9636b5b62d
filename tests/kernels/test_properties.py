"""Property tests over shapes and dtypes (hypothesis)."""
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from microexp import kernels as K
from microexp.kernels.reference import hsv28 as reference_hsv28

from .corpus import CV2_RESIZE_SLACK

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_and_template(draw):
    channels = draw(st.sampled_from([1, 3]))
    rows, cols = draw(st.integers(4, 48)), draw(st.integers(4, 48))
    shape = (rows, cols, channels) if channels == 3 else (rows, cols)
    img = draw(arrays(np.uint8, shape, elements=st.integers(0, 255)))
    h, w = draw(st.integers(1, rows)), draw(st.integers(1, cols))
    y, x = draw(st.integers(0, rows - h)), draw(st.integers(0, cols - w))
    return img, np.ascontiguousarray(img[y : y + h, x : x + w])


@SETTINGS
@given(image_and_template())
def test_exact_location_is_a_maximum_of_opencv_scores(pair):
    img, tpl = pair
    scores = cv2.matchTemplate(img, tpl, cv2.TM_CCOEFF_NORMED)
    x, y, score = K.match_template(img, tpl)
    assert 0 <= x < scores.shape[1] and 0 <= y < scores.shape[0]
    assert -1.0 <= score <= 1.0
    # Equal to OpenCV's location, or an OpenCV near-tie within its float32 noise.
    assert scores[y, x] >= scores.max() - 5e-3


@SETTINGS
@given(image_and_template())
def test_pyramid_returns_valid_placement(pair):
    img, tpl = pair
    x, y, score = K.match_template(img, tpl, mode="pyramid")
    assert 0 <= x <= img.shape[1] - tpl.shape[1] and 0 <= y <= img.shape[0] - tpl.shape[0]
    assert -1.0 <= score <= 1.0


@SETTINGS
@given(st.integers(28, 80), st.integers(28, 80), st.floats(1e-3, 50.0), st.integers(0, 2**31))
def test_hsv28_exact_for_any_size_and_scale(rows, cols, spread, seed):
    rng = np.random.default_rng(seed)
    flow = (rng.normal(size=(rows, cols, 2)) * spread).astype(np.float32)
    # The reference chain ends in cv2.resize (INTER_AREA): on ARM, carotene's rounding (corpus.py).
    diff = np.abs(K.encode_hsv28(flow).astype(int) - reference_hsv28(flow))
    assert diff.max() <= CV2_RESIZE_SLACK["area"]


@SETTINGS
@given(st.sampled_from([np.float16, np.float64, np.int32, np.uint8, np.complex64]))
def test_encoders_reject_other_dtypes(dtype):
    flow = np.zeros((30, 30, 2), dtype)
    with pytest.raises(TypeError, match="'flow' must have dtype float32"):
        K.encode_hsv28(flow)
    with pytest.raises(TypeError, match="'flow' must have dtype float32"):
        K.encode_uvs28(flow)


@SETTINGS
@given(st.integers(28, 64), st.integers(28, 64), st.integers(0, 2**31))
def test_uvs28_is_bounded_and_finite(rows, cols, seed):
    flow = np.random.default_rng(seed).normal(0, 3, (rows, cols, 2)).astype(np.float32)
    out = K.encode_uvs28(flow)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 + 1e-6
