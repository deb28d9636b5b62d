"""One tracked face: what the pipeline keeps per person between frames (template, box,
reference crop, spotter, action gate, the learned spotter's state), and how a face seen again
is recognised as one seen before (by where it was, checked by how it looks), so that its face_id
holds across frames and re-acquisitions."""
from __future__ import annotations

from collections import deque
from typing import Optional, Tuple

import cv2
import numpy as np

from .action import ActionGate
from .flow import FlowEstimator
from .spotting import IntervalSpotter

# How like two looks of a face must be to be taken for the same person when found again where it
# was lost: the normalised correlation of their 32x32 grey thumbnails. A weak cue, measured on
# public photos and a talking-face clip (tests/edge/appearance_cue.py, docs/runtime.md): 45 pairs of different people had a
# median of 0.26 (90th percentile 0.59, highest 0.79); 190 pairs of one talking person 1 s apart
# a median of 0.60. So position decides, and a look is only a check against a stranger there.
SAME_FACE_LOOK = 0.6


def appearance(frame: np.ndarray, box) -> np.ndarray:
    """A 32x32 grey thumbnail of the face, zero mean and unit norm (lighting-independent)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    patch = frame[y1:y2, x1:x2]
    if patch.size == 0:
        return np.zeros(32 * 32, np.float32)
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    v = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTrack:
    def __init__(self, face_id: int, flow: FlowEstimator, spotter: IntervalSpotter, gate: Optional[ActionGate]):
        self.face_id = face_id
        self.flow = flow  # its own: the native flow keeps the reference's expansions between calls
        self.spotter = spotter
        self.gate = gate
        self.spot_state: Tuple[np.ndarray, ...] = ()  # the learned spotter's (h, c) while another face runs
        self.template = None
        self.tracked = None  # the template prepared for the pyramid search
        self.box: Optional[Tuple[int, int, int, int]] = None
        self.reference = None
        self.landmarks28 = None
        self.regions = None  # (12, 4) int32 facial region boxes on the crop (edge/face_regions.py)
        self.history = deque()
        self.calm_since = None
        self.look = None  # appearance() when acquired
        self.lost_at: Optional[float] = None

    def same_person(self, frame: np.ndarray, box, timestamp: float, look: Optional[np.ndarray] = None) -> float:
        """How surely a face at `box` is this lost track's person (0: not): found where the track
        was, either on the very frame it was lost (the tracker slipped and detection caught the
        face again) or later and looking alike (SAME_FACE_LOOK)."""
        if self.box is None or self.look is None:
            return 0.0
        near = iou(self.box, box) > 0.3 or _centre_distance(self.box, box) < 0.5 * (self.box[2] - self.box[0])
        if not near:
            return 0.0
        if self.lost_at is not None and self.lost_at == timestamp:
            return 1.0
        look = appearance(frame, box) if look is None else look
        similarity = float(np.dot(self.look, look))
        return similarity if similarity >= SAME_FACE_LOOK else 0.0


def _centre_distance(a, b) -> float:
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))
