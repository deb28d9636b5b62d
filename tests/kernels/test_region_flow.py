"""region_flow against a plain Python reference: per box, the mean flow and the MDMO main
direction (8 bins of 45 degrees, the fullest bin's mean vector); exact bins at the boundaries,
zero vectors in no bin, ties to the lowest bin, NaN policy, and every bad argument named."""
import math

import numpy as np
import pytest

from microexp import kernels as K


def direction_bin(u, v):
    """The bin of angle atan2(v, u) in [0, 360) degrees, 45 degrees each; None for (0, 0)."""
    if u == 0 and v == 0:
        return None
    return int(math.floor(math.degrees(math.atan2(v, u)) % 360.0 / 45.0)) % 8


def reference(flow, boxes):
    out = []
    for x0, y0, x1, y1 in boxes:
        vectors = [(float(flow[y, x, 0]), float(flow[y, x, 1])) for y in range(y0, y1) for x in range(x0, x1)]
        bins = [[] for _ in range(8)]
        for u, v in vectors:
            b = direction_bin(u, v)
            if b is not None:
                bins[b].append((u, v))
        fullest = max(range(8), key=lambda i: (len(bins[i]), -i))
        mu = sum(u for u, _ in bins[fullest]) / len(bins[fullest]) if bins[fullest] else 0.0
        mv = sum(v for _, v in bins[fullest]) / len(bins[fullest]) if bins[fullest] else 0.0
        out.append([sum(u for u, _ in vectors) / len(vectors), sum(v for _, v in vectors) / len(vectors),
                    math.hypot(mu, mv), math.atan2(mv, mu) if bins[fullest] else 0.0])
    return np.array(out)


BOXES = np.array([[0, 0, 8, 8], [3, 5, 20, 9], [10, 10, 11, 11], [0, 0, 24, 20]], np.int32)


def test_matches_the_reference_on_random_flows():
    rng = np.random.default_rng(0)
    for _ in range(20):
        flow = rng.normal(0, 2, (20, 24, 2)).astype(np.float32)
        got = K.region_flow(flow, BOXES)
        assert got.dtype == np.float32 and got.shape == (4, 4)
        np.testing.assert_allclose(got, reference(flow, BOXES), rtol=1e-5, atol=1e-6)


def test_bins_at_their_boundaries_are_exact():
    # Vectors exactly on 0, 45, 90, ... 315 degrees start their bin.
    for b, (u, v) in enumerate([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]):
        flow = np.zeros((4, 4, 2), np.float32)
        flow[...] = (u, v)
        flow[0, 0] = (0.5 * math.cos(math.radians(45 * b + 50)), 0.5 * math.sin(math.radians(45 * b + 50)))
        got = K.region_flow(flow, np.array([[0, 0, 4, 4]], np.int32))[0]
        assert direction_bin(u, v) == b
        np.testing.assert_allclose(got[2:], [math.hypot(u, v), math.atan2(v, u)], rtol=1e-6)


def test_zero_vectors_have_no_direction_and_ties_go_to_the_lowest_bin():
    flow = np.zeros((2, 2, 2), np.float32)
    np.testing.assert_array_equal(K.region_flow(flow, np.array([[0, 0, 2, 2]], np.int32)), [[0, 0, 0, 0]])
    flow[0, 0] = (0, 2)  # bin 2
    flow[0, 1] = (-2, 0)  # bin 4
    got = K.region_flow(flow, np.array([[0, 0, 2, 2]], np.int32))[0]
    np.testing.assert_allclose(got, [-0.5, 0.5, 2.0, math.pi / 2], rtol=1e-6)


def test_writes_into_the_callers_buffer():
    flow = np.ones((8, 8, 2), np.float32)
    out = np.empty((2, 4), np.float32)
    result = K.region_flow(flow, np.array([[0, 0, 4, 4], [4, 4, 8, 8]], np.int32), out=out)
    assert result is out or np.shares_memory(result, out)
    np.testing.assert_allclose(out[:, :2], 1.0)


def test_nonfinite_vectors():
    flow = np.ones((4, 4, 2), np.float32)
    flow[1, 1, 0] = np.nan
    box = np.array([[0, 0, 4, 4]], np.int32)
    with pytest.raises(ValueError, match="region_flow: 'flow' contains 1 NaN or infinite"):
        K.region_flow(flow, box)
    np.testing.assert_allclose(K.region_flow(flow, box, nonfinite="zero")[0, :2], [15 / 16, 15 / 16], rtol=1e-6)


@pytest.mark.parametrize("flow, boxes, out, error, message", [
    (np.ones((4, 4, 3), np.float32), [[0, 0, 2, 2]], None, ValueError, "'flow' must have shape"),
    (np.ones((4, 4, 2), np.float64), [[0, 0, 2, 2]], None, TypeError, "'flow' must have dtype float32"),
    (np.ones((4, 4, 2), np.float32), [[0, 0, 2, 2]], None, TypeError, "'boxes' must be a numpy.ndarray"),
    (np.ones((4, 4, 2), np.float32), np.array([[0, 0, 2, 2]], np.int64), None, TypeError, "'boxes' must have dtype int32"),
    (np.ones((4, 4, 2), np.float32), np.zeros((0, 4), np.int32), None, ValueError, "at least one region"),
    (np.ones((4, 4, 2), np.float32), np.array([[0, 0, 5, 2]], np.int32), None, ValueError, "row 0 .* x1 <= 4"),
    (np.ones((4, 4, 2), np.float32), np.array([[2, 0, 2, 2]], np.int32), None, ValueError, "x0 < x1"),
    (np.ones((4, 4, 2), np.float32), np.array([[0, -1, 2, 2]], np.int32), None, ValueError, "y0 >= 0"),
    (np.ones((4, 4, 2), np.float32), np.array([[0, 0, 2, 2]], np.int32), np.empty((2, 4), np.float32),
     ValueError, "'out'"),
    (np.ones((4, 8, 2), np.float32)[:, ::2], np.array([[0, 0, 2, 2]], np.int32), None, ValueError, "contiguous"),
])
def test_bad_arguments_are_named(flow, boxes, out, error, message):
    if isinstance(boxes, list):
        boxes = list(boxes)
    with pytest.raises(error, match=message):
        K.region_flow(flow, boxes, out=out)
