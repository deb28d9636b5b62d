"""region_motion: the spotter's motion scores, against a NumPy statement of the definition."""
import numpy as np
import pytest

from microexp import kernels as K


def numpy_region_motion(flow, grid=4, step=4, nonrigid_grid=None):
    flow = flow[::step, ::step]
    mag = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)
    h, w = mag.shape
    local = flow - np.median(flow.reshape(-1, 2), axis=0)
    lmag = np.sqrt(local[..., 0] ** 2 + local[..., 1] ** 2)

    def largest_block(m, g):
        bh, bw = h // g, w // g
        return m[: bh * g, : bw * g].reshape(g, bh, g, bw).mean(axis=(1, 3)).max()
    out = {"motion": mag.mean(), "motion_upper": mag[: h // 2].mean(),
           "motion_lower": mag[2 * h // 3:].mean(), "motion_local": largest_block(lmag, grid)}
    if nonrigid_grid is not None:  # minus the least-squares affine fit of u and v
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        design = np.stack([np.ones(h * w), xx.ravel(), yy.ravel()], 1)
        residual = [flow[..., k].ravel() - design @ np.linalg.lstsq(design, flow[..., k].ravel().astype(np.float64),
                                                                   rcond=None)[0] for k in range(2)]
        out["motion_nonrigid"] = largest_block(np.hypot(*residual).reshape(h, w), nonrigid_grid)
    return out


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


@pytest.mark.parametrize("shape,nonrigid_grid", [((224, 224), 8), ((152, 152), 8), ((101, 77), 5), ((64, 90), 16)])
def test_the_fine_partition_matches_numpy_too(shape, nonrigid_grid):
    flow = smooth_flow(np.random.default_rng(shape[1]), *shape)
    ours = K.region_motion(flow, nonrigid_grid=nonrigid_grid)
    ref = numpy_region_motion(flow, nonrigid_grid=nonrigid_grid)
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k] == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-7), k
    assert "motion_nonrigid" not in K.region_motion(flow)


def test_head_motion_leaves_the_nonrigid_score_and_a_small_weak_action_stands_out():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float32)
    a = np.deg2rad(0.5)  # the head turns half a degree about the crop centre and shifts
    rigid = np.stack([(np.cos(a) - 1) * (xx - 112) - np.sin(a) * (yy - 112) + 0.7,
                      np.sin(a) * (xx - 112) + (np.cos(a) - 1) * (yy - 112) - 0.4], -1)
    calm = (rigid + rng.normal(0, 0.05, rigid.shape)).astype(np.float32)
    s_calm = K.region_motion(calm, nonrigid_grid=8)
    assert s_calm["motion_nonrigid"] < 0.1 < s_calm["motion_local"]  # the rotation survives the median
    lid = calm.copy()
    lid[..., 1] -= 1.2 * np.exp(-((xx - 60) ** 2 + (yy - 90) ** 2) / (2 * 7.0 ** 2))  # a lid tightening
    s_lid = K.region_motion(lid, nonrigid_grid=8)
    assert s_lid["motion_nonrigid"] > 3 * s_calm["motion_nonrigid"]
    assert s_lid["motion_local"] < 1.5 * s_calm["motion_local"]  # lost in the rotation on 4 x 4 blocks


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
        (np.zeros((40, 40, 2), np.float32), {"step": 0}, ValueError, r"'step' must be from 1 to"),
        (np.zeros((40, 40, 2), np.float32), {"grid": 0}, ValueError, r"'grid' must be from 1 to"),
        (np.zeros((40, 40, 2), np.float32), {"nonrigid_grid": 0}, ValueError, r"'nonrigid_grid' must be from 1 to"),
        (np.zeros((24, 40, 2), np.float32), {"nonrigid_grid": 8}, ValueError, r"fewer than nonrigid_grid=8 samples"),
        (np.zeros((40, 40, 2), np.float32), {"nonfinite": "drop"}, ValueError, r"'nonfinite' must be"),
    ],
)
def test_bad_input_is_named(flow, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        K.region_motion(flow, **kwargs)
