"""FarnebackFlow against cv2.calcOpticalFlowFarneback: same parameters, same flow to float
rounding, on textured images with a known smooth motion, at sizes that exercise the pyramid
(odd sizes, non-integer level ratios, one level only)."""
import cv2
import numpy as np
import pytest

from microexp import kernels as K

SEED = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2)


def textured_pair(rows, cols, seed=0, amplitude=1.5):
    """A smooth random texture and the same texture warped by a smooth flow of a few pixels."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (rows, cols)).astype(np.float32), (0, 0), 2.0)
    base = cv2.normalize(base, None, 20, 235, cv2.NORM_MINMAX)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u = amplitude * np.sin(xx / cols * 3.0 + 0.5) * np.cos(yy / rows * 2.0)
    v = amplitude * np.cos(xx / cols * 2.0) * np.sin(yy / rows * 3.0 + 0.3)
    moved = cv2.remap(base, xx - u, yy - v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return base.astype(np.uint8), moved.astype(np.uint8)


def opencv(a, b, p):
    return cv2.calcOpticalFlowFarneback(a, b, None, p["pyr_scale"], p["levels"], p["winsize"],
                                        p["iterations"], p["poly_n"], p["poly_sigma"], 0)


@pytest.mark.parametrize("shape", [(224, 224), (112, 112), (150, 100), (61, 97), (33, 40), (20, 300)])
def test_matches_opencv_on_many_sizes(shape):
    a, b = textured_pair(*shape, seed=shape[0])
    ours = K.FarnebackFlow(**SEED)(a, b)
    ref = opencv(a, b, SEED)
    assert ours.shape == ref.shape == shape + (2,) and ours.dtype == np.float32
    assert np.abs(ref).max() > 0.5  # there is motion to agree on
    assert np.abs(ours - ref).max() < 5e-5


@pytest.mark.parametrize("params", [dict(levels=0, iterations=1), dict(levels=2, winsize=9, iterations=2),
                                    dict(poly_n=7, poly_sigma=1.5), dict(pyr_scale=0.6, levels=4, winsize=11),
                                    dict(winsize=10)])
def test_matches_opencv_for_other_parameters(params):
    p = {**SEED, **params}
    a, b = textured_pair(160, 128, seed=7)
    assert np.abs(K.FarnebackFlow(**p)(a, b) - opencv(a, b, p)).max() < 5e-5


def test_reference_expansions_are_reused_only_while_prev_is_unchanged():
    a, b = textured_pair(96, 96, seed=3)
    _, c = textured_pair(96, 96, seed=4)
    flow = K.FarnebackFlow()
    first = flow(a, b)
    assert flow.reference_reuses == 0
    again = flow(a.copy(), b)  # equal bytes, another array: reused, same answer
    assert flow.reference_reuses == 1
    np.testing.assert_array_equal(first, again)
    changed = a.copy()
    changed[50, 50] ^= 1  # one grey level differs: recomputed
    np.testing.assert_allclose(flow(changed, c), opencv(changed, c, SEED), atol=5e-5)
    assert flow.reference_reuses == 1


def test_writes_into_out_and_accepts_row_padded_views():
    a, b = textured_pair(120, 120, seed=5)
    big_a = np.zeros((140, 160), np.uint8)
    big_a[10:130, 20:140] = a
    out = np.full((120, 120, 2), np.nan, np.float32)
    res = K.FarnebackFlow()(big_a[10:130, 20:140], b, out=out)
    assert res is out or np.shares_memory(res, out)
    assert np.abs(out - opencv(a, b, SEED)).max() < 5e-5


def test_size_change_between_calls():
    flow = K.FarnebackFlow()
    for shape in [(64, 64), (100, 80), (64, 64)]:
        a, b = textured_pair(*shape, seed=shape[1])
        assert np.abs(flow(a, b) - opencv(a, b, SEED)).max() < 5e-5


@pytest.mark.parametrize("prev,next_,match", [
    (np.zeros((64, 64), np.float32), np.zeros((64, 64), np.uint8), "'prev' must have dtype uint8"),
    (np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), "'prev' must be a gray image"),
    (np.zeros((64, 64), np.uint8), np.zeros((64, 65), np.uint8), "'next' must have the shape of 'prev'"),
    (np.zeros((8, 64), np.uint8), np.zeros((8, 64), np.uint8), "between 16x16"),
    (np.zeros((64, 64), np.uint8)[:, ::2], np.zeros((64, 32), np.uint8), "contiguous within rows"),
    ([[0] * 64] * 64, np.zeros((64, 64), np.uint8), "numpy.ndarray"),
])
def test_bad_images_are_named(prev, next_, match):
    with pytest.raises((TypeError, ValueError), match=match):
        K.FarnebackFlow()(prev, next_)


def test_bad_out_and_parameters_are_named():
    a = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError, match="'out' must have shape"):
        K.FarnebackFlow()(a, a, out=np.zeros((64, 64), np.float32))
    with pytest.raises(TypeError, match="'out' must have dtype float32"):
        K.FarnebackFlow()(a, a, out=np.zeros((64, 64, 2), np.float64))
    for bad in [dict(pyr_scale=1.0), dict(levels=-1), dict(winsize=0), dict(iterations=0), dict(poly_n=0),
                dict(poly_sigma=float("nan"))]:
        with pytest.raises(ValueError, match=list(bad)[0]):
            K.FarnebackFlow(**bad)


@pytest.mark.parametrize("shape", [(224, 224), (61, 97)])
def test_portable_and_vector_row_loops_agree_bit_for_bit(shape):
    # ARM (Jetson) runs the portable loops; x86 with AVX2 the eight-lane ones. Same IEEE
    # operations in the same order, so the same bits.
    a, b = textured_pair(*shape, seed=11, amplitude=2.5)
    np.testing.assert_array_equal(K.FarnebackFlow(_portable=True)(a, b), K.FarnebackFlow()(a, b))
