"""Regression tests for what random calls found at the native boundary: arrays that crossed a
process boundary, odd memory layouts, finite extremes that overflowed float arithmetic, and
argument values that raised the wrong exception type."""
import math
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import cv2
import numpy as np
import pytest

from microexp import _kernels
from microexp import kernels as K

from .corpus import texture


def _flow(rows=40, cols=48, seed=0):
    return np.random.default_rng(seed).normal(0, 2, (rows, cols, 2)).astype(np.float32)


def _misaligned(a):
    """The same values at an odd address: C-contiguous but not aligned (np.frombuffer at 1)."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


IMAGE = texture(np.random.default_rng(1), 64, 72, 3, "smooth")
TEMPLATE = np.ascontiguousarray(IMAGE[10:40, 12:50])
GRAY = np.ascontiguousarray(IMAGE[..., 0])


def every_kernel(flow, image, template, gray):
    """One call of every kernel on the given arrays."""
    next_gray = np.roll(gray, 1, axis=1)
    ccorr = _kernels.ccorr_direct(image, template)
    return {
        "match exact": K.match_template(image, template),
        "match pyramid": K.match_template(image, template, mode="pyramid"),
        "TemplateMatcher": K.TemplateMatcher(template).match(image),
        "align_crop": K.align_crop(image, template, (12, 10, 50, 40), margin=8, size=(32, 32))[0],
        "ncc_map_from_ccorr": _kernels.ncc_map_from_ccorr(image, template, ccorr),
        "resize_linear": K.resize_linear(image, (30, 20)),
        "resize_area": K.resize_area(image, (30, 20)),
        "encode_hsv28": K.encode_hsv28(flow),
        "encode_uvs28": K.encode_uvs28(flow),
        "region_motion": K.region_motion(flow, nonrigid_grid=4),
        "compose_regions": K.compose_regions(K.encode_uvs28(flow), np.full((5, 2), 14.0)),
        "FarnebackFlow": K.FarnebackFlow()(gray, next_gray),
    }


def assert_same(got, want):
    assert got.keys() == want.keys()
    for name in want:
        a, b = got[name], want[name]
        if isinstance(b, dict):
            assert a == b, name
        elif isinstance(b, tuple):
            assert a == b, name
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


PLAIN = every_kernel(_flow(), IMAGE, TEMPLATE, GRAY)


def test_pickled_arrays_are_accepted_by_every_kernel():
    # An unpickled array's dtype equals numpy's own but is a different object.
    args = [pickle.loads(pickle.dumps(a)) for a in (_flow(), IMAGE, TEMPLATE, GRAY)]
    assert_same(every_kernel(*args), PLAIN)


def _round_trip(arrays):
    return arrays  # pickled on the way to the worker and back again


def test_arrays_from_a_process_pool_are_accepted_by_every_kernel():
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        args = pool.submit(_round_trip, [_flow(), IMAGE, TEMPLATE, GRAY]).result(timeout=120)
    assert_same(every_kernel(*args), PLAIN)


def test_misaligned_and_byte_swapped_inputs_give_the_same_results():
    flow, gray = _flow(), GRAY
    assert_same(every_kernel(_misaligned(flow), IMAGE, TEMPLATE, gray), PLAIN)
    swapped = flow.astype(flow.dtype.newbyteorder())
    assert_same(every_kernel(swapped, IMAGE, TEMPLATE, gray), PLAIN)
    ccorr = _kernels.ccorr_direct(IMAGE, TEMPLATE)
    np.testing.assert_array_equal(_kernels.ncc_map_from_ccorr(IMAGE, TEMPLATE, _misaligned(ccorr)),
                                  PLAIN["ncc_map_from_ccorr"])
    landmarks = np.full((5, 2), 14.0)
    map28 = K.encode_uvs28(flow)
    np.testing.assert_array_equal(K.compose_regions(_misaligned(map28), _misaligned(landmarks)),
                                  PLAIN["compose_regions"])


@pytest.mark.parametrize("out, match", [
    (_misaligned(np.zeros((3, 28, 28), np.float32)), "'out' must be aligned"),
    (np.zeros((3, 28, 28), ">f4"), "'out' must have the machine's byte order"),
])
def test_output_buffers_must_be_aligned_and_native(out, match):
    # An output is written in place, so it is never silently replaced by a copy.
    with pytest.raises(ValueError, match=match):
        K.encode_uvs28(_flow(), out=out)


def _largest_shift(flow):
    """2^k with the flow divided by it back inside ordinary magnitudes."""
    return 2.0 ** (math.frexp(float(np.abs(flow).max()))[1] - 4)


def test_hsv28_of_a_huge_finite_flow_is_that_of_the_same_flow_scaled_down():
    flow = _flow()
    flow[3, 3, 0] = 3.4e38  # once: magnitude inf, scale 0, inf * 0 = NaN, cast to uint8
    scaled = (flow.astype(np.float64) / _largest_shift(flow)).astype(np.float32)
    got = K.encode_hsv28(flow)
    np.testing.assert_array_equal(got, K.encode_hsv28(scaled))
    assert got.any()  # was all black


def test_uvs28_of_a_huge_finite_flow_is_finite_and_scale_free():
    flow = _flow() * np.float32(1e20)  # the strain's squares overflowed: an all-NaN plane
    got = K.encode_uvs28(flow)
    assert np.isfinite(got).all()
    scaled = (flow.astype(np.float64) / _largest_shift(flow)).astype(np.float32)
    np.testing.assert_array_equal(got, K.encode_uvs28(scaled))


@pytest.mark.parametrize("scale", [1e39, 1e-300, 10**400, math.inf, math.nan, 0.0])
def test_uvs28_scale_outside_float_range_is_refused(scale):
    with pytest.raises(ValueError, match="'scale'"):
        K.encode_uvs28(_flow(), scale=scale)


def test_region_motion_of_a_huge_flow_is_the_scaled_scores():
    flow = _flow(64, 64)
    flow[::4, ::4] *= np.float32(3e37)  # the samples the scores read
    got = K.region_motion(flow, nonrigid_grid=4)
    assert all(math.isfinite(v) for v in got.values())
    shift = _largest_shift(flow)
    small = K.region_motion((flow.astype(np.float64) / shift).astype(np.float32), nonrigid_grid=4)
    for key in got:
        assert got[key] == pytest.approx(small[key] * shift, rel=1e-12), key


def test_region_motion_on_one_sampled_row_reads_it_as_upper_and_lower():
    scores = K.region_motion(_flow(3, 40), grid=1, step=4)
    assert scores["motion_upper"] == scores["motion"] == scores["motion_lower"]


def test_region_motion_step_near_int_max_samples_the_first_pixel():
    flow = _flow()
    scores = K.region_motion(flow, grid=1, step=2**31 - 1)
    assert scores["motion"] == pytest.approx(float(np.hypot(*flow[0, 0].astype(np.float64))), rel=1e-6)


@pytest.mark.parametrize("poly_n", [3, 5, 7])
def test_farneback_refuses_exactly_the_sigmas_where_opencv_returns_zero_flow(poly_n):
    a = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (48, 48)).astype(np.uint8), (5, 5), 2)
    b = np.roll(a, 1, axis=1)
    for sigma in [1e-7, 0.05, 0.1, 0.15, 0.16, 0.17, 0.2, 0.3, 0.0]:
        theirs = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 1, 5, 2, poly_n, sigma, 0)
        try:
            ours = K.FarnebackFlow(levels=1, winsize=5, iterations=2, poly_n=poly_n, poly_sigma=sigma)(a, b)
        except ValueError as e:
            assert "'poly_sigma'" in str(e) and "at least" in str(e)
            assert not theirs.any(), f"sigma {sigma} refused but OpenCV's flow is not zero"
            continue
        assert theirs.any(), f"sigma {sigma} accepted but OpenCV's flow is zero"
        assert np.isfinite(ours).all()
        assert np.abs(ours - theirs).max() < 1e-2


@pytest.mark.parametrize("call", [
    lambda: K.resize_linear(GRAY, (math.inf, 2)),
    lambda: K.resize_area(GRAY, (2, math.nan)),
    lambda: K.align_crop(IMAGE, TEMPLATE, (math.inf, 0, 10, 10)),
    lambda: K.align_crop(IMAGE, TEMPLATE, (0, 0, 1e300, 10)),
    lambda: K.encode_uvs28(_flow(), scale=10**400),
    lambda: K.region_motion(_flow(), step=math.inf),
    lambda: K.region_motion(_flow(), grid=2**63),
    lambda: K.FarnebackFlow(levels=math.inf),
    lambda: K.FarnebackFlow(pyr_scale=10**400),
    lambda: K.TemplateMatcher(TEMPLATE).match(IMAGE, finest_level=math.inf),
    lambda: K.match_template(IMAGE, TEMPLATE, subpixel="yes"),
])
def test_huge_and_non_finite_arguments_raise_value_or_type_errors(call):
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    assert "'" in str(caught.value)  # names the argument
    assert len(str(caught.value)) < 300  # 10**400 is not printed in full


def test_numpy_integer_margin_does_not_wrap():
    # np.uint8(3) - 5 wraps to 254 in NumPy's arithmetic; the margin is read as a Python int.
    box = (-5, -5, 40, 40)
    want = K.align_crop(IMAGE, TEMPLATE, box, margin=3)
    got = K.align_crop(IMAGE, TEMPLATE, box, margin=np.uint8(3))
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]


def test_resize_output_is_limited_before_allocating():
    with pytest.raises(ValueError, match="limit is 256 MiB"):
        K.resize_linear(np.zeros((4, 4, 4), np.uint8), (65536, 32768))
    with pytest.raises(ValueError, match="limit is 256 MiB"):
        _kernels.resize_linear(np.zeros((4, 4), np.uint8), 65536, 65536, None)
