"""Per-frame rows (CSV or JSONL) and events (JSONL), each row written whole and flushed, so
an error or Ctrl-C leaves only complete rows behind.

Columns follow OpenFace / py-feat habits: frame, timestamp, face_id, confidence, success,
face_x, face_y, face_w, face_h, `action` (P(facial action), with the action gate), `AUxx`
probabilities (0..1) of the reported AUs, `AUxx_c` presence decisions (0/1), emotion
probabilities (with the gate, `emotion_none` = no facial action), the learned spotter's class
probabilities (spot_*, when one runs), motion scores, `event` (the id of the event whose
onset-to-offset interval holds the frame, numbered from 1 in the run; 0 outside events),
per-stage latency in ms (lat_*); for live sources also `timestamp_utc` (ISO 8601, the wall
clock when the frame arrived). A value that does not exist for a row (no face) is empty in CSV
and null in JSONL."""
from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from .pipeline import FrameResult
from .spotting import MOTION_SCORES

STAGES = ("detect", "align", "flow", "motion", "action", "encode", "au_model", "emotion_model", "spotter_model",
          "total")
MOTION = MOTION_SCORES


@dataclass(frozen=True)
class Columns:
    """What a run writes per frame; `of(pipe)` reads it off a Pipeline."""
    au: Sequence[str] = ()
    emotion: Sequence[str] = ()
    spotting: Sequence[str] = ()
    action: bool = False
    live: bool = False  # a camera or stream: rows carry the wall-clock time (timestamp_utc)

    @classmethod
    def of(cls, pipe, live: bool = False) -> "Columns":
        return cls(tuple(pipe.au_names), tuple(pipe.emotion_names),
                   tuple(pipe.spotter_model.labels) if pipe.spotter_model else (), pipe.gate is not None, live)

    def names(self) -> List[str]:
        return (["frame", "timestamp", "face_id", "confidence", "success", "face_x", "face_y", "face_w", "face_h"]
                + (["timestamp_utc"] if self.live else []) + (["action"] if self.action else [])
                + list(self.au) + [f"{n}_c" for n in self.au]
                + [f"emotion_{e}" for e in self.emotion] + [f"spot_{s}" for s in self.spotting] + list(MOTION)
                + ["event"] + [f"lat_{s}" for s in STAGES])


def _number(value, missing, digits=5):
    """A value rounded for a row; None and NaN (a frame without a face) become `missing`."""
    if value is None or value != value:
        return missing
    return round(value, digits)


def row(result: FrameResult, columns: Columns, missing=None, event_id: int = 0) -> dict:
    """One row; `missing` stands for values a frame does not have (no face). `event_id`: the
    event (numbered from 1 in the run) whose onset-to-offset interval holds this frame, else 0."""
    box = result.box
    r = {"frame": result.frame, "timestamp": round(result.timestamp, 6),
         "face_id": missing if result.face_id is None else result.face_id,
         "confidence": round(result.confidence, 5), "success": int(result.success),
         "face_x": box[0] if box else missing, "face_y": box[1] if box else missing,
         "face_w": box[2] - box[0] if box else missing, "face_h": box[3] - box[1] if box else missing}
    if columns.live:
        r["timestamp_utc"] = result.timestamp_utc or missing
    if columns.action:
        r["action"] = _number(result.action, missing)
    for n in columns.au:
        r[n] = _number(result.au.get(n), missing)
    for n in columns.au:
        present = result.au_present.get(n)
        r[f"{n}_c"] = missing if present is None else int(present)
    for n in columns.emotion:
        r[f"emotion_{n}"] = _number(result.emotion.get(n), missing)
    for n in columns.spotting:
        r[f"spot_{n}"] = _number(result.spotting.get(n), missing)
    for m in MOTION:
        r[m] = _number(result.motion.get(m), missing)
    r["event"] = event_id
    for s in STAGES:
        r[f"lat_{s}"] = _number(result.latency_ms.get(s), missing, 4)
    return r


class FrameWriter:
    """Writes rows whole and flushed. The `event` column holds the id of the event whose
    onset-to-offset interval contains the frame; an event is only known when it closes, so rows
    are held back while the spotter has an interval open (at most its longest event) and written
    with their ids once it closes or is dropped."""

    def __init__(self, path, columns: Columns, fmt: Optional[str] = None):
        self.path = Path(path)
        self.fmt = fmt or ("jsonl" if self.path.suffix == ".jsonl" else "csv")
        if self.fmt not in ("csv", "jsonl"):
            raise ValueError(f"FrameWriter: format must be 'csv' or 'jsonl', got {self.fmt!r}")
        self.columns = columns
        self.events = 0  # events seen, which numbers them
        self._held: List[list] = []  # [result, event id] waiting for an open interval to end
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", newline="")
        if self.fmt == "csv":
            self.writer = csv.DictWriter(self.file, fieldnames=columns.names())
            self.writer.writeheader()
            self.file.flush()

    def write(self, results: Sequence[FrameResult], hold: bool = False) -> List[Optional[int]]:
        """Queue one frame's rows (a result per face); `hold`: an interval is open after this
        frame, so keep them (and those before) until a frame with hold=False. Returns, per
        result, the id of the event that closes at it, else None."""
        self._held.extend([result, 0] for result in results)
        ids: List[Optional[int]] = []
        for result in results:  # every event of the frame marks its rows before any are written
            ev = result.event
            if ev is None:
                ids.append(None)
                continue
            self.events += 1
            ids.append(self.events)
            for item in self._held:
                if item[0].face_id == ev.face_id and ev.onset_frame <= item[0].frame <= ev.offset_frame:
                    item[1] = self.events
        if not hold:
            self.flush()
        return ids

    def flush(self):
        for result, event_id in self._held:
            if self.fmt == "csv":
                self.writer.writerow(row(result, self.columns, "", event_id))
            else:
                self.file.write(json.dumps(row(result, self.columns, None, event_id)) + "\n")
        self._held.clear()
        self.file.flush()

    def close(self):
        self.flush()
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
        self.kinds = {"micro": 0, "macro": 0}  # events written, by Event.kind

    def write(self, event, event_id: Optional[int] = None):
        record = dataclasses.asdict(event)
        if event_id is not None:  # the id in the frames' `event` column
            record = {"id": event_id, **record}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        self.count += 1
        self.kinds[event.kind] = self.kinds.get(event.kind, 0) + 1

    def close(self):
        self.file.close()
