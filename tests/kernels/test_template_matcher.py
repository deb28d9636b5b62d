"""TemplateMatcher: the pyramid search with the template prepared once (the tracking case)."""
import cv2
import numpy as np
import pytest

from microexp import kernels as K

from .corpus import texture
from .test_match_template import CASES, realistic_pairs


@pytest.mark.parametrize("i", range(0, len(CASES), 3))
def test_same_results_as_match_template_pyramid(i):
    img, tpl = CASES[i]
    matcher = K.TemplateMatcher(tpl)
    assert matcher.match(img) == K.match_template(img, tpl, mode="pyramid")
    assert matcher.match(img, subpixel=True) == K.match_template(img, tpl, mode="pyramid", subpixel=True)


def test_one_matcher_many_frames_equals_fresh_searches():
    pairs = realistic_pairs(40, seed=5)
    for img, tpl in pairs[:8]:
        matcher = K.TemplateMatcher(tpl)
        # Frames of other sizes in between must not disturb the prepared levels.
        for frame in (img, img[3:, 5:], img):
            assert matcher.match(frame) == K.match_template(frame, tpl, mode="pyramid")


def test_matcher_keeps_its_own_copy_of_the_template():
    rng = np.random.default_rng(1)
    frame = texture(rng, 160, 180, 3, "face_like")
    tpl = frame[30:130, 40:140].copy()
    matcher = K.TemplateMatcher(tpl)
    before = matcher.match(frame)
    tpl[:] = 0  # the caller reuses its buffer
    assert matcher.match(frame) == before == (40, 30, pytest.approx(1.0))


def test_align_crop_with_a_matcher_equals_align_crop_with_the_template():
    rng = np.random.default_rng(2)
    frame = texture(rng, 300, 380, 3, "face_like")
    box = (90, 60, 250, 230)
    template = frame[60:230, 90:250].copy()
    moved = cv2.warpAffine(frame, np.float32([[1, 0, 3.4], [0, 1, -2.2]]), (380, 300),
                           borderMode=cv2.BORDER_REFLECT)
    crop, new_box, score = K.align_crop(moved, template, box, mode="pyramid")
    crop_m, new_box_m, score_m = K.align_crop(moved, K.TemplateMatcher(template), box, mode="pyramid")
    assert new_box_m == new_box and score_m == score
    np.testing.assert_array_equal(crop_m, crop)


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (lambda m: m.match(np.zeros((60, 60), np.uint8)), ValueError, r"same number of channels"),
        (lambda m: m.match(np.zeros((10, 60, 3), np.uint8)), ValueError, r"must not be larger than 'image'"),
        (lambda m: m.match(np.zeros((60, 60, 3), np.float32)), TypeError, r"'image' must have dtype uint8"),
        (lambda m: m.match(np.zeros((60, 60, 3), np.uint8)[:, ::2]), ValueError, r"contiguous within rows"),
        (lambda m: K.align_crop(np.zeros((80, 80, 3), np.uint8), m, (10, 10, 30, 30), mode="exact"),
         ValueError, r"TemplateMatcher searches in 'pyramid' mode"),
        (lambda m: K.align_crop(np.zeros((80, 80), np.uint8), m, (10, 10, 30, 30), mode="pyramid"),
         ValueError, r"same number of channels"),
    ],
)
def test_bad_input_is_named(call, exc, pattern):
    matcher = K.TemplateMatcher(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(exc, match=pattern):
        call(matcher)


@pytest.mark.parametrize(
    "template,exc,pattern",
    [
        (np.zeros((20, 20, 3), np.float32), TypeError, r"TemplateMatcher: 'template' must have dtype uint8"),
        (np.zeros((0, 20), np.uint8), ValueError, r"'template' is empty"),
        (np.zeros((20, 20, 5), np.uint8), ValueError, r"1 to 4 channel"),
        ([[1, 2]], TypeError, r"'template' must be a numpy.ndarray"),
    ],
)
def test_bad_template_is_named(template, exc, pattern):
    with pytest.raises(exc, match=pattern):
        K.TemplateMatcher(template)


def _halved(img):
    """2x2 block means rounded half up, odd last row/column dropped: the pyramid's halving."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    blocks = img[:h, :w].astype(np.int32).reshape(h // 2, 2, w // 2, 2, -1)
    return ((blocks.sum(axis=(1, 3)) + 2) >> 2).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("loops", ["best", "portable"])
def test_template_levels_are_exact_halvings(channels, loops):
    """Every prepared level against a NumPy halving, for widths that end the vector loops at
    every remainder (gray: 32 pixels per step, BGR: 4)."""
    rng = np.random.default_rng(channels)
    for rows, cols in ((257, 611), (64, 130), (99, 67), (33, 35)):
        tpl = rng.integers(0, 256, (rows, cols, channels), dtype=np.uint8)
        impl = K.TemplateMatcher(tpl, _loops=loops)._impl
        assert impl.depth >= 1
        want = tpl
        for level in range(1, impl.depth + 1):
            want = _halved(want)
            np.testing.assert_array_equal(impl.level(level), want, err_msg=f"{rows}x{cols} level {level}")
        np.testing.assert_array_equal(impl.level(0), tpl)
    with pytest.raises(ValueError, match="outside 0"):
        impl.level(impl.depth + 1)


LOOPS = ("best", "avx2", "portable")  # best: VNNI where the CPU has it, else AVX2, else portable


@pytest.mark.parametrize("i", range(len(CASES)))
def test_every_loop_set_agrees_bit_for_bit(i):
    """ARM runs the portable row loops, x86 the AVX2 or VNNI ones (correlation, window
    sums, halving): the same integer sums, so the same placements and the same float scores."""
    img, tpl = CASES[i]
    for subpixel in (False, True):
        results = {loops: K.TemplateMatcher(tpl, _loops=loops).match(img, subpixel) for loops in LOOPS}
        assert len(set(results.values())) == 1, results


def test_every_loop_set_agrees_on_tracking_pairs():
    for img, tpl in realistic_pairs(24, seed=8):
        four = np.dstack([img, img[..., :1]]) if img.ndim == 3 else img
        four_t = np.dstack([tpl, tpl[..., :1]]) if tpl.ndim == 3 else tpl
        for a, t in ((img, tpl), (four, four_t)):
            results = {loops: K.TemplateMatcher(t, _loops=loops).match(a, True) for loops in LOOPS}
            assert len(set(results.values())) == 1, results


def test_unknown_loop_set_is_refused():
    with pytest.raises(ValueError, match="'loops' must be 'best', 'avx2' or 'portable'"):
        K.TemplateMatcher(np.zeros((20, 20), np.uint8), _loops="sse")


def test_templates_too_tall_for_32_bit_column_sums_take_the_direct_sums():
    """255^2 * rows >= 2^31 from 33026 rows on: that level sums each window directly."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (33060, 24), dtype=np.uint8)
    tpl = np.clip(img[20:20 + 33030, 3:21].astype(np.int16) + rng.integers(-3, 4, (33030, 18)), 0, 255).astype(np.uint8)
    want = K.match_template(img, tpl, mode="exact")
    for loops in LOOPS:
        got = K.TemplateMatcher(tpl, _loops=loops).match(img)
        assert got[:2] == want[:2] == (3, 20) and got[2] == pytest.approx(want[2], abs=1e-6)


def test_half_resolution_tracking_finds_the_full_search_placement():
    """finest_level=1 stops at the halved images, maps the parabola-refined peak back to full
    resolution and, near half-way between pixels, scores the neighbours there: the exact
    placement on every tracking pair of this corpus."""
    same = 0
    for img, tpl in realistic_pairs(60, seed=12):
        matcher = K.TemplateMatcher(tpl)
        x, y, _ = K.match_template(img, tpl, mode="exact")
        hx, hy, hscore = matcher.match(img, finest_level=1)
        assert isinstance(hx, int) and abs(hx - x) <= 1 and abs(hy - y) <= 1
        same += (hx, hy) == (x, y)
        assert 0.5 < hscore <= 1.0
        sx, sy, _ = matcher.match(img, subpixel=True, finest_level=1)
        assert abs(sx - hx) < 1 and abs(sy - hy) < 1
        # A level beyond the pyramid's depth is the coarsest search alone, still in range.
        cx, cy, _ = matcher.match(img, finest_level=4)
        assert 0 <= cx <= img.shape[1] - tpl.shape[1] and 0 <= cy <= img.shape[0] - tpl.shape[0]
    assert same == 60


def test_finest_level_is_checked():
    matcher = K.TemplateMatcher(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="'finest_level' must be from 0 to 4"):
        matcher.match(np.zeros((60, 60, 3), np.uint8), finest_level=5)
    with pytest.raises(ValueError, match="finest_level > 0 needs a TemplateMatcher"):
        K.align_crop(np.zeros((80, 80, 3), np.uint8), np.zeros((20, 20, 3), np.uint8), (10, 10, 30, 30),
                     mode="pyramid", finest_level=1)
