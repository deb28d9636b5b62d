"""The one check every frame passes on its way in: uint8, gray / BGR / BGRA, any size."""
from __future__ import annotations

import cv2
import numpy as np


def as_bgr(frame, who: str) -> np.ndarray:
    """The frame as 3-channel BGR (the array itself when it already is); `who` names the
    caller in the error."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"{who}: frame must be a uint8 numpy array, got "
                        f"{getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ValueError(f"{who}: frame must be gray, BGR or BGRA, got shape {frame.shape}")
