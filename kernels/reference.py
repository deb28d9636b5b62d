"""The seed project's OpenCV-Python chains (samm-optflow-28's preprocessing): the oracle the kernels are
tested against and the baseline they are benchmarked against. Plain OpenCV/NumPy, no C++."""
from __future__ import annotations

import cv2
import numpy as np


def match_template(region, template):
    """cv2.matchTemplate(TM_CCOEFF_NORMED) + cv2.minMaxLoc -> (x, y, score)."""
    scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, loc = cv2.minMaxLoc(scores)
    return loc[0], loc[1], best


def crop_with_template(frame, template, box, margin=40, size=(224, 224)):
    """The seed's alignment -> (crop, new_box, score)."""
    x1, y1, x2, y2 = box
    rx1, ry1 = max(x1 - margin, 0), max(y1 - margin, 0)
    rx2, ry2 = min(x2 + margin, frame.shape[1]), min(y2 + margin, frame.shape[0])
    x, y, score = match_template(frame[ry1:ry2, rx1:rx2], template)
    h, w = template.shape[:2]
    cx, cy = rx1 + x, ry1 + y
    return cv2.resize(frame[cy : cy + h, cx : cx + w], size), (cx, cy, cx + w, cy + h), score


def hsv28(flow):
    """The seed's HSV encoding of a flow field -> BGR uint8 (28, 28, 3)."""
    mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return cv2.resize(bgr, (28, 28), interpolation=cv2.INTER_AREA)
