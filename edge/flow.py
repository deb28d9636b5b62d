"""Optical flow between the reference (onset) crop and the current crop, gray uint8.

`farneback` is the seed's reference (DESIGN.md section 4); the DIS presets are the fast modes.
Their fidelity to the reference is measured, not assumed (docs and issue 6's flow report)."""
from __future__ import annotations

import cv2
import numpy as np

METHODS = ("farneback", "dis-ultrafast", "dis-fast", "dis-medium")
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def describe(method: str) -> str:
    if method == "farneback":
        return ("cv2.calcOpticalFlowFarneback(pyr_scale=0.5, levels=3, winsize=15, iterations=3, "
                "poly_n=5, poly_sigma=1.2, flags=0)")
    return f"cv2.DISOpticalFlow preset {method.split('-')[1]}"


class FlowEstimator:
    def __init__(self, method: str = "farneback"):
        if method not in METHODS:
            raise ValueError(f"FlowEstimator: method must be one of {METHODS}, got {method!r}")
        self.method = method
        self._dis = None
        if method.startswith("dis-"):
            preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                      "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                      "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[method.split("-")[1]]
            self._dis = cv2.DISOpticalFlow_create(preset)

    def __call__(self, reference: np.ndarray, current: np.ndarray, out: np.ndarray = None) -> np.ndarray:
        if reference.shape != current.shape or reference.dtype != np.uint8 or reference.ndim != 2:
            raise ValueError(f"FlowEstimator: need two gray uint8 crops of one shape, got "
                             f"{reference.shape} {reference.dtype} and {current.shape} {current.dtype}")
        if self._dis is not None:
            return self._dis.calc(reference, current, out)
        return cv2.calcOpticalFlowFarneback(reference, current, out, **FARNEBACK)
