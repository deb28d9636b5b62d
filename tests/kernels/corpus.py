"""Synthetic test corpus for the kernels: images and flow fields of the kinds that break
numerical code (random texture, smooth gradients, flat regions, borders, odd and tiny sizes,
large and sub-pixel motion, zero motion). Generated from seeds; nothing is stored on disk."""
from __future__ import annotations

import platform

import cv2
import numpy as np

# OpenCV's arm64 wheels resize through NVIDIA's carotene HAL, whose rounding differs from
# OpenCV's own code, which our kernels reproduce on every CPU (ARM included: .ci/aarch64 checks
# our outputs there against this machine's): INTER_LINEAR by up to 3 grey levels, INTER_AREA by
# 1. Tests against cv2.resize allow that much on ARM; elsewhere ours match as stated.
ON_ARM = platform.machine().lower() in ("aarch64", "arm64")
CV2_RESIZE_SLACK = {"linear": 3 if ON_ARM else 1, "area": 1 if ON_ARM else 0}


def texture(rng, rows, cols, channels, kind):
    shape = (rows, cols, channels) if channels > 1 else (rows, cols)
    if kind == "random":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "smooth":
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(2, 6))).reshape(shape)
    if kind == "face_like":  # low-frequency shading plus fine detail, like a face crop
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        base = 120 + 60 * np.sin(xx / (cols / 3.0)) * np.cos(yy / (rows / 4.0))
        detail = cv2.GaussianBlur(rng.normal(0, 25, (rows, cols)).astype(np.float32), (0, 0), 1.5)
        img = np.clip(base + detail, 0, 255).astype(np.uint8)
        bgr = np.dstack([img, np.clip(img * 0.9 + 10, 0, 255), np.clip(img * 0.8 + 20, 0, 255)])
        return np.ascontiguousarray(bgr.astype(np.uint8)[..., :channels].reshape(shape))
    if kind == "flat_patch":  # textured image with a flat rectangle
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        img[rows // 4 : rows // 2, cols // 4 : cols // 2] = 77
        return img
    raise ValueError(kind)


IMAGE_KINDS = ("random", "smooth", "face_like", "flat_patch")


def template_cases(seed=0, count=48):
    """(image, template) pairs: crops with noise, at borders, and tiny or odd sizes."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        kind = IMAGE_KINDS[i % len(IMAGE_KINDS)]
        channels = (1, 3)[i % 2]
        rows, cols = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        img = texture(rng, rows, cols, channels, kind)
        h = int(rng.integers(3, rows - 8)) if i % 5 else int(rng.integers(3, 9))
        w = int(rng.integers(3, cols - 8)) if i % 5 else int(rng.integers(3, 9))
        if i % 7 == 0:  # at the border
            y, x = rows - h, 0
        else:
            y, x = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
        tpl = img[y : y + h, x : x + w].astype(np.int16)
        tpl = np.clip(tpl + rng.integers(-4, 5, tpl.shape), 0, 255).astype(np.uint8)
        cases.append((img, tpl))
    return cases


def flow_field(rng, rows, cols, kind):
    if kind == "zero":
        return np.zeros((rows, cols, 2), np.float32)
    if kind == "translation":
        f = np.empty((rows, cols, 2), np.float32)
        f[..., 0], f[..., 1] = rng.normal(size=2)
        return f
    if kind == "subpixel":
        f = rng.normal(0, 0.05, (rows, cols, 2)).astype(np.float32)
    elif kind == "large":
        f = rng.normal(0, 40.0, (rows, cols, 2)).astype(np.float32)
    elif kind == "smooth":
        f = cv2.GaussianBlur(rng.normal(0, 3.0, (rows, cols, 2)).astype(np.float32), (0, 0), 4)
    elif kind == "axis":  # exact multiples of 45 degrees and pure horizontal/vertical vectors
        choices = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1], [0, 0]], np.float32)
        f = choices[rng.integers(0, len(choices), (rows, cols))] * np.float32(rng.uniform(0.5, 3))
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(f, dtype=np.float32)


FLOW_KINDS = ("smooth", "subpixel", "large", "axis", "zero", "translation")
FLOW_SIZES = ((28, 28), (29, 31), (56, 56), (57, 100), (112, 112), (144, 144), (224, 224), (225, 233), (64, 37))


def flow_cases(seed=0):
    rng = np.random.default_rng(seed)
    return [
        (kind, size, flow_field(rng, size[0], size[1], kind))
        for kind in FLOW_KINDS
        for size in FLOW_SIZES
    ]


