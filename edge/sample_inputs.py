"""Encoded maps as the runtime makes them, from smooth synthetic flow fields: what parity checks,
INT8 quantisation and TensorRT calibration feed a model, so that they see input that looks like
the real thing rather than uniform noise."""
from __future__ import annotations

import cv2
import numpy as np

from microexp import kernels

from .model_spec import ENCODINGS


def realistic_inputs(encoding: str, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3, 28, 28) float32 encoder values 0..255 for a model whose input_encoding is
    `encoding`: per sample a smoothed random flow with one raised blob of vertical motion."""
    if encoding not in ENCODINGS:
        raise ValueError(f"realistic_inputs: encoding must be one of {ENCODINGS}, got {encoding!r}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, 28, 28), np.float32)
    yy, xx = np.mgrid[0:112, 0:112]
    for i in range(n):
        flow = cv2.GaussianBlur(rng.normal(0, 2, (112, 112, 2)).astype(np.float32), (0, 0), 6)
        flow[..., 1] += rng.uniform(0.5, 2) * np.exp(-((yy - rng.uniform(20, 90)) ** 2 + (xx - 56) ** 2) / 300)
        if encoding == "hsv28":
            out[i] = kernels.encode_hsv28(np.ascontiguousarray(flow)).transpose(2, 0, 1)
        else:
            kernels.encode_uvs28(np.ascontiguousarray(flow), out=out[i], scale=255.0)
    return out
