"""Fitting the action gate (microexp.edge.action) on calibration clips: generated clips with
planted events (training/synth.py), and still faces (generated clips without events). Every
frame runs through the runtime's Pipeline; the gate's features are replayed from each clip's
per-frame motion with the runtime's own ActionGate code, so what is fitted is what runs.

Labels per frame: action where a planted event's profile is at least `positive_from` of its
apex; no action on frames outside every event and blink (a still clip: every frame); frames in
between (an event's first and last moments, blinks) are left out of the fit.

The decision threshold follows a rule fixed before the data was seen: the lowest grid value at
which at most `still_rate` of the still-clip frames are at or above it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from microexp.edge.action import GATE_KIND, ActionGate, GateParams

from .synth import profile

BLINK_S = 0.15  # a planted blink's span, with margin (synth: about 120 ms)


@dataclass
class ClipMotion:
    name: str  # SUBJECT/CLIP
    still: bool  # a clip with no planted event
    motion: np.ndarray  # (T,) motion_nonrigid in px of the crop, NaN where the face was not tracked
    first: np.ndarray  # (T,) bool: the frame a track started (its flow is zero by construction)
    strength: np.ndarray  # (T,) planted profile (0..1, the largest of the clip's events)
    blink: np.ndarray  # (T,) bool
    crop: int
    fps: float
    face: np.ndarray  # (T,) face box width in frame px (NaN where not tracked)


def set_fps(root: Path, default: float = 200.0) -> float:
    """The frame rate a generated set was made at (its set.json), else `default`."""
    info = Path(root) / "set.json"
    return float(json.loads(info.read_text())["fps"]) if info.is_file() else float(default)


def read_clips(root: Path) -> Dict[tuple, dict]:
    """(subject, clip) -> {'events': [(onset, apex, offset, AU numbers)], 'blinks': [start]}
    (0-based frames) for every SUBJECT/CLIP folder of a generated set: events from samm.csv,
    blinks from set.json (older sets: from the sheet's notes, so only clips with events)."""
    import csv

    from .datasets.au_codes import parse_action_units
    out: Dict[tuple, dict] = {(p.parent.name, p.name): {"events": [], "blinks": []}
                              for p in sorted(root.glob("*/*")) if p.is_dir()}
    if not (root / "samm.csv").is_file():
        raise FileNotFoundError(f"{root}: no samm.csv; expected a set written by `microexp synth`")
    with open(root / "samm.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            entry = out.setdefault((row["Subject"], row["Filename"]), {"events": [], "blinks": []})
            entry["events"].append((int(row["Onset Frame"]) - 1, int(row["Apex Frame"]) - 1,
                                    int(row["Offset Frame"]) - 1, parse_action_units(row["Action Units"]).present))
            notes = json.loads(row.get("Notes") or "{}")
            entry["blinks"] = [b - 1 for b in notes.get("blinks", [])]
    if (root / "set.json").is_file():
        for name, starts in json.loads((root / "set.json").read_text())["blinks"].items():
            subject, clip = name.split("/")
            out.setdefault((subject, clip), {"events": [], "blinks": []})["blinks"] = [b - 1 for b in starts]
    return out


def planted(info: dict, n: int, fps: float):
    """(strength (n,), blink (n,) bool) of a clip from read_clips: the largest planted profile
    per frame (0..1), and the frames a blink covers."""
    strength = np.zeros(n)
    for onset, apex, offset, _ in info["events"]:
        strength = np.maximum(strength, profile(n, onset, apex, offset))
    blink = np.zeros(n, bool)
    for b in info["blinks"]:
        blink[max(0, b - 1):b + int(BLINK_S * fps) + 1] = True
    return strength, blink


def collect(root, fps: Optional[float] = None, **config) -> List[ClipMotion]:
    """Every clip of a generated set through the Pipeline (the gate off, the models off: only the
    motion is read), at `fps` or the set's own. `config`: PipelineConfig fields (flow, crop_size, ...)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    root = Path(root)
    fps = fps or set_fps(root)
    sheet = read_clips(root)
    out = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        key = (folder.parent.name, folder.name)
        info = sheet.get(key, {"events": [], "blinks": []})
        settings = PipelineConfig(au_model=None, emotion_model=None, action_gate=None, fps=fps, **config)
        with Pipeline(settings) as pipe:
            results = list(pipe.stream(folder, fps=fps))
        n = len(results)
        motion = np.array([r.motion.get("motion_nonrigid", np.nan) if r.success else np.nan for r in results])
        first = np.array([r.success and "align" not in r.latency_ms for r in results])
        face = np.array([r.box[2] - r.box[0] if r.success else np.nan for r in results], np.float64)
        strength, blink = planted(info, n, fps)
        out.append(ClipMotion("/".join(key), not info["events"], motion, first, strength, blink,
                              settings.crop_size, fps, face))
    return out


def replay(clips: Sequence[ClipMotion], params: GateParams):
    """(features (N, 2), clip index (N,), frame index (N,)) of every tracked frame after the
    first of its track, computed by the runtime's ActionGate."""
    feats, where, frames = [], [], []
    for i, c in enumerate(clips):
        gate = ActionGate(params, c.crop, c.fps)
        for t, m in enumerate(c.motion):
            if c.first[t] or not np.isfinite(m):
                if c.first[t]:
                    gate.reset()
                continue
            feats.append(gate.features(m, c.face[t]))
            where.append(i)
            frames.append(t)
    return np.asarray(feats, np.float64), np.asarray(where), np.asarray(frames)


def labels(clips: Sequence[ClipMotion], where: np.ndarray, frames: np.ndarray,
           positive_from: float = 0.5) -> np.ndarray:
    """1 action, 0 none, -1 left out (see the module docstring)."""
    y = np.full(len(where), -1, np.int64)
    for k, (i, t) in enumerate(zip(where, frames)):
        c = clips[i]
        if c.strength[t] >= positive_from:
            y[k] = 1
        elif c.strength[t] == 0 and not c.blink[t]:
            y[k] = 0
    return y


def calm_prior(clips: Sequence[ClipMotion], skip: int = 10):
    """(median, interquartile range / 1.349) of calm motion (frame px; the spread as ActionGate's
    RollingWindow measures it) over the
    clips' frames outside events and blinks after their first `skip` frames: the noise floor a
    new track assumes until it has its own."""
    values = []
    for c in clips:
        calm = (c.strength == 0) & ~c.blink & np.isfinite(c.motion) & ~c.first
        calm[:skip] = False
        values.append(c.motion[calm] * c.face[calm] / c.crop)
    v = np.concatenate(values)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float((q3 - q1) / 1.349)


def logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 50):
    """(weights, bias) of a class-balanced L2 logistic regression by Newton's method."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.where(y == 1, 0.5 / max((y == 1).sum(), 1), 0.5 / max((y == 0).sum(), 1)) * len(y)
    theta = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], ridge)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(a @ theta, -50, 50)))
        grad = a.T @ (w * (p - y)) + penalty * theta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:-1], float(theta[-1])


THRESHOLD_GRID = np.round(np.arange(0.05, 0.995, 0.01), 2)  # 0.05 .. 0.99


def choose_threshold(p_still: np.ndarray, still_rate: float, grid=None) -> float:
    """The lowest grid value at which at most `still_rate` of still-clip frames reach it."""
    grid = THRESHOLD_GRID if grid is None else grid
    for t in grid:
        if np.mean(p_still >= t) <= still_rate:
            return float(t)
    return float(grid[-1])


def fit_gate(clips: Sequence[ClipMotion], still_rate: float = 0.005, positive_from: float = 0.5,
             spread_floor: float = 0.02) -> Dict[str, object]:
    """Parameters and calibration figures of the gate fitted on `clips` (see the module docstring)."""
    prior = calm_prior(clips)
    start = GateParams(weights=(0.0, 0.0), bias=0.0, threshold=0.5, prior=prior,
                       spread_floor=max(spread_floor, 0.25 * prior[1]))
    x, where, frames = replay(clips, start)
    y = labels(clips, where, frames, positive_from)
    used = y >= 0
    weights, bias = logistic(x[used], y[used])
    scores = 1 / (1 + np.exp(-(x @ weights + bias)))
    still = np.array([clips[i].still for i in where])
    threshold = choose_threshold(scores[still], still_rate)
    params = GateParams(weights=tuple(weights), bias=bias, threshold=threshold, prior=prior,
                        spread_floor=start.spread_floor)
    events = used & (y == 1)
    apex = np.array([clips[i].strength[t] >= 0.999 for i, t in zip(where, frames)])
    calm_generated = used & (y == 0) & ~still
    return {"parameters": params.to_dict(),
            "calibration": {
                "clips": len(clips), "still_clips": int(sum(c.still for c in clips)),
                "frames": {"action": int(events.sum()), "none": int((used & (y == 0)).sum()),
                           "left_out": int((~used).sum())},
                "still_rate_rule": still_rate,
                "still_frames_at_or_above": float(np.mean(scores[still] >= threshold)) if still.any() else None,
                "calm_generated_frames_at_or_above": float(np.mean(scores[calm_generated] >= threshold))
                if calm_generated.any() else None,
                "action_frames_at_or_above": float(np.mean(scores[events] >= threshold)) if events.any() else None,
                "apex_frames_at_or_above": float(np.mean(scores[apex] >= threshold)) if apex.any() else None}}


def write_gate(path, fitted: Dict[str, object], provenance: Dict[str, object]) -> Path:
    from microexp.edge.atomic_io import atomic_write_json
    return atomic_write_json(path, {"kind": GATE_KIND, "version": 1, **fitted, "provenance": provenance})


def fit_gate_from_sets(sets: Sequence[str], out, fps: Optional[float], command: str, still_rate: float = 0.005,
                       **config) -> Dict[str, object]:
    """Collect every clip of the generated sets (`microexp synth`; still clips are those with no
    planted event), fit the gate, write it to `out` with its provenance; returns what was written."""
    clips: List[ClipMotion] = []
    for root in sets:
        clips += collect(root, fps, **config)
    if not any(c.still for c in clips) or all(c.still for c in clips):
        raise ValueError("fit-gate needs clips with planted events and still clips (a set made with --events 0)")
    fitted = fit_gate(clips, still_rate=still_rate)
    provenance = {"sets": [str(s) for s in sets], "fps": fps or "each set's own", "config": config, "command": command,
                  "labels": "action: planted profile >= 0.5 of its apex; none: still clips, and frames of "
                            "generated clips outside events and blinks",
                  "threshold_rule": f"the lowest 0.01-step value reached by at most {still_rate:.1%} of still-clip frames"}
    write_gate(out, fitted, provenance)
    return {"out": str(out), **fitted}
