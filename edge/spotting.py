"""Micro-expression events from a per-frame score (motion, or a learned spotter's).

Motion: mean flow magnitude (px) over the aligned crop, per facial region (brows/eyes,
mouth), and the local motion score the detector uses (region_motion). The interval detector
keeps a running baseline (median and MAD of recent calm frames); an event opens when the score
rises above baseline + k * MAD (or above a fixed `threshold`, for a score that is already a
probability), its apex is the frame of peak score, and it closes when the score falls back
below the threshold. Events shorter than `min_ms` or longer than `max_ms` are dropped; the rest
are micro-expressions when they last at most `micro_max_ms` (500 ms, the MEGC definition), else
macro-expressions (`Event.kind`). Macro-expressions last up to about 4 s in the long-video sets
(CAS(ME)^2, SAMM Long Videos); `max_ms` at or below `micro_max_ms` reports micro-expressions only."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from microexp import kernels


@dataclass
class Event:
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_time: float
    apex_time: float
    offset_time: float
    peak_motion: float
    peak_au: Dict[str, float] = field(default_factory=dict)
    emotion: Optional[Dict[str, float]] = None
    face_id: int = 0  # whose face (set by the pipeline)
    kind: str = "micro"  # 'micro' (at most IntervalSpotter.micro_max_ms long) or 'macro'


NONRIGID_GRID = 8  # the action gate's partition: blocks of 28 px on a 224 px crop
# The scores region_motion returns, in column order.
MOTION_SCORES = ("motion", "motion_upper", "motion_lower", "motion_local", "motion_nonrigid")


def region_motion(flow: np.ndarray, grid: int = 4, step: int = 4) -> Dict[str, float]:
    """Mean flow magnitude over the whole crop, its upper half (brows, eyes) and lower third
    (mouth), and `motion_local`: the largest mean over a grid x grid partition of the flow
    with its median vector removed. Residual head motion that the alignment leaves moves every
    block alike and cancels there; a facial action moves a few blocks. `motion_nonrigid`: the
    largest block mean on a NONRIGID_GRID partition (fewer where the crop is too small for it)
    after the flow's best affine fit is removed (in-plane head motion), which the action gate
    reads. Computed on every `step`-th pixel (the flow is smooth) by the native kernel; NaN/inf
    vectors count as zero."""
    samples = min((flow.shape[0] + step - 1) // step, (flow.shape[1] + step - 1) // step)
    return kernels.region_motion(flow, grid=grid, step=step, nonfinite="zero",
                                 nonrigid_grid=max(grid, min(NONRIGID_GRID, samples)))


def _median(values: np.ndarray) -> float:
    """numpy.median's value (the mean of the two middle values when their count is even),
    by one partial sort and without its generic overhead."""
    n = len(values)
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(values, (lo, hi))
    return float(0.5 * (part[lo] + part[hi]))


class RunningBaseline:
    """Median and MAD (scaled to a normal sigma) of a score's recent calm values: a ring of the
    last `size` values that were calm when they came, i.e. at or below median + 2 MAD of the
    ring then (or any value while fewer than `min_count` are held), so that a slow rise cannot
    drag the baseline up. The ring's order does not matter to a median: nothing is converted to
    an array per frame."""

    def __init__(self, size: int = 200, min_count: int = 5):
        self._values = np.empty(max(1, int(size)), np.float64)
        self._count = self._next = 0
        self.min_count = int(min_count)

    def estimate(self) -> Optional[Tuple[float, float]]:
        """(median, MAD * 1.4826) of the calm values; None before `min_count` of them."""
        n = self._count
        if n < self.min_count:
            return None
        values = self._values[:n]
        med = _median(values)
        return med, _median(np.abs(values - med)) * 1.4826

    def add(self, value: float, estimate: Optional[Tuple[float, float]]) -> None:
        """Keep `value` if it is calm against `estimate` (this frame's, from estimate())."""
        if estimate is None or value <= estimate[0] + 2.0 * estimate[1]:
            self._values[self._next] = value
            self._next = (self._next + 1) % len(self._values)
            self._count = min(self._count + 1, len(self._values))

    def reset(self) -> None:
        self._count = self._next = 0


MICRO_MAX_MS = 500.0  # the micro/macro boundary (MEGC: a micro-expression lasts at most 500 ms)
MACRO_MAX_MS = 4000.0  # longer intervals are dropped (posture, speech, drift rather than an expression)


def interval_frames(ms: float, fps: float) -> int:
    """How many frames at `fps` an interval of `ms` spans (at least 1)."""
    return max(1, int(round(ms * fps / 1000)))


class IntervalSpotter:
    def __init__(self, fps: float, k: float = 6.0, min_ms: float = 40.0, max_ms: float = MACRO_MAX_MS,
                 baseline_frames: int = 200, floor: float = 0.05, threshold: Optional[float] = None,
                 micro_max_ms: float = MICRO_MAX_MS):
        if not 0 < min_ms:
            raise ValueError(f"IntervalSpotter: min_ms must be positive, got {min_ms}")
        self.fps, self.k, self.floor = fps, k, floor
        self.fixed = None if threshold is None else float(threshold)
        self.min_frames = interval_frames(min_ms, fps)
        self.micro_frames = interval_frames(micro_max_ms, fps)  # below min_frames: macro-expressions only
        self.max_frames = max(self.min_frames, interval_frames(max_ms, fps))
        self._calm = RunningBaseline(baseline_frames)
        self.open: Optional[dict] = None

    def baseline(self) -> Optional[Tuple[float, float]]:
        """Median and MAD (scaled to a normal sigma) of the calm frames; None before 5."""
        return self._calm.estimate()

    def threshold(self) -> float:
        if self.fixed is not None:
            return self.fixed
        base = self.baseline()
        return float("inf") if base is None else base[0] + max(self.k * base[1], self.floor)

    def calm_level(self) -> float:
        base = self.baseline()
        return float("inf") if base is None else base[0] + 2.0 * base[1]

    def update(self, frame: int, t: float, motion: float, au: Optional[Dict[str, float]] = None,
               emotion: Optional[Dict[str, float]] = None, action: bool = True) -> Optional[Event]:
        """Feed one frame; returns an Event when one closes at this frame. `action`: whether the
        action gate saw facial action on this frame; an interval with none is dropped (head
        drift or noise rose the score, the face did nothing)."""
        base = self.baseline()  # once per frame: threshold and calm level share it
        if self.fixed is not None:
            above = motion > self.fixed
        else:
            above = base is not None and motion > base[0] + max(self.k * base[1], self.floor)
        self._calm.add(motion, base)
        if self.open is None:
            if above:
                self.open = dict(onset=(frame, t), apex=(frame, t), peak=motion, au=dict(au or {}),
                                 emotion=emotion, last=frame, action=action)
            return None
        ev = self.open
        if above:
            ev["last"] = frame
            ev["action"] = ev["action"] or action
            if motion > ev["peak"]:
                ev.update(apex=(frame, t), peak=motion, emotion=emotion)
            for k, v in (au or {}).items():
                ev["au"][k] = max(ev["au"].get(k, 0.0), v)
            return None
        self.open = None
        length = ev["last"] - ev["onset"][0] + 1
        if not self.min_frames <= length <= self.max_frames or not ev["action"]:
            return None
        end_t = ev["onset"][1] + (ev["last"] - ev["onset"][0]) / self.fps
        return Event(ev["onset"][0], ev["apex"][0], ev["last"], ev["onset"][1], ev["apex"][1], end_t,
                     ev["peak"], ev["au"], ev["emotion"], kind="micro" if length <= self.micro_frames else "macro")
