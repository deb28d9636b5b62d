import numpy as np
import pytest

from microexp import kernels as K

FALLBACK = np.array(  # the official code's fixed landmarks when no face is found
    [[9.528073, 11.062551], [21.396168, 10.919773], [15.380184, 17.380562],
     [10.255435, 22.121233], [20.583706, 22.25584]])


def reference(map28, lm):
    """The official HTNet crop (on an HWC image) and tiling, transposed to CHW."""
    img = np.transpose(map28, (1, 2, 0))
    c = np.clip(lm, 7, 21).astype(int)
    parts = [img[c[k][0] - 7 : c[k][0] + 7, c[k][1] - 7 : c[k][1] + 7] for k in range(5)]
    top = np.hstack([parts[0], parts[1]])
    bottom = np.hstack([parts[3], parts[4]])
    return np.transpose(np.vstack([top, bottom]), (2, 0, 1))


@pytest.mark.parametrize("seed", range(20))
def test_matches_official_tiling(seed):
    rng = np.random.default_rng(seed)
    map28 = rng.random((3, 28, 28), dtype=np.float32)
    lm = FALLBACK if seed == 0 else rng.uniform(-5, 35, (5, 2))  # includes clamped centres
    np.testing.assert_array_equal(K.compose_regions(map28, lm), reference(map28, lm))


def test_writes_into_batch_slot():
    map28 = np.arange(3 * 28 * 28, dtype=np.float32).reshape(3, 28, 28)
    batch = np.zeros((2, 3, 28, 28), np.float32)
    K.compose_regions(map28, FALLBACK, out=batch[1])
    np.testing.assert_array_equal(batch[1], reference(map28, FALLBACK))
    assert not batch[0].any()


def test_rejects_aliasing_and_bad_landmarks():
    map28 = np.zeros((3, 28, 28), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        K.compose_regions(map28, FALLBACK, out=map28)
    with pytest.raises(ValueError, match="shape \\(5, 2\\)"):
        K.compose_regions(map28, FALLBACK[:4])
    bad = FALLBACK.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        K.compose_regions(map28, bad)
