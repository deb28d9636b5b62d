"""A PNG timeline of a run, drawn with OpenCV (no plotting library needed on the device):
the strongest AU probabilities and the local motion score over time, spotted events shaded,
annotated ground truth (when given) as bars underneath."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .atomic_io import atomic_write_image

COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
           (75, 86, 140), (194, 119, 227), (127, 127, 127)]


class Timeline:
    """Collects per-frame values; `save(path)` draws them. Memory stays bounded however long
    the run (a camera left on for days): past `capacity` points, neighbouring pairs merge into
    one, keeping their maxima, so short peaks (a micro-expression is under half a second)
    survive on the drawing, which is narrower than `capacity` pixels anyway."""

    def __init__(self, au_names: Sequence[str], top: int = 5, capacity: int = 8192):
        if capacity < 4 or capacity % 2:
            raise ValueError(f"Timeline: capacity must be an even number >= 4, got {capacity}")
        self.au_names, self.top = list(au_names), top
        self.capacity = capacity
        self._t = np.empty(capacity, np.float64)
        self._au = np.empty((capacity, len(self.au_names)), np.float32)
        self._motion = np.empty(capacity, np.float32)
        self.n = 0  # points held
        self.stride = 1  # frames per point
        self._pending = 0  # frames merged into the newest point so far
        self.events: List[Tuple[float, float]] = []

    @property
    def t(self) -> np.ndarray:
        return self._t[:self.n]

    @property
    def au(self) -> np.ndarray:
        return self._au[:self.n]

    @property
    def motion(self) -> np.ndarray:
        return self._motion[:self.n]

    def add(self, result):
        au = [result.au.get(n, np.nan) for n in self.au_names]
        motion = result.motion.get("motion_local", np.nan)
        if result.event is not None:
            self.events.append((result.event.onset_time, result.event.offset_time))
        if self._pending:  # the newest point still takes frames: merge into it
            i = self.n - 1
            self._au[i] = np.fmax(self._au[i], au)
            self._motion[i] = np.fmax(self._motion[i], motion)
        else:
            if self.n == self.capacity:
                self._halve()
            i = self.n
            self._t[i], self._au[i], self._motion[i] = result.timestamp, au, motion
            self.n += 1
        self._pending = (self._pending + 1) % self.stride

    def _halve(self):
        """Merge neighbouring points pairwise (maxima, the first one's time)."""
        half = self.capacity // 2
        self._t[:half] = self._t[0::2]
        self._au[:half] = np.fmax(self._au[0::2], self._au[1::2])
        self._motion[:half] = np.fmax(self._motion[0::2], self._motion[1::2])
        self.n, self.stride = half, self.stride * 2

    def save(self, path, truth: Optional[Sequence[Tuple[float, float]]] = None, size=(1400, 560)) -> Path:
        w, h = size
        img = np.full((h, w, 3), 255, np.uint8)
        left, right, top, mid, bottom = 70, w - 230, 30, int(h * 0.62), h - 50
        t = np.asarray(self.t, np.float64)
        if len(t) < 2:
            raise ValueError("Timeline: need at least two frames to draw")
        t0, t1 = t[0], t[-1] if t[-1] > t[0] else t[0] + 1

        def x_of(v):
            return (left + (np.asarray(v) - t0) / (t1 - t0) * (right - left)).astype(np.int32)

        for a, b in self.events:  # spotted intervals, shaded over both panels
            cv2.rectangle(img, (int(x_of(a)), top), (int(x_of(b)), bottom), (210, 235, 210), -1)
        for a, b in truth or []:  # annotated intervals as a bar under the plots
            cv2.rectangle(img, (int(x_of(a)), bottom + 8), (int(x_of(b)), bottom + 16), (60, 60, 200), -1)
        for y0, y1 in ((top, mid - 20), (mid, bottom)):
            cv2.rectangle(img, (left, y0), (right, y1), (0, 0, 0), 1)
        au = np.asarray(self.au, np.float64)
        strongest = np.argsort(-np.nan_to_num(au, nan=0).max(axis=0))[: self.top] if au.size else []
        xs = x_of(t)
        for k, j in enumerate(strongest):
            ys = (mid - 20 - np.nan_to_num(au[:, j]) * (mid - 20 - top)).astype(np.int32)
            cv2.polylines(img, [np.stack([xs, ys], 1)], False, COLOURS[k % len(COLOURS)], 2, cv2.LINE_AA)
            cv2.putText(img, f"{self.au_names[j]}", (right + 15, top + 20 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX,
                        0.55, COLOURS[k % len(COLOURS)], 2, cv2.LINE_AA)
        m = np.nan_to_num(np.asarray(self.motion, np.float64))
        scale = max(m.max(), 1e-6)
        ys = (bottom - m / scale * (bottom - mid)).astype(np.int32)
        cv2.polylines(img, [np.stack([xs, ys], 1)], False, (40, 40, 40), 2, cv2.LINE_AA)
        text = [("AU probability (0..1)", (left, top - 10)), (f"local motion (max {scale:.2f} px)", (left, mid - 5)),
                (f"time (s), {t0:.2f} .. {t1:.2f}", (left, h - 12)),
                ("green: spotted events", (right + 15, mid + 20)), ("red bar: annotation", (right + 15, mid + 42))]
        for s, org in text:
            cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        try:
            return atomic_write_image(path, img)
        except OSError as err:
            raise OSError(f"Timeline: {err}") from None
