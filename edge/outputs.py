"""Per-frame rows (CSV or JSONL) and events (JSONL), each row written whole and flushed, so
an error or Ctrl-C leaves only complete rows behind.

Columns follow OpenFace / py-feat habits: frame, timestamp, face_id, confidence, success,
face_x, face_y, face_w, face_h, AUxx probabilities (0..1), emotion probabilities, the learned
spotter's class probabilities (spot_*, when one runs), motion scores, the event flag,
per-stage latency in ms (lat_*)."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Sequence

from .pipeline import FrameResult

STAGES = ("detect", "align", "flow", "motion", "encode", "au_model", "emotion_model", "spotter_model", "total")
MOTION = ("motion", "motion_upper", "motion_lower", "motion_local")


def columns(au_names: List[str], emotion_names: List[str], openface: bool = False,
            spotting_names: Sequence[str] = ()) -> List[str]:
    presence = [f"{n}_c" for n in au_names] if openface else []
    return (["frame", "timestamp", "face_id", "confidence", "success", "face_x", "face_y", "face_w", "face_h"]
            + list(au_names) + presence + [f"emotion_{e}" for e in emotion_names]
            + [f"spot_{s}" for s in spotting_names] + list(MOTION)
            + ["event"] + [f"lat_{s}" for s in STAGES])


def row(result: FrameResult, au_names: List[str], emotion_names: List[str],
        thresholds: Optional[Sequence[float]] = None, spotting_names: Sequence[str] = ()) -> dict:
    box = result.box
    r = {"frame": result.frame, "timestamp": round(result.timestamp, 6), "face_id": 0,
         "confidence": round(result.confidence, 5), "success": int(result.success),
         "face_x": box[0] if box else "", "face_y": box[1] if box else "",
         "face_w": box[2] - box[0] if box else "", "face_h": box[3] - box[1] if box else ""}
    for n in au_names:
        r[n] = round(result.au[n], 5) if n in result.au else ""
    if thresholds is not None:  # OpenFace-style presence, at the model's own thresholds
        for n, t in zip(au_names, thresholds):
            r[f"{n}_c"] = int(result.au[n] >= t) if n in result.au else ""
    for n in emotion_names:
        r[f"emotion_{n}"] = round(result.emotion[n], 5) if n in result.emotion else ""
    for n in spotting_names:
        r[f"spot_{n}"] = round(result.spotting[n], 5) if n in result.spotting else ""
    for m in MOTION:
        r[m] = round(result.motion[m], 5) if m in result.motion else ""
    r["event"] = int(result.event is not None)
    for s in STAGES:
        r[f"lat_{s}"] = round(result.latency_ms[s], 4) if s in result.latency_ms else ""
    return r


class FrameWriter:
    """`thresholds` (the AU model's, in label order) add OpenFace-style `AUxx_c` presence
    columns, so OpenFace / py-feat tooling can read the file."""

    def __init__(self, path, au_names: List[str], emotion_names: List[str], fmt: Optional[str] = None,
                 thresholds: Optional[Sequence[float]] = None, spotting_names: Sequence[str] = ()):
        self.path = Path(path)
        self.fmt = fmt or ("jsonl" if self.path.suffix == ".jsonl" else "csv")
        if self.fmt not in ("csv", "jsonl"):
            raise ValueError(f"FrameWriter: format must be 'csv' or 'jsonl', got {self.fmt!r}")
        self.au_names, self.emotion_names = list(au_names), list(emotion_names)
        self.thresholds = None if thresholds is None else [float(t) for t in thresholds]
        self.spotting_names = list(spotting_names)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")
        if self.fmt == "csv":
            self.writer = csv.DictWriter(self.file, fieldnames=columns(self.au_names, self.emotion_names,
                                                                       self.thresholds is not None,
                                                                       self.spotting_names))
            self.writer.writeheader()
            self.file.flush()

    def write(self, result: FrameResult):
        r = row(result, self.au_names, self.emotion_names, self.thresholds, self.spotting_names)
        if self.fmt == "csv":
            self.writer.writerow(r)
        else:
            self.file.write(json.dumps(r) + "\n")
        self.file.flush()

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EventWriter:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w")
        self.count = 0

    def write(self, event):
        self.file.write(json.dumps(dataclasses.asdict(event)) + "\n")
        self.file.flush()
        self.count += 1

    def close(self):
        self.file.close()
