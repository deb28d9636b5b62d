"""Is the face doing anything? A per-frame probability of facial action, from what the models'
28x28 maps throw away: the absolute flow, in pixels of a 224 px face crop, against the tracked
face's own noise floor.

The maps the AU and emotion models read are min-max normalised per frame (the encoding they
were trained on), so a still face's sensor noise reaches them at full scale and reads as a
strong expression. The gate reads `motion_nonrigid` (the largest mean, over 8 x 8 blocks, of the
flow with its best affine fit removed, so in-plane head motion leaves it: spotting.region_motion) and compares it with the median
and MAD of this face's own last second, the way OpenFace measures a person against their own
neutral (median and interquartile spread, kept sorted as frames come and go): residual head
motion against the fixed reference drifts slowly and moves the baseline with it; a
micro-expression (under half a second) stands out. Until a track has a
tenth of a second of its own, a prior noise floor stands in. Motion is measured in pixels of the
camera frame (the crop's pixels times face width / crop size): sensor noise lives there, so a
small face, enlarged to the crop, is not mistaken for a moving one. A logistic function of
log(motion) and the robust z-score gives P(action); its weights, the prior and the decision
threshold are fitted on calibration data (training/action_fit.py) and shipped as JSON
(`models/action_gate.json`), with the data and command that chose them.

Per frame: one sorted insertion and removal, and a few float operations."""
from __future__ import annotations

import bisect
import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

GATE_KIND = "microexp-action-gate"


@dataclass(frozen=True)
class GateParams:
    weights: Tuple[float, float]  # on (log(motion + log_offset), z)
    bias: float
    threshold: float  # P(action) at or above which a frame has facial action
    prior: Tuple[float, float]  # (median, spread) of motion, frame px, before a track has its own
    spread_floor: float  # frame px: the z-score's smallest denominator
    log_offset: float = 0.05  # frame px
    z_clip: float = 50.0
    window_s: float = 1.0  # the face's own baseline: its last this many seconds
    min_s: float = 0.1  # before this much of its own history, the prior stands in

    def __post_init__(self):
        def bad(what):
            raise ValueError(f"action gate: {what}")
        values = (*self.weights, self.bias, self.threshold, *self.prior, self.spread_floor, self.log_offset, self.z_clip)
        if len(self.weights) != 2 or len(self.prior) != 2 or not all(math.isfinite(float(v)) for v in values):
            bad(f"weights and prior must be two finite numbers each, got {self.weights!r} and {self.prior!r}")
        if not 0.0 < self.threshold < 1.0:
            bad(f"threshold must be within (0, 1), got {self.threshold!r}")
        if self.spread_floor <= 0 or self.log_offset <= 0 or self.prior[1] <= 0 or self.z_clip <= 0:
            bad("spread_floor, log_offset, the prior's spread and z_clip must be positive")
        if not 0 < self.min_s <= self.window_s:
            bad(f"0 < min_s <= window_s must hold, got {self.min_s}, {self.window_s}")

    @classmethod
    def from_file(cls, path) -> "GateParams":
        """The parameters in a gate JSON file; a missing, foreign or malformed file is an error
        naming it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"action gate {path} does not exist")
        try:
            doc = json.loads(path.read_text())
            if doc.get("kind") != GATE_KIND:
                raise ValueError(f"not a {GATE_KIND} file (kind {doc.get('kind')!r})")
            p = doc["parameters"]
            return cls(weights=tuple(map(float, p["weights"])), bias=float(p["bias"]),
                       threshold=float(p["threshold"]), prior=tuple(map(float, p["prior"])),
                       spread_floor=float(p["spread_floor"]), log_offset=float(p["log_offset"]),
                       z_clip=float(p["z_clip"]), window_s=float(p["window_s"]), min_s=float(p["min_s"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"action gate {path}: {err}") from None

    def to_dict(self) -> dict:
        return {"weights": list(self.weights), "bias": self.bias, "threshold": self.threshold,
                "prior": list(self.prior), "spread_floor": self.spread_floor, "log_offset": self.log_offset,
                "z_clip": self.z_clip, "window_s": self.window_s, "min_s": self.min_s}


class RollingWindow:
    """The median and spread of the last `size` values, kept sorted as they come and go (one
    insertion and one removal per value, a few microseconds), so nothing is sorted per frame.
    Spread: the interquartile range / 1.349, a normal sigma, as robust as the median."""

    def __init__(self, size: int, min_count: int):
        self.size, self.min_count = int(size), int(min_count)
        self._order: deque = deque()
        self._sorted: list = []

    def estimate(self) -> Optional[Tuple[float, float]]:
        n = len(self._sorted)
        if n < self.min_count:
            return None
        s = self._sorted
        median = 0.5 * (s[(n - 1) // 2] + s[n // 2])
        return median, (s[(3 * (n - 1)) // 4] - s[(n - 1) // 4]) / 1.349

    def add(self, value: float) -> None:
        if len(self._order) == self.size:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._order.append(value)
        bisect.insort(self._sorted, value)

    def reset(self) -> None:
        self._order.clear()
        self._sorted.clear()


class ActionGate:
    """P(action) for each tracked frame of one face at `fps`; `reset()` when its reference changes."""

    def __init__(self, params: GateParams, crop_size: int, fps: float):
        self.params = params
        self._crop = float(crop_size)
        self._baseline = RollingWindow(max(5, round(params.window_s * fps)), max(3, round(params.min_s * fps)))

    def reset(self) -> None:
        self._baseline.reset()

    def features(self, motion_nonrigid: float, face_width: float) -> Tuple[float, float]:
        """(log motion, z) of this frame (`motion_nonrigid` in crop px, the face box `face_width`
        in frame px), then the frame joins the face's baseline. Call once per tracked frame, in
        order: the baseline is the track's history."""
        p = self.params
        m = max(0.0, float(motion_nonrigid)) * float(face_width) / self._crop
        if not math.isfinite(m):
            m = 0.0  # a flow that is not finite carries no evidence of action
        estimate = self._baseline.estimate()
        median, spread = estimate if estimate is not None else p.prior
        z = (m - median) / max(spread, p.spread_floor)
        self._baseline.add(m)
        return math.log(m + p.log_offset), max(-p.z_clip, min(p.z_clip, z))

    def probability(self, features: Tuple[float, float]) -> float:
        p = self.params
        a = p.bias + p.weights[0] * features[0] + p.weights[1] * features[1]
        return 1.0 / (1.0 + math.exp(-a)) if a > -700 else 0.0

    def __call__(self, motion_nonrigid: float, face_width: float) -> float:
        return self.probability(self.features(motion_nonrigid, face_width))

    def present(self, probability: Optional[float]) -> bool:
        return probability is not None and probability >= self.params.threshold
