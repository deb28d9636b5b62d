"""Optical flow between the reference (onset) crop and the current crop, gray uint8.

`farneback` is the seed's reference (DESIGN.md section 4); the DIS presets are the fast modes;
`tvl1` (OpenCV contrib's Dual TV-L1, default parameters) is the accurate, slow one, for
offline analysis (about 0.3 s per 224x224 pair on one core).
Their fidelity to the reference is measured, not assumed (docs and issue 6's flow report)."""
from __future__ import annotations

import cv2
import numpy as np

METHODS = ("farneback", "dis-ultrafast", "dis-fast", "dis-medium", "tvl1")
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def describe(method: str) -> str:
    if method == "farneback":
        return ("cv2.calcOpticalFlowFarneback(pyr_scale=0.5, levels=3, winsize=15, iterations=3, "
                "poly_n=5, poly_sigma=1.2, flags=0)")
    if method == "tvl1":
        return "cv2.optflow.DualTVL1OpticalFlow (OpenCV defaults)"
    return f"cv2.DISOpticalFlow preset {method.split('-')[1]}"


class FlowEstimator:
    def __init__(self, method: str = "farneback"):
        if method not in METHODS:
            raise ValueError(f"FlowEstimator: method must be one of {METHODS}, got {method!r}")
        self.method = method
        self._engine = None
        if method == "tvl1":
            if not hasattr(cv2, "optflow"):
                raise RuntimeError("FlowEstimator: 'tvl1' needs OpenCV's contrib modules "
                                   "(opencv-contrib-python-headless)")
            self._engine = cv2.optflow.DualTVL1OpticalFlow_create()  # same calc() interface
        elif method.startswith("dis-"):
            preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                      "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                      "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[method.split("-")[1]]
            self._engine = cv2.DISOpticalFlow_create(preset)

    def __call__(self, reference: np.ndarray, current: np.ndarray, out: np.ndarray = None) -> np.ndarray:
        if reference.shape != current.shape or reference.dtype != np.uint8 or reference.ndim != 2:
            raise ValueError(f"FlowEstimator: need two gray uint8 crops of one shape, got "
                             f"{reference.shape} {reference.dtype} and {current.shape} {current.dtype}")
        if self._engine is not None:
            return self._engine.calc(reference, current, out)
        return cv2.calcOpticalFlowFarneback(reference, current, out, **FARNEBACK)
