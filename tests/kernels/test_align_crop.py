import cv2
import numpy as np
import pytest

from microexp import kernels as K

from .corpus import texture


def seed_crop_with_template(frame, template, box, margin=40, size=(224, 224)):
    """The seed's behaviour written with OpenCV-Python (DESIGN.md section 4)."""
    x1, y1, x2, y2 = box
    rows, cols = frame.shape[:2]
    rx1, ry1 = max(x1 - margin, 0), max(y1 - margin, 0)
    rx2, ry2 = min(x2 + margin, cols), min(y2 + margin, rows)
    region = frame[ry1:ry2, rx1:rx2]
    scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    h, w = template.shape[:2]
    crop = frame[ry1 + y : ry1 + y + h, rx1 + x : rx1 + x + w]
    return cv2.resize(crop, size), (rx1 + x, ry1 + y, rx1 + x + w, ry1 + y + h), best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["exact", "pyramid"])
def test_matches_seed_crop_with_template(seed, mode):
    rng = np.random.default_rng(seed)
    channels = (3, 1)[seed % 2]
    frame = texture(rng, 300, 380, channels, "face_like")
    box = (int(rng.integers(0, 120)), int(rng.integers(0, 80)), 0, 0)
    box = (box[0], box[1], box[0] + int(rng.integers(100, 200)), box[1] + int(rng.integers(100, 200)))
    template = frame[box[1] : box[3], box[0] : box[2]].copy()
    shift = np.float32([[1, 0, rng.uniform(-8, 8)], [0, 1, rng.uniform(-8, 8)]])
    moved = cv2.warpAffine(frame, shift, (380, 300), borderMode=cv2.BORDER_REFLECT)
    crop, new_box, score = K.align_crop(moved, template, box, mode=mode)
    ref_crop, ref_box, ref_score = seed_crop_with_template(moved, template, box)
    assert new_box == ref_box
    assert crop.shape == ref_crop.shape
    assert np.abs(crop.astype(int) - ref_crop).max() <= 1
    assert abs(score - ref_score) < 2e-3


def test_writes_into_caller_buffer_and_clips_region_at_borders():
    rng = np.random.default_rng(0)
    frame = texture(rng, 200, 200, 3, "face_like")
    box = (0, 0, 120, 120)  # the grown region is clipped at the top-left corner
    template = frame[0:120, 0:120].copy()
    out = np.empty((112, 96, 3), np.uint8)
    crop, new_box, score = K.align_crop(frame, template, box, size=(96, 112), out=out)
    assert np.shares_memory(crop, out)
    assert new_box == (0, 0, 120, 120) and score == pytest.approx(1.0)


def test_region_smaller_than_template_is_a_clear_error():
    frame = np.zeros((100, 100), np.uint8)
    with pytest.raises(ValueError, match="smaller than the 90x90 template"):
        K.align_crop(frame, np.zeros((90, 90), np.uint8), (10, 10, 50, 50), margin=5)
