"""The twelve regions placed from five landmarks: where each lands on a face of known layout,
inside the crop always, and refused landmarks named."""
import numpy as np
import pytest

from microexp import kernels as K
from microexp.edge.face_regions import NAMES, region_boxes

# A 224 px crop of an upright face: eyes 80 px apart.
FACE = np.array([[72, 90], [152, 90], [112, 130], [82, 165], [142, 165]], np.float64)


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_regions_sit_where_the_table_says():
    boxes = dict(zip(NAMES, region_boxes(FACE, (224, 224))))
    assert len(boxes) == 12
    assert centre(boxes["brow_left_outer"]) == pytest.approx((52, 54), abs=1)  # 0.25 d left, 0.45 d up
    assert centre(boxes["glabella"]) == pytest.approx((112, 62), abs=1)
    assert centre(boxes["eye_right"]) == pytest.approx((152, 90), abs=1)
    assert centre(boxes["mouth_left"]) == pytest.approx((82, 165), abs=1)
    assert centre(boxes["chin"]) == pytest.approx((112, 201), abs=1)
    assert all(b[1] < boxes["eye_left"][1] for n, b in boxes.items() if n.startswith("brow"))


def test_boxes_stay_inside_the_crop_and_feed_the_kernel():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pts = FACE * rng.uniform(0.2, 2.5) + rng.uniform(-150, 150, 2)
        boxes = region_boxes(pts, (224, 200))
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= 200) and np.all(boxes[:, 0] < boxes[:, 2])
        assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= 224) and np.all(boxes[:, 1] < boxes[:, 3])
        K.region_flow(np.zeros((224, 200, 2), np.float32), boxes)


@pytest.mark.parametrize("pts, message", [
    (FACE[:4], "5 finite"), (np.where(np.arange(10).reshape(5, 2) == 3, np.nan, FACE), "5 finite"),
    (np.repeat(FACE[:1], 5, axis=0), "eyes are 0.00 px apart"),
])
def test_bad_landmarks_are_named(pts, message):
    with pytest.raises(ValueError, match=message):
        region_boxes(pts, (224, 224))


def test_the_kernel_benchmark_uses_these_regions():
    """kernels/bench.py cannot import edge (layering), so it keeps a copy of these boxes."""
    import inspect

    from microexp.kernels import bench
    src = inspect.getsource(bench)
    for box in region_boxes(FACE, (224, 224)).tolist():
        assert str(box) in src


def test_numpy_baseline_agrees_with_the_kernel():
    from microexp.kernels.bench import np_region_flow
    flow = np.random.default_rng(1).normal(0, 1, (224, 224, 2)).astype(np.float32)
    boxes = region_boxes(FACE, (224, 224))
    np.testing.assert_allclose(np_region_flow(flow, boxes), K.region_flow(flow, boxes), rtol=1e-5, atol=1e-6)
