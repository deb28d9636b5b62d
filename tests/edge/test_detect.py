from pathlib import Path

import cv2
import numpy as np
import pytest

from microexp.edge.detect import FaceDetector

PHOTO = Path(__file__).resolve().parents[2] / "training" / "faces" / "astronaut.png"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_finds_the_face_and_landmarks_on_a_real_photo(detector):
    img = cv2.imread(str(PHOTO))
    faces = detector.detect(img)
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f.box
    assert f.score > 0.99 and 60 < x2 - x1 < 140 and 150 < x1 < 210 and 40 < y1 < 90
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = f.landmarks
    assert x1 < lex < nx < rex < x2 and x1 < lmx < rmx < x2
    assert y1 < ley < ny < lmy < y2 and y1 < rey < ny < rmy < y2


def test_gray_bgra_and_scaled_frames(detector):
    img = cv2.imread(str(PHOTO))
    ref = detector.detect(img)[0].box
    for frame in (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)):
        assert np.abs(detector.detect(frame)[0].box - ref).max() < 12
    big = cv2.resize(img, None, fx=2, fy=2)
    assert np.abs(detector.detect(big)[0].box / 2 - ref).max() < 12


def test_no_face_in_a_flat_frame(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((10, 10, 3), np.uint8)) == []


@pytest.mark.parametrize("frame, error", [
    (np.zeros((20, 20, 3), np.float32), TypeError),
    (np.zeros((20, 20, 2), np.uint8), ValueError),
    ("image.png", TypeError),
])
def test_bad_frames_are_named(detector, frame, error):
    with pytest.raises(error, match="frame"):
        detector.detect(frame)


def test_bad_settings_and_missing_models(tmp_path):
    with pytest.raises(ValueError, match="min_face"):
        FaceDetector(min_face=5)
    with pytest.raises(FileNotFoundError, match="pnet.onnx"):
        FaceDetector(model_dir=tmp_path)
