"""Per-frame rows (CSV or JSONL) and events (JSONL), each row written whole and flushed, so
an error or Ctrl-C leaves only complete rows behind.

Columns follow OpenFace / py-feat habits: frame, timestamp, face_id, confidence, success,
face_x, face_y, face_w, face_h, `action` (P(facial action), with the action gate), `AUxx`
probabilities (0..1) of the reported AUs, `AUxx_c` presence decisions (0/1), emotion
probabilities (with the gate, `emotion_none` = no facial action), the learned spotter's class
probabilities (spot_*, when one runs), motion scores, the event flag, per-stage latency in ms
(lat_*). A value that does not exist for a row (no face) is empty in CSV and null in JSONL."""
from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from .pipeline import FrameResult

STAGES = ("detect", "align", "flow", "motion", "action", "encode", "au_model", "emotion_model", "spotter_model",
          "total")
MOTION = ("motion", "motion_upper", "motion_lower", "motion_local", "motion_nonrigid")


@dataclass(frozen=True)
class Columns:
    """What a run writes per frame; `of(pipe)` reads it off a Pipeline."""
    au: Sequence[str] = ()
    emotion: Sequence[str] = ()
    spotting: Sequence[str] = ()
    action: bool = False

    @classmethod
    def of(cls, pipe) -> "Columns":
        return cls(tuple(pipe.au_names), tuple(pipe.emotion_names),
                   tuple(pipe.spotter_model.labels) if pipe.spotter_model else (), pipe.gate is not None)

    def names(self) -> List[str]:
        return (["frame", "timestamp", "face_id", "confidence", "success", "face_x", "face_y", "face_w", "face_h"]
                + (["action"] if self.action else []) + list(self.au) + [f"{n}_c" for n in self.au]
                + [f"emotion_{e}" for e in self.emotion] + [f"spot_{s}" for s in self.spotting] + list(MOTION)
                + ["event"] + [f"lat_{s}" for s in STAGES])


def row(result: FrameResult, columns: Columns, missing=None) -> dict:
    """One row; `missing` stands for values a frame does not have (no face)."""
    box = result.box
    r = {"frame": result.frame, "timestamp": round(result.timestamp, 6), "face_id": 0,
         "confidence": round(result.confidence, 5), "success": int(result.success),
         "face_x": box[0] if box else missing, "face_y": box[1] if box else missing,
         "face_w": box[2] - box[0] if box else missing, "face_h": box[3] - box[1] if box else missing}
    if columns.action:
        r["action"] = round(result.action, 5) if result.action is not None else missing
    for n in columns.au:
        r[n] = round(result.au[n], 5) if n in result.au else missing
    for n in columns.au:
        r[f"{n}_c"] = int(result.au_present[n]) if n in result.au_present else missing
    for n in columns.emotion:
        r[f"emotion_{n}"] = round(result.emotion[n], 5) if n in result.emotion else missing
    for n in columns.spotting:
        r[f"spot_{n}"] = round(result.spotting[n], 5) if n in result.spotting else missing
    for m in MOTION:
        r[m] = round(result.motion[m], 5) if m in result.motion else missing
    r["event"] = int(result.event is not None)
    for s in STAGES:
        r[f"lat_{s}"] = round(result.latency_ms[s], 4) if s in result.latency_ms else missing
    return r


class FrameWriter:
    def __init__(self, path, columns: Columns, fmt: Optional[str] = None):
        self.path = Path(path)
        self.fmt = fmt or ("jsonl" if self.path.suffix == ".jsonl" else "csv")
        if self.fmt not in ("csv", "jsonl"):
            raise ValueError(f"FrameWriter: format must be 'csv' or 'jsonl', got {self.fmt!r}")
        self.columns = columns
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")
        if self.fmt == "csv":
            self.writer = csv.DictWriter(self.file, fieldnames=columns.names())
            self.writer.writeheader()
            self.file.flush()

    def write(self, result: FrameResult):
        if self.fmt == "csv":
            self.writer.writerow(row(result, self.columns, ""))
        else:
            self.file.write(json.dumps(row(result, self.columns)) + "\n")
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
