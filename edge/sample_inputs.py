"""Encoded maps as the runtime makes them, from smooth synthetic flow fields: what parity checks,
INT8 quantisation and TensorRT calibration feed a model, so that they see input that looks like
the real thing rather than uniform noise."""
from __future__ import annotations

import cv2
import numpy as np

from microexp import kernels

from .model_spec import ENCODINGS


def realistic_inputs(encoding: str, n: int, seed: int = 0) -> np.ndarray:
    """n samples of what a model whose input_encoding is `encoding` is fed, float32: encoder values
    0..255 (n, 3, 28, 28) of a smoothed random flow with one raised blob of vertical motion; for
    'region-flow' the twelve regions' features of such a flow on a 224 px crop (n, 12, 4); for
    'gray-volume' stacks of a smooth grey pattern drifting by a pixel or two (n, 1, 18, 64, 64)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"realistic_inputs: encoding must be one of {ENCODINGS}, got {encoding!r}")
    rng = np.random.default_rng(seed)
    if encoding == "gray-volume":
        return _grey_stacks(n, rng)
    size = 224 if encoding == "region-flow" else 112
    out = np.empty((n, 12, 4) if encoding == "region-flow" else (n, 3, 28, 28), np.float32)
    yy, xx = np.mgrid[0:size, 0:size] * (112.0 / size)
    boxes = None
    if encoding == "region-flow":
        from .face_regions import TYPICAL_LANDMARKS, crop_regions
        boxes = crop_regions(TYPICAL_LANDMARKS * size, size)
    for i in range(n):
        flow = cv2.GaussianBlur(rng.normal(0, 2, (size, size, 2)).astype(np.float32), (0, 0), 6 * size / 112)
        flow[..., 1] += rng.uniform(0.5, 2) * np.exp(-((yy - rng.uniform(20, 90)) ** 2 + (xx - 56) ** 2) / 300)
        if encoding == "hsv28":
            out[i] = kernels.encode_hsv28(np.ascontiguousarray(flow)).transpose(2, 0, 1)
        elif encoding == "region-flow":
            kernels.region_flow(np.ascontiguousarray(flow), boxes, out=out[i])
        else:
            kernels.encode_uvs28(np.ascontiguousarray(flow), out=out[i], scale=255.0)
    return out


def _grey_stacks(n: int, rng, frames: int = 18, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, 1, frames, size, size), np.float32)
    for i in range(n):
        fx, fy, drift = rng.uniform(4, 10), rng.uniform(6, 12), rng.uniform(0.5, 2.0)
        for t in range(frames):
            shift = drift * np.sin(np.pi * t / (frames - 1))  # out and back, like an expression
            out[i, 0, t] = 128 + 60 * np.sin((xx + shift) / fx) * np.cos((yy - shift) / fy)
    return out
