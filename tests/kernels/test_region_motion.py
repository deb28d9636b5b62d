"""region_motion: the spotter's motion scores, against a NumPy statement of the definition."""
import numpy as np
import pytest

from microexp import kernels as K


def numpy_region_motion(flow, grid=4, step=4):
    flow = flow[::step, ::step]
    mag = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)
    h, w = mag.shape
    local = flow - np.median(flow.reshape(-1, 2), axis=0)
    lmag = np.sqrt(local[..., 0] ** 2 + local[..., 1] ** 2)
    bh, bw = h // grid, w // grid
    blocks = lmag[: bh * grid, : bw * grid].reshape(grid, bh, grid, bw).mean(axis=(1, 3))
    return {"motion": mag.mean(), "motion_upper": mag[: h // 2].mean(),
            "motion_lower": mag[2 * h // 3:].mean(), "motion_local": blocks.max()}


def smooth_flow(rng, rows, cols):
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u = rng.normal(0, 0.3) + 1.5 * np.exp(-((xx - cols * 0.3) ** 2 + (yy - rows * 0.7) ** 2) / (2 * (cols / 8) ** 2))
    v = rng.normal(0, 0.3) - 2.0 * np.exp(-((xx - cols * 0.6) ** 2 + (yy - rows * 0.25) ** 2) / (2 * (cols / 9) ** 2))
    noise = rng.normal(0, 0.05, (rows, cols, 2))
    return (np.stack([u, v], -1) + noise).astype(np.float32)


@pytest.mark.parametrize("shape,grid,step", [((224, 224), 4, 4), ((144, 144), 4, 4), ((101, 77), 3, 2),
                                             ((64, 90), 4, 1), ((30, 30), 4, 7)])
def test_matches_numpy_definition(shape, grid, step):
    rng = np.random.default_rng(shape[0])
    flow = smooth_flow(rng, *shape)
    ours = K.region_motion(flow, grid=grid, step=step)
    ref = numpy_region_motion(flow, grid, step)
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k] == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-7), k


def test_local_score_ignores_uniform_motion_and_sees_a_local_one():
    flow = np.zeros((224, 224, 2), np.float32)
    flow[...] = (2.0, -1.0)  # the whole face moved alike: alignment residue
    s = K.region_motion(flow)
    assert s["motion"] == pytest.approx(np.sqrt(5)) and s["motion_local"] == 0.0
    flow[150:200, 40:100] += (0.0, 3.0)  # a mouth-corner action
    s = K.region_motion(flow)
    assert s["motion_local"] > 1.0 and s["motion_lower"] > s["motion_upper"]


def test_padded_rows_and_nonfinite_policy():
    rng = np.random.default_rng(3)
    big = smooth_flow(rng, 120, 140)
    view = big[:, 10:130]  # rows padded in memory
    assert K.region_motion(view) == pytest.approx(numpy_region_motion(np.ascontiguousarray(view)))
    bad = big.copy()
    bad[8, 8] = (np.nan, 0.0)
    with pytest.raises(ValueError, match=r"'flow' contains 1 NaN or infinite"):
        K.region_motion(bad)
    zeroed = big.copy()
    zeroed[8, 8] = 0.0
    assert K.region_motion(bad, nonfinite="zero") == pytest.approx(K.region_motion(zeroed))


@pytest.mark.parametrize(
    "flow,kwargs,exc,pattern",
    [
        (np.zeros((40, 40, 2), np.float64), {}, TypeError, r"region_motion: 'flow' must have dtype float32"),
        (np.zeros((40, 40, 3), np.float32), {}, ValueError, r"'flow' must have shape \(rows, cols, 2\)"),
        (np.zeros((12, 40, 2), np.float32), {}, ValueError, r"fewer than grid=4 samples per axis"),
        (np.zeros((40, 40, 2), np.float32), {"step": 0}, ValueError, r"'step' must be >= 1"),
        (np.zeros((40, 40, 2), np.float32), {"grid": 0}, ValueError, r"'grid' must be >= 1"),
        (np.zeros((40, 40, 2), np.float32), {"nonfinite": "drop"}, ValueError, r"'nonfinite' must be"),
    ],
)
def test_bad_input_is_named(flow, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        K.region_motion(flow, **kwargs)
