"""Twelve facial regions of interest placed from the five MTCNN landmarks, for region-level
flow features (kernels.region_flow) and region-graph spotters.

The landmarks are (left eye, right eye, nose tip, left mouth corner, right mouth corner) in the
crop's pixels, in MTCNN's order, where left and right are the image's (so "left" regions are
on the subject's right side). Sizes and offsets are in units of the eye distance d (|right eye - left eye|);
up is -y. Each region is an axis-aligned box (the crop is aligned: the face is upright in it):

| region | centre | half width x half height |
|---|---|---|
| brow_left_outer, brow_right_outer | each eye + (-/+0.25 d, -0.45 d) | 0.18 d x 0.12 d |
| brow_left_inner, brow_right_inner | each eye + (+/-0.15 d, -0.45 d) | 0.15 d x 0.12 d |
| glabella (between the brows: AU4) | eye midpoint + (0, -0.35 d) | 0.12 d x 0.12 d |
| eye_left, eye_right (lids: AU6/AU7) | each eye | 0.22 d x 0.12 d |
| nose_left, nose_right (nasolabial: AU9/AU10) | nose + (-/+0.25 d, -0.05 d) | 0.12 d x 0.15 d |
| mouth_left, mouth_right (corners: AU12/AU14/AU15) | each mouth corner | 0.15 d x 0.15 d |
| chin (AU17) | mouth-corner midpoint + (0, +0.45 d) | 0.25 d x 0.15 d |

Boxes are clipped to the crop; one that would be empty keeps one pixel at the nearest edge."""
from __future__ import annotations

from typing import Tuple

import numpy as np

# (name, anchor, dx, dy, half width, half height); anchors: 0 left eye, 1 right eye, 2 nose,
# 3 left mouth corner, 4 right mouth corner, "eyes" their midpoint, "mouth" the corners' midpoint.
REGIONS = (
    ("brow_left_outer", 0, -0.25, -0.45, 0.18, 0.12),
    ("brow_left_inner", 0, 0.15, -0.45, 0.15, 0.12),
    ("glabella", "eyes", 0.0, -0.35, 0.12, 0.12),
    ("brow_right_inner", 1, -0.15, -0.45, 0.15, 0.12),
    ("brow_right_outer", 1, 0.25, -0.45, 0.18, 0.12),
    ("eye_left", 0, 0.0, 0.0, 0.22, 0.12),
    ("eye_right", 1, 0.0, 0.0, 0.22, 0.12),
    ("nose_left", 2, -0.25, -0.05, 0.12, 0.15),
    ("nose_right", 2, 0.25, -0.05, 0.12, 0.15),
    ("mouth_left", 3, 0.0, 0.0, 0.15, 0.15),
    ("mouth_right", 4, 0.0, 0.0, 0.15, 0.15),
    ("chin", "mouth", 0.0, 0.45, 0.25, 0.15),
)
NAMES: Tuple[str, ...] = tuple(r[0] for r in REGIONS)


def region_boxes(landmarks: np.ndarray, size: Tuple[int, int], out: np.ndarray = None) -> np.ndarray:
    """(12, 4) int32 boxes (x0, y0, x1, y1) on a crop of `size` (rows, cols), from (5, 2)
    landmarks in its pixels; ValueError for landmarks that are not 5 finite points with the eyes
    apart."""
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"region_boxes: landmarks must be 5 finite (x, y) points, got shape {pts.shape}")
    d = float(np.hypot(*(pts[1] - pts[0])))
    if d < 1.0:
        raise ValueError(f"region_boxes: the eyes are {d:.2f} px apart; the regions need them at least 1 px apart")
    rows, cols = int(size[0]), int(size[1])
    anchors = {0: pts[0], 1: pts[1], 2: pts[2], 3: pts[3], 4: pts[4],
               "eyes": (pts[0] + pts[1]) / 2, "mouth": (pts[3] + pts[4]) / 2}
    boxes = np.empty((len(REGIONS), 4), np.int32) if out is None else out
    for k, (_, anchor, dx, dy, hw, hh) in enumerate(REGIONS):
        cx, cy = anchors[anchor] + (dx * d, dy * d)
        x0 = int(np.clip(np.floor(cx - hw * d), 0, cols - 1))
        y0 = int(np.clip(np.floor(cy - hh * d), 0, rows - 1))
        x1 = int(np.clip(np.ceil(cx + hw * d), x0 + 1, cols))
        y1 = int(np.clip(np.ceil(cy + hh * d), y0 + 1, rows))
        boxes[k] = (x0, y0, x1, y1)
    return boxes


REGION_CROP = 224  # the crop size region features are stated for (px); others are rescaled to it
# Where MTCNN's five landmarks fall in its face box on average (fractions of the box), for a
# detection whose landmarks cannot place regions (eyes on one point).
TYPICAL_LANDMARKS = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.35, 0.78], [0.65, 0.78]])


def crop_regions(landmarks: np.ndarray, crop_size: int) -> np.ndarray:
    """region_boxes on a square crop, from the detection's landmarks in its pixels, or from
    TYPICAL_LANDMARKS when those are not usable (so a track always has its regions)."""
    try:
        return region_boxes(landmarks, (crop_size, crop_size))
    except ValueError:
        return region_boxes(TYPICAL_LANDMARKS * crop_size, (crop_size, crop_size))
