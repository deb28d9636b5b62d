import cv2
import numpy as np
import pytest

from microexp import kernels as K
from microexp.kernels.reference import crop_with_template as seed_crop_with_template

from .corpus import texture


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
