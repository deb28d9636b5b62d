import cv2
import numpy as np
import pytest

from microexp import kernels as K

from .corpus import flow_cases

CASES = flow_cases(seed=2)


def reference_uvs28(flow, scale=1.0):
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    exy = 0.5 * (du_dy + dv_dx)
    strain = np.sqrt(du_dx**2 + dv_dy**2 + 2 * exy**2)
    maps = []
    for m in (u, v, strain):
        rng = m.max() - m.min()
        m = (m - m.min()) * (scale / rng) if rng > 0 else np.zeros_like(m)
        maps.append(cv2.resize(m, (28, 28), interpolation=cv2.INTER_AREA))
    return np.stack(maps).astype(np.float32)


@pytest.mark.parametrize("kind,size,flow", CASES, ids=[f"{k}-{s[0]}x{s[1]}" for k, s, _ in CASES])
def test_matches_numpy_opencv_reference(kind, size, flow):
    ours = K.encode_uvs28(flow)
    assert ours.shape == (3, 28, 28) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_uvs28(flow), atol=2e-5)
    assert ours.min() >= 0 and ours.max() <= 1 + 1e-6


def test_scale_and_batch_buffer():
    flow = CASES[0][2]
    batch = np.zeros((4, 3, 28, 28), np.float32)
    K.encode_uvs28(flow, out=batch[2], scale=255.0)
    np.testing.assert_allclose(batch[2], reference_uvs28(flow, 255.0), atol=5e-3)
    assert not batch[[0, 1, 3]].any()


def test_zero_flow_gives_zeros():
    assert not K.encode_uvs28(np.zeros((30, 40, 2), np.float32)).any()


def test_nonfinite_policy():
    flow = np.ones((28, 28, 2), np.float32)
    flow[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        K.encode_uvs28(flow)
    out = K.encode_uvs28(flow, nonfinite="zero")
    assert np.isfinite(out).all()
