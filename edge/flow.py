"""Optical flow between the reference (onset) crop and the current crop, gray uint8.

`farneback` is the seed's reference (Farneback with the seed project's parameters),
computed by the native kernel (microexp.kernels.FarnebackFlow: OpenCV's arithmetic, within
about 1e-5 px of cv2, and it keeps the onset frame's expansions between frames);
`farneback-opencv` is the same call through cv2 itself. `farneback-fast` is the fast mode:
the same algorithm for a 152 px crop (winsize 11, 2 levels, 1 iteration). The DIS presets are
other fast modes; `tvl1` (OpenCV contrib's Dual TV-L1, default parameters) is the accurate,
slow one, for offline analysis (about 0.3 s per 224x224 pair on one core).
Their fidelity to the reference is measured, not assumed (`microexp bench` prints the
correlation of the fast mode's maps with the reference's; docs/synth.md has end-point errors)."""
from __future__ import annotations

import cv2
import numpy as np

from microexp import kernels

METHODS = ("farneback", "farneback-opencv", "farneback-fast", "dis-ultrafast", "dis-fast", "dis-medium", "tvl1")
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
# The fast mode: chosen on the benchmark's planted-motion frames as the cheapest setting whose
# 28x28 maps keep Pearson r >= 0.95 against reference mode's (docs/benchmarks.md); meant for
# a 152 px crop (PipelineConfig.crop_size): at 144 px the median r holds but the 10th
# percentile is 0.945, and 152 px fits the 1.5 ms budget since the AU model became linear.
FARNEBACK_FAST = dict(pyr_scale=0.5, levels=2, winsize=11, iterations=1, poly_n=5, poly_sigma=1.2)
FAST_CROP = 152
# ...and tracks at half resolution (PipelineConfig.track_level): the same face placement as
# the full-resolution search on the benchmark's frames (`microexp bench` prints the count),
# for about half the alignment time.
FAST_TRACK_LEVEL = 1
# Methods whose 28x28 maps are the reference's (to float rounding).
REFERENCE_EQUIVALENT = ("farneback", "farneback-opencv")


def describe(method: str) -> str:
    if method in REFERENCE_EQUIVALENT:
        return ("calcOpticalFlowFarneback(pyr_scale=0.5, levels=3, winsize=15, iterations=3, "
                "poly_n=5, poly_sigma=1.2, flags=0)" + (" [cv2]" if method == "farneback-opencv" else " [native]"))
    if method == "farneback-fast":
        return "Farneback fast mode " + ", ".join(f"{k}={v}" for k, v in FARNEBACK_FAST.items()) + " [native]"
    if method == "tvl1":
        return "cv2.optflow.DualTVL1OpticalFlow (OpenCV defaults)"
    return f"cv2.DISOpticalFlow preset {method.split('-')[1]}"


def flow_token(method: str) -> str:
    """The token a model's metadata names its training flow with (model_spec.py): methods
    that make the same maps share one."""
    if method not in METHODS:
        raise ValueError(f"flow: method must be one of {METHODS}, got {method!r}")
    return "farneback" if method in REFERENCE_EQUIVALENT else method


class FlowEstimator:
    def __init__(self, method: str = "farneback"):
        if method not in METHODS:
            raise ValueError(f"FlowEstimator: method must be one of {METHODS}, got {method!r}")
        self.method = method
        self._engine = None
        self._native = None
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
        elif method == "farneback":
            self._native = kernels.FarnebackFlow(**{k: v for k, v in FARNEBACK.items() if k != "flags"})
        elif method == "farneback-fast":
            self._native = kernels.FarnebackFlow(**FARNEBACK_FAST)
        # Whether `out` is only written (DIS and TV-L1 would read a given `out` as their
        # initial flow, coupling frames), so a caller may pass one buffer for every frame.
        self.writes_out_only = self._native is not None or method == "farneback-opencv"

    def __call__(self, reference: np.ndarray, current: np.ndarray, out: np.ndarray = None) -> np.ndarray:
        if reference.shape != current.shape or reference.dtype != np.uint8 or reference.ndim != 2:
            raise ValueError(f"FlowEstimator: need two gray uint8 crops of one shape, got "
                             f"{reference.shape} {reference.dtype} and {current.shape} {current.dtype}")
        if self._native is not None:
            return self._native(reference, current, out)
        if self._engine is not None:
            return self._engine.calc(reference, current, out)
        return cv2.calcOpticalFlowFarneback(reference, current, out, **FARNEBACK)
