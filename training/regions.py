"""Input treatments of 28x28 u/v/strain maps (channels u, v, strain; values 0..255)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from microexp import kernels

from .datasets.megc import FALLBACK_LANDMARKS_28


def compose_batch(maps: np.ndarray, landmarks: Optional[np.ndarray] = None) -> np.ndarray:
    """HTNet's four-region composite of each map (kernels.compose_regions). Without
    per-sample landmarks, HTNet's own fallback landmarks are used for every sample."""
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    out = np.empty_like(maps)
    for i in range(len(maps)):
        lm = FALLBACK_LANDMARKS_28 if landmarks is None else landmarks[i]
        kernels.compose_regions(maps[i], lm, out=out[i])
    return out


# MTCNN's point order (left eye, right eye, nose, left mouth corner, right mouth corner): in a
# mirrored face the left and right points trade places.
_MIRRORED_ORDER = [1, 0, 2, 4, 3]


def flip_landmarks(landmarks: np.ndarray, size: float = 28.0) -> np.ndarray:
    """The landmarks (..., 5, 2) of mirrored maps: x -> size - x (continuous pixel coordinates)
    and left/right points swapped, as a detector would report them on the mirrored face."""
    out = np.array(landmarks, dtype=np.float64)[..., _MIRRORED_ORDER, :]
    out[..., 0] = size - out[..., 0]
    return out


def flip_maps(maps: np.ndarray) -> np.ndarray:
    """Mirror maps left-right as the flow of a mirrored face: columns reversed and u negated.
    u was min-max normalised to 0..255 per map, so -u normalises to 255 - u; v and the strain
    magnitude are unchanged by a mirror."""
    out = maps[..., ::-1].copy()
    out[:, 0] = 255.0 - out[:, 0]
    return out
