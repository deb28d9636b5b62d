import cv2
import numpy as np
import pytest

from microexp import kernels as K

from .corpus import template_cases, texture

CASES = template_cases(seed=0, count=48)


def opencv(img, tpl):
    scores = cv2.matchTemplate(img, tpl, cv2.TM_CCOEFF_NORMED)
    _, best, _, loc = cv2.minMaxLoc(scores)
    return scores, loc, best


@pytest.mark.parametrize("i", range(len(CASES)))
def test_exact_mode_returns_opencv_argmax(i):
    img, tpl = CASES[i]
    scores, loc, best = opencv(img, tpl)
    x, y, score = K.match_template(img, tpl, mode="exact")
    assert (x, y) == loc
    assert isinstance(x, int) and isinstance(y, int)
    # OpenCV's float32 FFT correlation carries rounding noise; ours is exact.
    assert abs(score - best) < 5e-3


@pytest.mark.parametrize("i", range(len(CASES)))
def test_exact_score_map_agrees_with_opencv(i):
    img, tpl = CASES[i]
    scores, _, _ = opencv(img, tpl)
    ours = K.ncc_map(img, tpl)
    assert ours.shape == scores.shape
    # OpenCV correlates in float32 through a DFT: on smooth images its scores are off by up to
    # a few 1e-3 where ours are exact, so this bound is OpenCV's noise, not our error.
    np.testing.assert_allclose(ours, scores, atol=5e-3)
    assert (ours == scores).mean() > 0.1  # same arithmetic: many scores agree to the last bit


def test_fft_and_direct_correlation_agree_exactly():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)
    tpl = img[20:70, 30:90].copy()
    np.testing.assert_array_equal(K._ccorr_fft(img, tpl), K._kernels.ccorr_direct(img, tpl))


def test_ties_resolve_to_first_in_raster_order():
    # A template that occurs twice exactly: both score 1, minMaxLoc keeps the first.
    rng = np.random.default_rng(5)
    tile = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    img = np.zeros((40, 60), np.uint8)
    img[5:17, 40:52] = tile
    img[20:32, 3:15] = tile
    assert K.match_template(img, tile)[:2] == opencv(img, tile)[1] == (40, 5)


def test_flat_template_and_flat_image_follow_opencv():
    flat = np.full((10, 10), 90, np.uint8)
    img = texture(np.random.default_rng(1), 50, 50, 1, "random")
    assert K.match_template(img, flat) == (0, 0, 1.0)  # OpenCV: constant template -> all ones
    flat_img = np.full((30, 30), 12, np.uint8)
    tpl = texture(np.random.default_rng(2), 8, 8, 1, "random")
    x, y, s = K.match_template(flat_img, tpl)
    assert (x, y) == opencv(flat_img, tpl)[1] and s == 0.0


def realistic_pairs(count, seed=11):
    """Tracking-like pairs: a face-like frame, a template from it, the next frame shifted by a
    sub-pixel amount with sensor noise (what the pyramid mode sees in the runtime)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        channels = (3, 1)[i % 2]
        rows, cols = int(rng.integers(140, 220)), int(rng.integers(140, 220))
        frame = texture(rng, rows, cols, channels, "face_like")
        h, w = int(rng.integers(60, rows - 40)), int(rng.integers(60, cols - 40))
        y0, x0 = int(rng.integers(0, rows - h)), int(rng.integers(0, cols - w))
        tpl = frame[y0 : y0 + h, x0 : x0 + w].copy()
        shift = np.float32([[1, 0, rng.uniform(-6, 6)], [0, 1, rng.uniform(-6, 6)]])
        moved = cv2.warpAffine(frame, shift, (cols, rows), borderMode=cv2.BORDER_REFLECT)
        noisy = np.clip(moved.astype(np.int16) + rng.integers(-3, 4, moved.shape), 0, 255)
        pairs.append((noisy.astype(np.uint8).reshape(moved.shape), tpl))
    return pairs


def test_pyramid_agrees_with_exact_on_realistic_corpus():
    pairs = realistic_pairs(200)
    same = far = 0
    for img, tpl in pairs:
        ex = K.match_template(img, tpl, mode="exact")
        py = K.match_template(img, tpl, mode="pyramid")
        same += ex[:2] == py[:2]
        far += max(abs(ex[0] - py[0]), abs(ex[1] - py[1])) > 1
    assert same / len(pairs) >= 0.995, f"pyramid agreed on {same}/{len(pairs)}"
    assert far == 0


def test_subpixel_refinement_tracks_fractional_shift():
    rng = np.random.default_rng(3)
    frame = texture(rng, 160, 160, 1, "face_like")
    tpl = frame[40:120, 40:120].copy()
    for true_dx in (-2.3, 0.4, 1.7):
        shift = np.float32([[1, 0, true_dx], [0, 1, 0]])
        moved = cv2.warpAffine(frame, shift, (160, 160), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        for mode in ("exact", "pyramid"):
            x, y, _ = K.match_template(moved, tpl, mode=mode, subpixel=True)
            assert isinstance(x, float)
            assert abs(x - (40 + true_dx)) < 0.25 and abs(y - 40) < 0.25


@pytest.mark.parametrize("channels", [2, 4])
def test_pyramid_and_exact_agree_for_two_and_four_channels(channels):
    """The pyramid's channel-specialised downsampling and lane sums cover every channel count
    the facade accepts, not only gray and BGR."""
    for img, tpl in realistic_pairs(12, seed=5 + channels)[::2]:  # the 3-channel pairs
        extra = [img[..., :1]] if channels == 4 else []
        extra_t = [tpl[..., :1]] if channels == 4 else []
        img_c = np.ascontiguousarray(np.concatenate([img[..., :channels - len(extra)]] + extra, axis=2))
        tpl_c = np.ascontiguousarray(np.concatenate([tpl[..., :channels - len(extra_t)]] + extra_t, axis=2))
        ex = K.match_template(img_c, tpl_c, mode="exact")
        py = K.match_template(img_c, tpl_c, mode="pyramid")
        assert img_c.shape[2] == channels
        assert max(abs(ex[0] - py[0]), abs(ex[1] - py[1])) <= 1
        if ex[:2] == py[:2]:
            assert ex[2] == py[2]  # the pyramid's final scores are exact-mode scores
