import cv2
import numpy as np
import pytest

from microexp.edge.pipeline import FrameResult
from microexp.edge.timeline import Timeline


def result(i, fps=200.0, peak_at=None):
    au = {"AU12": 0.9 if i == peak_at else 0.1, "AU04": 0.2}
    motion = {"motion_local": 3.0 if i == peak_at else 0.5}
    return FrameResult(i, i / fps, True, 1.0, (0, 0, 10, 10), au=au, motion=motion)


def test_memory_stays_bounded_and_a_one_frame_peak_survives(tmp_path):
    line = Timeline(["AU12", "AU04"], capacity=64)
    for i in range(10_000):  # 156x the capacity: the points merged seven times
        line.add(result(i, peak_at=7_777))
    assert 32 <= line.n <= 64 and line.stride == 256
    assert line._au.shape == (64, 2)  # the buffers never grew
    assert np.all(np.diff(line.t) > 0) and line.t[0] == 0.0
    assert line.au[:, 0].max() == pytest.approx(0.9) and line.motion.max() == pytest.approx(3.0)
    peak = int(np.argmax(line.au[:, 0]))
    assert line.t[peak] <= 7_777 / 200 < line.t[peak] + 256 / 200  # the point covering frame 7777
    png = cv2.imread(str(line.save(tmp_path / "t.png")))
    assert png is not None and png.shape == (560, 1400, 3)


def test_frames_without_a_face_do_not_hide_the_others():
    line = Timeline(["AU12"], capacity=4)
    for i in range(8):
        r = result(i) if i % 2 else FrameResult(i, i / 200, False, 0.0, None)  # every other frame lost
        line.add(r)
    assert line.n == 4 and np.allclose(line.au[:, 0], 0.1)  # NaN of the lost frames ignored
    with pytest.raises(ValueError, match="capacity"):
        Timeline(["AU12"], capacity=5)
