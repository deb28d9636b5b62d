"""Training sequences for the streaming CNN-LSTM, built from the real composite flow maps.

Raw micro-expression videos are licensed and absent, so each real onset->apex map is turned
into a clip: its u and v channels, centred on their median (the still background), serve as
the shape of the flow field; a temporal profile scales it from 0 at onset to 1 at apex and
back to 0 at offset (raised cosine), real-looking noise (smooth spatial noise plus sensor
noise) is added at every frame, and each frame is encoded by the runtime's own kernel
(encode_uvs28, scale 255) so the CNN-LSTM sees exactly the encoding the runtime feeds it.

Per-frame targets: 0 = no expression (profile below `active`), 1 + emotion class inside the
event. This is the label layout of the learned spotter (background, negative, positive,
surprise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from microexp import kernels


@dataclass
class SequenceSpec:
    length: int = 24  # frames per training window
    event_min: int = 8  # event length range in frames (onset..offset)
    event_max: int = 18
    noise: float = 0.08  # noise amplitude relative to the map's motion range
    active: float = 0.3  # profile level above which a frame counts as inside the event


def flow_shape(map_uvs: np.ndarray) -> np.ndarray:
    """(28, 28, 2) flow-like field from a (3, 28, 28) u/v/strain map (values 0..255)."""
    uv = map_uvs[:2].astype(np.float32) / 255.0
    uv -= np.median(uv.reshape(2, -1), axis=1)[:, None, None]
    return np.ascontiguousarray(uv.transpose(1, 2, 0))


def profile(length: int, onset: int, offset: int) -> np.ndarray:
    """0 outside [onset, offset], a raised cosine with its peak (apex) in the middle."""
    t = np.arange(length, dtype=np.float32)
    p = np.zeros(length, np.float32)
    inside = (t >= onset) & (t <= offset)
    span = max(offset - onset, 1)
    p[inside] = 0.5 - 0.5 * np.cos(2 * np.pi * (t[inside] - onset) / span)
    return p


def make_sequence(map_uvs: np.ndarray, label: int, spec: SequenceSpec,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(frames (T, 3, 28, 28) float32 0..255, targets (T,) int64)."""
    shape = flow_shape(map_uvs)
    amplitude = float(np.abs(shape).max()) or 1.0
    n = int(rng.integers(spec.event_min, spec.event_max + 1))
    onset = int(rng.integers(0, max(1, spec.length - n)))
    offset = min(spec.length - 1, onset + n - 1)
    p = profile(spec.length, onset, offset)
    frames = np.empty((spec.length, 3, 28, 28), np.float32)
    for t in range(spec.length):
        smooth = cv2.GaussianBlur(rng.normal(0, 1, (28, 28, 2)).astype(np.float32), (0, 0), 3.0)
        sensor = rng.normal(0, 0.3, (28, 28, 2)).astype(np.float32)
        flow = p[t] * shape + spec.noise * amplitude * (smooth * 3 + sensor)
        kernels.encode_uvs28(np.ascontiguousarray(flow), out=frames[t], scale=255.0)
    targets = np.where(p >= spec.active, 1 + label, 0).astype(np.int64)
    return frames, targets


def make_sequences(maps: np.ndarray, labels: np.ndarray, spec: SequenceSpec, copies: int,
                   seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seqs, targets = [], []
    for _ in range(copies):
        for m, y in zip(maps, labels):
            s, t = make_sequence(m, int(y), spec, rng)
            seqs.append(s)
            targets.append(t)
    return np.stack(seqs), np.stack(targets)
