"""Analyses of uploaded videos for the kiosk page: each upload becomes a job with a
server-chosen id and its own folder; jobs run in a bounded worker pool; their state is kept in
the folder (job.json, written atomically), so a page reload, or a server restart, finds them.

Nothing a client sends becomes a path: the upload is stored as `upload`, the results under the
names in RESULT_FILES, and the client's file name is only shown. An upload is accepted by what
it is (a known container's first bytes, a frame decoded, its duration), never by its name."""
from __future__ import annotations

import csv
import json
import math
import re
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import cv2

from ..analysis import COMPLETE, AnalysisOptions, analyse
from ..atomic_io import atomic_write_json
from ..pipeline import Pipeline
from ..sources import FrameSource
from .live import duration_ms

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# The files a finished job offers, and their media types.
RESULT_FILES = {"frames.csv": "text/csv", "frames.jsonl": "application/x-ndjson",
                "events.jsonl": "application/x-ndjson", "timeline.png": "image/png",
                "annotated.webm": "video/webm", "model_info.json": "application/json"}
MAX_SIDE = 8192  # larger frames are refused before analysis (a decompression bomb, or a mistake)


class JobError(ValueError):
    """An upload refused, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Busy(JobError):
    def __init__(self, message: str):
        super().__init__(message, 429)


@dataclass
class JobLimits:
    max_upload_bytes: int = 500 * 2**20
    max_duration_s: float = 600.0
    workers: int = 1  # jobs analysed at once
    max_waiting: int = 4  # jobs queued behind them; more are refused (429)
    keep: int = 20  # finished jobs kept; the oldest are deleted beyond this


@dataclass
class Job:
    id: str
    name: str  # the client's file name, for display only
    created: float
    state: str = "receiving"  # receiving | queued | running | done | failed
    frames_done: int = 0
    frames_total: Optional[int] = None
    duration_s: Optional[float] = None
    error: str = ""
    summary: Dict[str, object] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    finished: Optional[float] = None

    def public(self) -> Dict[str, object]:
        return asdict(self)


def container_of(head: bytes) -> Optional[str]:
    """The video container named by a file's first bytes, else None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "MPEG-TS"
    if head[:4] == b"\x00\x00\x01\xba":
        return "MPEG-PS"
    return None


def probe_video(path: Path, limits: JobLimits) -> Dict[str, float]:
    """Frame rate, frame count and duration of an uploaded file, or JobError saying why it is not
    a video this server analyses. Only video containers are handed to the decoder (a playlist or
    a concat list could make FFmpeg read other files)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if container_of(head) is None:
        raise JobError("the upload is not a video in a known container (MP4/MOV, Matroska/WebM, AVI, "
                       "MPEG-TS/PS); its first bytes match none of them")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise JobError(f"the upload looks like {container_of(head)} but could not be opened by the decoder")
        ok, image = capture.read()
        if not ok or image is None:
            raise JobError(f"the upload looks like {container_of(head)} but no frame could be decoded from it")
        h, w = image.shape[:2]
        if max(h, w) > MAX_SIDE:
            raise JobError(f"the video's frames are {w}x{h}; at most {MAX_SIDE} px a side is analysed", 413)
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        capture.release()
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise JobError(f"the video has no usable frame rate ({fps})")
    duration = count / fps if math.isfinite(count) and count > 0 else None
    if duration is not None and duration > limits.max_duration_s:
        raise JobError(f"the video lasts {duration:.1f} s; this server analyses at most "
                       f"{limits.max_duration_s:g} s", 413)
    return {"fps": fps, "frames": int(count) if duration is not None else None, "duration_s": duration,
            "width": w, "height": h}


def csv_to_jsonl(src: Path, dst: Path) -> None:
    """The frames CSV as JSON lines: numbers as numbers, empty cells as null."""
    def value(text: str):
        if text == "":
            return None
        for kind in (int, float):
            try:
                number = kind(text)
                return number if kind is int or math.isfinite(number) else None
            except ValueError:
                pass
        return {"True": True, "False": False}.get(text, text)

    with open(src, newline="") as f, open(dst, "w") as out:
        for record in csv.DictReader(f):
            out.write(json.dumps({k: value(v) for k, v in record.items()}) + "\n")


class JobCancelled(KeyboardInterrupt):
    """Raised inside a job's progress callback when the server stops: the analysis ends as on
    Ctrl-C (the rows so far stay whole) and the job is marked failed."""


class JobStore:
    """`make_pipeline()` builds a Pipeline for each job (in its worker thread)."""

    def __init__(self, root: Path, make_pipeline: Callable[[], Pipeline], limits: Optional[JobLimits] = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.make_pipeline = make_pipeline
        self.limits = limits or JobLimits()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.jobs: Dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="microexp-job")
        self._load()

    def _load(self) -> None:
        """Jobs of an earlier server: finished ones are offered again; one that was cut off by the
        stop is marked failed (its partial results are not offered)."""
        for folder in self.root.iterdir():
            state = folder / "job.json"
            if not (JOB_ID.match(folder.name) and state.is_file()):
                continue
            try:
                job = Job(**json.loads(state.read_text()))
            except (ValueError, TypeError):
                continue
            if job.state not in ("done", "failed"):
                job.state, job.error = "failed", "the server stopped before this job finished; upload it again"
                job.finished = time.time()
                self._save(job)
            self.jobs[job.id] = job

    def _save(self, job: Job) -> None:
        atomic_write_json(self.root / job.id / "job.json", job.public())

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id) if isinstance(job_id, str) and JOB_ID.match(job_id) else None
        if job is None:
            raise JobError("no such job", 404)
        return job

    def listing(self) -> List[Dict[str, object]]:
        with self._lock:
            return [j.public() for j in sorted(self.jobs.values(), key=lambda j: -j.created)]

    def file(self, job_id: str, name: str) -> Path:
        """The path of a finished job's result file; the name must be one of RESULT_FILES."""
        job = self.get(job_id)
        if name not in RESULT_FILES or name not in job.files:
            raise JobError("no such file", 404)
        return self.root / job.id / "results" / name

    def open_upload(self, name: str) -> Job:
        """A new job receiving its upload, or Busy when the pool and its queue are full."""
        with self._lock:
            waiting = sum(j.state in ("receiving", "queued", "running") for j in self.jobs.values())
            if waiting >= self.limits.workers + self.limits.max_waiting:
                raise Busy(f"{waiting} uploads are being analysed or waiting; try again later")
            clean = "".join(c for c in str(name) if c.isprintable())[:200] or "upload"
            job = Job(id=secrets.token_hex(16), name=clean, created=time.time())
            (self.root / job.id).mkdir()
            self.jobs[job.id] = job
        return job

    def upload_path(self, job: Job) -> Path:
        return self.root / job.id / "upload"

    def discard(self, job: Job) -> None:
        with self._lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(self.root / job.id, ignore_errors=True)

    def submit(self, job: Job) -> Job:
        """Check the received upload and queue it; JobError (the job discarded) if it is not a
        video this server analyses."""
        try:
            info = probe_video(self.upload_path(job), self.limits)
        except JobError:
            self.discard(job)
            raise
        job.frames_total, job.duration_s = info["frames"], info["duration_s"]
        job.state = "queued"
        self._save(job)
        self._pool.submit(self._run, job, info["fps"])
        self._prune()
        return job

    def _prune(self) -> None:
        with self._lock:
            done = sorted((j for j in self.jobs.values() if j.state in ("done", "failed")), key=lambda j: j.created)
            old = done[:max(0, len(done) - self.limits.keep)]
        for job in old:
            self.discard(job)

    def _run(self, job: Job, fps: float) -> None:
        folder = self.root / job.id
        partial, final = folder / "results.partial", folder / "results"
        if self._stopping.is_set():
            return
        job.state = "running"
        self._save(job)

        def progress(done, total):
            job.frames_done = done
            if self._stopping.is_set():
                raise JobCancelled()

        try:
            shutil.rmtree(partial, ignore_errors=True)
            cap = math.ceil(self.limits.max_duration_s * fps)  # also for a file whose length is not in its header
            with self.make_pipeline() as pipe:
                source = FrameSource(str(self.upload_path(job)))
                result = analyse(pipe, source, AnalysisOptions(partial, video=True, video_name="annotated.webm",
                                                               max_frames=cap, progress=progress, progress_every=10))
            if result.ended != COMPLETE:
                raise JobCancelled() if self._stopping.is_set() else RuntimeError(result.message or result.ended)
            csv_to_jsonl(partial / "frames.csv", partial / "frames.jsonl")
            summary = {k: v for k, v in result.summary.items() if k not in ("rows", "events_file", "timeline",
                                                                            "model_info", "video")}
            if summary.get("frames", 0) >= cap:
                summary["cut"] = f"only the first {self.limits.max_duration_s:g} s were analysed (the server's limit)"
            partial.rename(final)
            job.summary = summary
            job.files = [n for n in RESULT_FILES if (final / n).is_file()]
            job.frames_done = int(summary.get("frames", job.frames_done))
            job.state = "done"
        except (Exception, KeyboardInterrupt) as err:  # the job fails with a message; the server goes on
            job.state = "failed"
            stopped = isinstance(err, KeyboardInterrupt)
            job.error = "the server stopped during the analysis; upload the video again" if stopped else \
                f"the analysis failed: {err}"
            shutil.rmtree(partial, ignore_errors=True)
        finally:
            job.finished = time.time()
            self.upload_path(job).unlink(missing_ok=True)  # the video is not kept once analysed
            self._save(job)

    def events(self, job_id: str) -> List[Dict[str, object]]:
        path = self.file(job_id, "events.jsonl")
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for e in events:  # as the live list gives it
            e["duration_ms"] = duration_ms(e["onset_time"], e["offset_time"])
        return events

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for job in list(self.jobs.values()):
            if job.state == "receiving":
                self.discard(job)
            elif job.state == "queued":
                self._mark_stopped(job)

    def _mark_stopped(self, job: Job) -> None:
        job.state, job.error, job.finished = "failed", "the server stopped before this job started", time.time()
        self.upload_path(job).unlink(missing_ok=True)
        self._save(job)
