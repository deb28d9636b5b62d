"""The live analysis behind the kiosk page: a Pipeline over one source in its own thread, at the
source's pace (a file is played at its frame rate; a camera delivers at its own), publishing
only its newest frame and results. Browsers read what is newest when they are ready for it, so
a slow or stalled client skips frames instead of slowing the analysis or piling them up; what
is kept is bounded (the newest preview, the last seconds of the trace, the last events).

No web framework here: this is plain threads and locks, usable from any server."""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..pipeline import FrameResult, Pipeline
from ..sources import FrameSource, SourceLost, SourceUnavailable


def _finite(value) -> Optional[float]:
    """JSON has no NaN: an unknown value (no face) goes out as null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def face_summary(result: FrameResult) -> Dict[str, object]:
    """What the page shows of one face on one frame."""
    emotion = None
    if result.success and result.emotion:
        name, p = max(result.emotion.items(), key=lambda kv: kv[1])
        emotion = {"name": name, "p": _finite(p)}
    return {"face_id": result.face_id, "success": result.success, "box": list(result.box) if result.box else None,
            "confidence": _finite(result.confidence), "action": _finite(result.action),
            "au": {k: _finite(v) for k, v in result.au.items()},
            "au_present": dict(result.au_present), "emotion": emotion,
            "motion": _finite(result.motion.get("motion_local"))}


def duration_ms(onset_time: float, offset_time: float) -> float:
    return round((offset_time - onset_time) * 1e3, 1)


def event_record(event, event_id: int) -> Dict[str, object]:
    """An event as the page and the API list it: its id, face, times and strongest AUs."""
    record = dataclasses.asdict(event)
    peak = sorted(((k, v) for k, v in (event.peak_au or {}).items() if math.isfinite(v)), key=lambda kv: -kv[1])
    record["id"] = event_id
    record["peak_au"] = {k: round(v, 3) for k, v in peak[:3]}
    record["duration_ms"] = duration_ms(event.onset_time, event.offset_time)
    if event.emotion:
        record["emotion"] = {k: round(v, 3) for k, v in event.emotion.items() if math.isfinite(v)}
    return record


@dataclass
class Snapshot:
    """The newest analysed frame."""
    seq: int  # frames analysed since the server started (the page's frame counter)
    captured: float  # time.time() when the frame was read from the source
    frame: int
    timestamp: float  # the source's clock (seconds)
    size: Tuple[int, int]  # width, height of the source frame (boxes are in its pixels)
    results: List[FrameResult]
    latency_ms: float  # the pipeline's time for this frame
    preview_seq: int = 0  # the seq of the newest preview picture

    @cached_property
    def faces(self) -> List[Dict[str, object]]:
        """What the page shows of each tracked face (the one no-face result when none is):
        made when a client reads it, not on every analysed frame."""
        return [face_summary(r) for r in self.results if r.success] or [face_summary(self.results[0])]


class LiveAnalysis:
    """`make_pipeline()` builds the Pipeline (in the analysis thread); `source` is anything
    FrameSource opens. `preview_width`: the width of the picture handed to browsers;
    `display_fps`: how often a new picture is made, and only while someone watches.
    `open_source`: instead of FrameSource(source, ...), a callable that opens something alike
    (iterable of Frame, with fps, live and close()), e.g. frames held in memory."""

    def __init__(self, make_pipeline: Callable[[], Pipeline], source: str, *, fps: Optional[float] = None,
                 width: Optional[int] = None, height: Optional[int] = None, loop: bool = True,
                 preview_width: int = 640, display_fps: float = 25.0, trace_s: float = 10.0,
                 max_events: int = 200, retry_s: float = 2.0, jpeg_quality: int = 80,
                 latency_window: int = 2000, open_source: Optional[Callable[[], FrameSource]] = None):
        if display_fps <= 0 or preview_width < 16:
            raise ValueError(f"LiveAnalysis: display_fps must be > 0 and preview_width >= 16, got "
                             f"{display_fps} and {preview_width}")
        self.make_pipeline, self.source = make_pipeline, source
        self.open_source = open_source or (lambda: FrameSource(self.source, **self.source_args))
        self.source_args = dict(fps=fps, width=width, height=height, loop=loop)
        self.preview_width, self.display_interval = int(preview_width), 1.0 / display_fps
        self.trace_s, self.retry_s, self.jpeg_quality = trace_s, retry_s, int(jpeg_quality)
        self.watchers = 0  # clients that want pictures (previews are only made for them)
        self._wanted_until = 0.0  # monotonic time until which a picture was asked for (want_preview)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.snapshot: Optional[Snapshot] = None
        self._preview: Optional[np.ndarray] = None
        self._jpeg: Tuple[int, bytes] = (0, b"")  # (preview seq, encoded) of the newest preview
        self._last_preview_at = 0.0  # monotonic time of the newest preview
        self.trace: deque = deque()  # (seq, timestamp, action, motion) of the first face
        self.events: deque = deque(maxlen=max_events)
        self.event_count = 0
        self.latencies: deque = deque(maxlen=latency_window)  # the pipeline's ms per frame, newest last
        self.state = "starting"  # starting | running | waiting for the source | stopped
        self.message = ""
        self.fps: Optional[float] = None
        self.au_names: Tuple[str, ...] = ()
        self.emotion_names: Tuple[str, ...] = ()
        self.notes: List[str] = []
        self.started_at = time.time()
        self.frames = 0

    # -- the analysis thread ------------------------------------------------------------------

    def start(self) -> "LiveAnalysis":
        self._thread = threading.Thread(target=self._run, name="microexp-live", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "stopped"

    def _run(self) -> None:
        try:
            pipe = self.make_pipeline()
        except Exception as err:  # a model that does not load: the page says so
            self.state, self.message = "stopped", f"the pipeline could not be built: {err}"
            return
        self.au_names, self.emotion_names = tuple(pipe.au_names), tuple(pipe.emotion_names)
        self.notes = list(pipe.flow_mismatches())  # what the outputs are worth (e.g. the emotion model's caveat)
        with pipe:
            while not self._stop.is_set():
                try:
                    source = self.open_source()
                except (SourceUnavailable, OSError, ValueError) as err:
                    self._wait(f"{err}; trying again every {self.retry_s:g} s")
                    continue
                try:
                    self._analyse(pipe, source)
                except SourceLost as err:
                    self._wait(f"{err}; reopening")
                    continue
                finally:
                    source.close()
                if self._stop.is_set():
                    break
                if source.live:  # a stream that ended: open it again
                    self._wait(f"source {self.source} ended; reopening")
                    continue
                self.state, self.message = "ended", f"source {self.source} ended"  # a file played once
                break
        if self.state != "ended":
            self.state = "stopped"

    def _wait(self, message: str) -> None:
        self.state, self.message = "waiting for the source", message
        self._stop.wait(self.retry_s)

    def _analyse(self, pipe: Pipeline, source: FrameSource) -> None:
        pipe.reset()
        if source.fps:
            pipe.use_fps(source.fps)
        self.fps = source.fps
        self.state, self.message = "running", ""
        with self._lock:
            self.trace.clear()  # a new source's clock starts again
        t0 = first = None
        for frame in source:
            if self._stop.is_set():
                return
            if not source.live:  # play a file at its own rate
                if t0 is None:
                    t0, first = time.monotonic(), frame.timestamp
                delay = t0 + (frame.timestamp - first) - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            captured = frame.wall_time or time.time()
            results = pipe.process_faces(frame.image, frame.index, frame.timestamp)
            self._publish(frame, results, captured)

    def _publish(self, frame, results: List[FrameResult], captured: float) -> None:
        now = time.monotonic()
        preview = None
        wanted = self.watchers > 0 or now < self._wanted_until
        if wanted and now - self._last_preview_at >= self.display_interval:
            self._last_preview_at = now
            h, w = frame.image.shape[:2]
            if w > self.preview_width:
                size = (self.preview_width, max(1, round(h * self.preview_width / w)))
                preview = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            else:
                preview = frame.image.copy()
        first = results[0]
        with self._lock:
            self.frames += 1
            previous = self.snapshot.preview_seq if self.snapshot else 0
            self.snapshot = Snapshot(
                seq=self.frames, captured=captured, frame=frame.index, timestamp=frame.timestamp,
                size=(frame.image.shape[1], frame.image.shape[0]),
                results=results,
                latency_ms=sum(r.latency_ms.get("total", 0.0) for r in results),
                preview_seq=self.frames if preview is not None else previous)
            if preview is not None:
                self._preview = preview
            self.latencies.append(self.snapshot.latency_ms)
            self.trace.append((self.frames, frame.timestamp, _finite(first.action), _finite(first.motion.get("motion_local"))))
            while self.trace[0][1] < frame.timestamp - self.trace_s:
                self.trace.popleft()
            for r in results:
                if r.event is not None:
                    self.event_count += 1
                    self.events.append(event_record(r.event, self.event_count))

    # -- what clients read ----------------------------------------------------------------------

    def preview_age(self) -> float:
        """Seconds since the newest preview was made."""
        return time.monotonic() - self._last_preview_at

    def want_preview(self, seconds: float = 2.0) -> None:
        """Someone without a stream asked for the picture: make previews for a while."""
        self._wanted_until = time.monotonic() + seconds

    def jpeg(self) -> Tuple[int, bytes]:
        """(preview seq, JPEG bytes) of the newest preview, encoded once however many read it."""
        with self._lock:
            seq = self.snapshot.preview_seq if self.snapshot else 0
            image = self._preview
            if self._jpeg[0] == seq or image is None:
                return self._jpeg
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        with self._lock:
            if ok and seq > self._jpeg[0]:
                self._jpeg = (seq, data.tobytes())
            return self._jpeg

    def update(self, trace_after: int, event_after: int) -> Tuple[Optional[Snapshot], list, list]:
        """The newest snapshot, the trace points after seq `trace_after` and the events after id
        `event_after` (a client's cursors)."""
        with self._lock:
            trace = [p for p in self.trace if p[0] > trace_after]
            events = [e for e in self.events if e["id"] > event_after]
            return self.snapshot, trace, events

    def events_after(self, event_after: int = 0) -> list:
        with self._lock:
            return [e for e in self.events if e["id"] > event_after]

    def status(self) -> Dict[str, object]:
        with self._lock:
            lat = np.asarray(self.latencies) if self.latencies else None
            snap = self.snapshot
        return {"state": self.state, "message": self.message, "source": self.source, "fps": self.fps,
                "frames": self.frames, "events": self.event_count, "trace_s": self.trace_s, "aus": list(self.au_names),
                "emotions": list(self.emotion_names), "notes": self.notes,
                "uptime_s": round(time.time() - self.started_at, 1),
                "faces": sum(r.success for r in snap.results) if snap else 0,
                "latency_ms": None if lat is None else {"p50": round(float(np.percentile(lat, 50)), 3),
                                                         "p90": round(float(np.percentile(lat, 90)), 3),
                                                         "frames": int(lat.size)}}
