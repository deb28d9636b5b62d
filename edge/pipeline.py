"""The per-frame pipeline: detect (reference frame and after tracking loss) -> align by
template matching (native kernels) -> optical flow against the reference crop -> motion and the
action gate -> encode into the models' inputs (native kernels) -> AU probabilities and
decisions, emotion, events.

    with Pipeline.from_defaults() as pipe:
        for result in pipe.stream("clip.mp4"):  # result.au: the reported AUs (pipe.au_names)
            print(result.frame, result.action, result.au.get("AU04"), result.au_present.get("AU04"))
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from microexp import kernels

from .action import ActionGate, GateParams
from .backends import open_model
from .config import DEFAULT_SPOTTER, MODELS, PipelineConfig  # noqa: F401  (part of this module's API)
from .detect import Face, FaceDetector
from .face_regions import REGION_CROP, crop_regions
from .flow import FlowEstimator, describe, flow_token
from .frames import as_bgr
from .sources import Frame, FrameSource
from .spotting import MOTION_SCORES, Event, IntervalSpotter, region_motion
from .track import FaceTrack, appearance
from .track import iou as _iou


@dataclass
class FrameResult:
    """One frame's analysis. Every result of a pipeline has the same keys in `au`, `au_present`,
    `emotion`, `spotting` and `motion`, with or without a face: on a frame without one
    (success False) the values are NaN, and the decisions in `au_present` are None (unknown,
    not absent)."""
    frame: int
    timestamp: float
    success: bool
    confidence: float  # NCC score of the alignment (1.0 on a detection frame), 0 when lost
    box: Optional[Tuple[int, int, int, int]]  # x1, y1, x2, y2
    face_id: Optional[int] = None  # stable per person across frames and re-acquisitions; None: no face
    # P(facial action) from the action gate (None without one, or without a face). With a gate,
    # `au` holds P(action) * P(AU | action) and `emotion` has a 'none' class = 1 - P(action).
    action: Optional[float] = None
    action_present: bool = False
    au: Dict[str, float] = field(default_factory=dict)  # the reported AUs (Pipeline.au_names)
    au_present: Dict[str, bool] = field(default_factory=dict)  # decisions: action and the AU's threshold
    emotion: Dict[str, float] = field(default_factory=dict)
    motion: Dict[str, float] = field(default_factory=dict)
    spotting: Dict[str, float] = field(default_factory=dict)  # the spotter model's class probabilities
    uvs28: Optional[np.ndarray] = None  # (3, 28, 28) float32 0..255, with PipelineConfig.return_uvs28
    hsv28: Optional[np.ndarray] = None  # (3, 28, 28) float32 0..255, with PipelineConfig.return_hsv28
    regions: Optional[np.ndarray] = None  # (12, 4) float32 region flow features, with PipelineConfig.return_regions
    latency_ms: Dict[str, float] = field(default_factory=dict)
    event: Optional[Event] = None  # an event recognised at this frame (it ended before it)
    timestamp_utc: Optional[str] = None  # live sources: when the frame arrived (ISO 8601, UTC)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 64 px wide grey thumbnail for noticing change cheaply: every 8th pixel, area-averaged
    (sensor noise averages out)."""
    sample = frame[::8, ::8]
    gray = sample if sample.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(sample), cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    return cv2.resize(gray, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA).astype(np.float32)


def _slot(timestamp: float, ms: float) -> float:
    """Which `ms`-long slot of source time `timestamp` falls in (every instant its own when 0)."""
    return float(np.floor(timestamp * 1e3 / ms)) if ms > 0 else timestamp


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


class Pipeline:
    def __init__(self, config: Optional[PipelineConfig] = None):
        self.config = c = config or PipelineConfig()
        self.detector = FaceDetector(min_face=c.min_face, threads=c.threads)
        self.flow = FlowEstimator(c.flow)
        # One frame at a time: a fixed batch of 1 lets ONNX Runtime fold the shape arithmetic
        # and TensorRT tune its engine for it.
        def model(path):
            return open_model(path, c.backend, c.threads, batch=1, precision=c.trt_precision,
                              engine_cache=c.engine_cache) if path else None
        self.au_model = model(c.au_model)
        self.emotion_model = model(c.emotion_model)
        self.spotter_model = model(c.spotter_model)
        self._gate_params = GateParams.from_file(c.action_gate) if c.action_gate else None
        self.gate = ActionGate(self._gate_params, c.crop_size, c.fps) if self._gate_params else None
        # The AU columns: the ones whose measured quality passes the model's bar, or all of them.
        au = self.au_model
        self.au_names: Tuple[str, ...] = () if au is None else (au.labels if c.all_aus else au.spec.reported_aus())
        self._au_index = [au.labels.index(n) for n in self.au_names] if au is not None else []
        thresholds = (au.spec.thresholds or (0.5,) * len(au.labels)) if au is not None else ()
        self._au_thresholds = np.asarray([thresholds[i] for i in self._au_index], np.float64)
        emotion = self.emotion_model
        self.emotion_names: Tuple[str, ...] = () if emotion is None else \
            ((("none",) if self.gate is not None else ()) + tuple(emotion.labels))
        # The AU and emotion models read a 28x28 map; a model made for other input is named here,
        # not met as a shape error on the first frame.
        for role, m, readable in (("AU", self.au_model, ("hsv28", "uvs28", "uvs28-regions")),
                                  ("emotion", emotion, ("hsv28", "uvs28", "uvs28-regions"))):
            if m is not None and m.spec.input_encoding not in readable:
                raise ValueError(f"{m.path}: its input is '{m.spec.input_encoding}' (task {m.task!r}); the {role} "
                                 f"model must read a 28x28 map ({', '.join(readable)})")
        spotter = self.spotter_model
        if spotter is not None and (spotter.task != "spotting" or not spotter.spec.state_size
                                    or "none" not in spotter.labels):
            raise ValueError(f"{spotter.path}: not a streaming spotting model (task {spotter.task!r}, "
                             f"state size {spotter.spec.state_size}, labels {list(spotter.labels)}); "
                             "the spotter needs one with a 'none' class")
        # The learned score's detector threshold: the config's, else the one the spotter model
        # was shipped with (chosen on a development set), else baseline + k * MAD.
        self.spot_threshold = c.spot_threshold
        self.min_event_ms = c.min_event_ms
        if c.spot_score == "learned":
            if self.spot_threshold is None:
                self.spot_threshold = spotter.spec.spot_threshold
            if self.min_event_ms is None:
                self.min_event_ms = spotter.spec.spot_min_ms
        self.min_event_ms = self.min_event_ms or 40.0
        self.spotter = self._interval_spotter()
        self._crop = np.empty((c.crop_size, c.crop_size, 3), np.uint8)
        self._gray = np.empty((c.crop_size, c.crop_size), np.uint8)
        self._hsv = np.empty((28, 28, 3), np.uint8)
        # Models bound to their own input/output buffers: the encoders write straight into them.
        self._au = self.au_model.bind() if self.au_model else None
        self._emotion = self.emotion_model.bind() if self.emotion_model else None
        self._spot = self.spotter_model.bind() if self.spotter_model else None
        self._uvs = np.empty((3, 28, 28), np.float32)
        # The graph spotter steps on region flow features; the others on the uvs28 map.
        self._spot_regions = spotter is not None and spotter.spec.input_encoding == "region-flow"
        self._regions = np.empty((12, 4), np.float32)
        self._flow = np.empty((c.crop_size, c.crop_size, 2), np.float32) if self.flow.writes_out_only else None
        self.reset()

    @classmethod
    def from_defaults(cls, **overrides) -> "Pipeline":
        return cls(PipelineConfig(**overrides))

    def reset(self):
        """Forget every face: the next frame starts afresh (a new stream)."""
        self.tracks: List[FaceTrack] = []  # tracked now, in the order they were acquired
        self.lost: List[FaceTrack] = []  # lost lately: a face seen again takes its id back
        self._next_id = 0
        self._last_box = None  # where the last lost track was: re-acquisition looks there first
        self._frame_size = None  # (rows, cols) of the frames the tracks were made on
        self.count = 0
        self._idle_at = None  # source time of the last look that found no face
        self._idle_thumb = None  # the picture then, as a thumbnail
        self._empty_since = None  # source time of the first look of this stretch that found none
        self._last_scan = None  # source time of the last look for newcomers
        self._spot_owner = None  # the track whose state the learned spotter holds

    def experimental_aus(self) -> Tuple[str, ...]:
        """AUs reported although their measured quality misses the model's bar (all_aus)."""
        if self.au_model is None:
            return ()
        reported = set(self.au_model.spec.reported_aus())
        return tuple(n for n in self.au_names if n not in reported)

    def models(self) -> Dict[str, object]:
        """The models this pipeline runs, by role ('au', 'emotion', 'spotter')."""
        return {role: m for role, m in (("au", self.au_model), ("emotion", self.emotion_model),
                                         ("spotter", self.spotter_model)) if m is not None}

    def flow_mismatches(self) -> List[str]:
        """One sentence per model whose training inputs were made with another optical flow
        than this pipeline computes, or at another frame rate than the stream's (temporal
        spotters): what it means and what to do, for the run's summary."""
        runtime = flow_token(self.config.flow)
        notes = []
        for role, m in self.models().items():
            if not m.spec.flow or m.spec.flow == runtime:
                continue
            shift = m.spec.flow_shift or {}
            moved = (f"; measured on generated clips, its outputs move by {shift['summary']}"
                     if shift.get("summary") else "")
            notes.append(f"the {role} model ({m.path.name}) was trained on maps whose optical flow is not "
                         f"this run's (its flow: {m.spec.flow_description()}; this run: "
                         f"{describe(self.config.flow)}){moved}. Treat its {role} scores as indicative, "
                         "not calibrated.")
        for role, m in self.models().items():
            rate = m.spec.frame_rate
            if rate and abs(self.config.fps / rate - 1) > 0.1:
                notes.append(f"the {role} model ({m.path.name}) was trained on clips at {rate:g} fps and this "
                             f"stream runs at {self.config.fps:g} fps: it sees each expression over "
                             f"{self.config.fps / rate:.2g} times as many frames as in training. Its events are "
                             "measured at its own rate only (docs/spotting.md).")
        return notes

    def close(self) -> None:
        """Release the models' sessions, engines and bound buffers; the pipeline is unusable after."""
        for bound in (self._au, self._emotion, self._spot):
            if bound is not None:
                bound.close()
        for m in self.models().values():
            m.close()
        self._au = self._emotion = self._spot = None
        self.au_model = self.emotion_model = self.spotter_model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _find_faces(self, frame: np.ndarray, cheap: bool):
        """(faces, scale): the detections at or above detect_score, in frame coordinates. A full
        look searches the frame itself (scale 1); a cheap one (idle, or looking for newcomers)
        a copy shrunk by `scale` so that a face of idle_min_face px is 12 px there."""
        c = self.config
        scale = c.idle_min_face / 12.0 if cheap else 1.0
        if scale <= 1 or min(frame.shape[:2]) / scale < 12:
            return [f for f in self.detector.detect(frame) if f.score >= c.detect_score], 1.0
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=cv2.INTER_AREA)
        found = self.detector.detect(small, min_face=12)
        return [Face(f.box * scale, f.score, f.landmarks * scale) for f in found if f.score >= c.detect_score], scale

    def _refined(self, frame: np.ndarray, face: Face) -> Face:
        """The face detected once more at full resolution, in the region around where the
        shrunk frame showed it (the track's template and box come from this detection)."""
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = face.box
        bw, bh = x2 - x1, y2 - y1
        rx1, ry1 = int(max(0, x1 - 0.5 * bw)), int(max(0, y1 - 0.5 * bh))
        rx2, ry2 = int(min(w, x2 + 0.5 * bw)), int(min(h, y2 + 0.5 * bh))
        found = self.detector.detect(frame[ry1:ry2, rx1:rx2], min_face=0.6 * min(bw, bh))
        offset = np.array([rx1, ry1, rx1, ry1], np.float64)
        best, overlap = None, 0.3  # below this IoU a detection is another face
        for f in found:
            if f.score >= self.config.detect_score and _iou(f.box + offset, face.box) > overlap:
                best, overlap = f, _iou(f.box + offset, face.box)
        if best is None:
            return face
        return Face(best.box + offset, best.score, best.landmarks + offset[:2])

    def _detection_due(self, frame: np.ndarray, timestamp: float) -> bool:
        """Whether to look for a face on this frame: always, unless the last look found none;
        then on every frame for idle_after_ms (a face hidden for a moment is found at once), and
        after that once per idle_interval_ms slot of source time if the picture changed, and once
        per idle_max_interval_ms slot in any case. The slots are fixed on the source's clock (not
        counted from the last look), so two runs that missed a face alike look on the same frames
        from then on: what lets a long input be split into time ranges exactly (edge.ranges)."""
        c = self.config
        if c.stills or self._idle_at is None:
            return True
        if (timestamp - self._empty_since) * 1e3 < c.idle_after_ms:
            return True
        if timestamp < self._idle_at:  # the source's clock restarted
            return True
        if _slot(timestamp, c.idle_interval_ms) == _slot(self._idle_at, c.idle_interval_ms):
            return False
        if _slot(timestamp, c.idle_max_interval_ms) != _slot(self._idle_at, c.idle_max_interval_ms):
            return True
        thumb = _thumbnail(frame)
        return thumb.shape != self._idle_thumb.shape or float(np.abs(thumb - self._idle_thumb).mean()) > c.idle_change

    def sync_key(self, timestamp: float) -> Optional[tuple]:
        """After the frame at `timestamp`: a key equal for two pipelines (same configuration) exactly
        when every result they give from here on is the same but for face ids counted from
        different starts; None while the state reaches further back: a face tracked, a lost face
        not yet forgotten (forget_s), the idle state's first idle_after_ms. Then what is left is
        the idle schedule's slot of the last look and the picture it saw (and, unless the largest
        face is followed, where the last track was lost)."""
        c = self.config
        if self.tracks or c.stills or self._idle_at is None or self._empty_since is None:
            return None
        if (timestamp - self._empty_since) * 1e3 < c.idle_after_ms:
            return None
        if any(t.lost_at is None or timestamp - t.lost_at <= c.forget_s for t in self.lost):
            return None
        thumb = hashlib.sha1(np.ascontiguousarray(self._idle_thumb).tobytes()).hexdigest()
        return (_slot(self._idle_at, c.idle_interval_ms), _slot(self._idle_at, c.idle_max_interval_ms), thumb,
                None if c.face == "largest" else self._last_box)

    @property
    def faces_started(self) -> int:
        """Face ids handed out so far (the next new face gets this one)."""
        return self._next_id

    def _ordered(self, faces, w: int, h: int):
        """Detections in the order they become tracks, by PipelineConfig.face: largest first; or
        nearest the chosen point, which after a tracking loss is where the track was lost."""
        c = self.config
        if c.face == "largest":
            return sorted(faces, key=lambda f: -f.area)
        target = None
        if self._last_box is not None:  # re-acquiring: stay with the person whose track was lost
            target = ((self._last_box[0] + self._last_box[2]) / 2, (self._last_box[1] + self._last_box[3]) / 2)
        target = target or c.face_point() or (w / 2, h / 2)

        def rank(f):
            x1, y1, x2, y2 = f.box
            inside = x1 <= target[0] <= x2 and y1 <= target[1] <= y2
            return (not inside, (target[0] - (x1 + x2) / 2) ** 2 + (target[1] - (y1 + y2) / 2) ** 2)
        return sorted(faces, key=rank)

    def _start_track(self, frame: np.ndarray, f: Face, timestamp: float) -> Optional[FaceTrack]:
        """A track from a detection; its face_id is a lost track's when the face is that person's."""
        c = self.config
        h, w = frame.shape[:2]
        x1, y1 = int(max(0, np.floor(f.box[0]))), int(max(0, np.floor(f.box[1])))
        x2, y2 = int(min(w, np.ceil(f.box[2]))), int(min(h, np.ceil(f.box[3])))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return None
        box = (x1, y1, x2, y2)
        look = appearance(frame, box)
        self.lost = [t for t in self.lost if t.lost_at is None or timestamp - t.lost_at <= c.forget_s]
        known = max(self.lost, key=lambda t: t.same_person(frame, box, timestamp, look), default=None)
        if known is not None and known.same_person(frame, box, timestamp, look) > 0:
            self.lost.remove(known)
            track = known  # the same person: its id and its spotter's calm baseline go on
        else:
            track = FaceTrack(self._next_id, self.flow if c.faces == 1 else FlowEstimator(c.flow),
                              self._interval_spotter(),
                              ActionGate(self._gate_params, c.crop_size, c.fps) if self._gate_params else None)
            self._next_id += 1
        track.box, track.look, track.lost_at = box, look, None
        track.template = np.ascontiguousarray(frame[y1:y2, x1:x2])
        # What align_crop searches with: the template prepared once for the pyramid search.
        track.tracked = kernels.TemplateMatcher(track.template) if c.match_mode == "pyramid" else track.template
        crop = cv2.resize(track.template, (c.crop_size, c.crop_size))
        track.reference = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        track.history.clear()
        track.calm_since = None
        self._new_reference(track)  # a new onset: the learned spotter and the gate start afresh
        # Landmarks on the 28x28 grid of the crop, for the emotion model's region composite.
        track.landmarks28 = (f.landmarks - [x1, y1]) / [x2 - x1, y2 - y1] * 28.0
        track.regions = crop_regions(track.landmarks28 * (c.crop_size / 28.0), c.crop_size)
        self._frame_size = frame.shape[:2]
        self.tracks.append(track)
        return track

    def _lose(self, track: FaceTrack, timestamp: Optional[float]) -> None:
        if all(track.face_id <= t.face_id for t in self.tracks):  # the first face: look there again
            self._last_box = track.box
        self.tracks.remove(track)
        track.lost_at = timestamp
        self.lost = (self.lost + [track])[-16:]

    def process(self, frame: np.ndarray, index: Optional[int] = None,
                timestamp: Optional[float] = None) -> FrameResult:
        """One frame: the result of its first tracked face (the lowest face_id), or a result
        without a face. process_faces gives every face's."""
        return self.process_faces(frame, index, timestamp)[0]

    def process_faces(self, frame: np.ndarray, index: Optional[int] = None,
                      timestamp: Optional[float] = None) -> List[FrameResult]:
        """One frame: a result per tracked face, in face_id order (up to PipelineConfig.faces),
        or one result without a face (face_id None)."""
        c = self.config
        index = self.count if index is None else index
        timestamp = index / c.fps if timestamp is None else timestamp
        self.count += 1
        t0 = time.perf_counter()
        frame = as_bgr(frame, "Pipeline")
        if c.stills:  # unrelated photos: nobody is followed from one to the next
            count = self.count
            self.reset()
            self.count = count
        if self.tracks and frame.shape[:2] != self._frame_size:
            # A new frame size (a camera switching mode, a resized stream): the templates and
            # boxes belong to the old one, so the faces are detected afresh.
            self.reset_track()
            self._last_box = None
        results: List[FrameResult] = []
        lost_confidence = None
        for track in list(self.tracks):
            t1 = time.perf_counter()
            crop, box, confidence = kernels.align_crop(frame, track.tracked, track.box, margin=c.margin,
                                                       size=(c.crop_size, c.crop_size),
                                                       mode=c.match_mode, out=self._crop,
                                                       finest_level=c.track_level)
            align_ms = (time.perf_counter() - t1) * 1e3
            if confidence < c.track_threshold:
                self._lose(track, timestamp)
                lost_confidence = max(lost_confidence or 0.0, float(confidence))
                continue
            track.box = tuple(int(v) for v in box)
            results.append(self._analyse(track, crop, index, timestamp, float(confidence), False,
                                         {"align": align_ms}, t1))
        # Looking for faces: at once when a track was just lost or at the start; while nobody is
        # tracked, the idle state's cheap, spaced looks; while some are and there is room for
        # more, a cheap look for newcomers every scan_interval_ms.
        look = None
        if len(self.tracks) < c.faces:
            if lost_confidence is not None or c.stills or (not self.tracks and self._idle_at is None):
                look = "full"
            elif not self.tracks:
                look = "cheap" if self._detection_due(frame, timestamp) else None
            elif self._last_scan is None or (timestamp - self._last_scan) * 1e3 >= c.scan_interval_ms:
                look = "cheap"
        lat: Dict[str, float] = {}
        if look:
            t1 = time.perf_counter()
            found, scale = self._find_faces(frame, cheap=look == "cheap")
            look_ms = (time.perf_counter() - t1) * 1e3  # shared by the faces it finds
            self._last_scan = timestamp
            h, w = frame.shape[:2]
            started = 0
            for f in self._ordered(found, w, h):
                if len(self.tracks) >= c.faces:
                    break
                if any(_iou(f.box, t.box) > 0.3 for t in self.tracks):
                    continue  # a face already tracked
                t2 = time.perf_counter()
                if scale > 1:
                    f = self._refined(frame, f)
                track = self._start_track(frame, f, timestamp)
                if track is None:
                    continue
                crop = cv2.resize(track.template, (c.crop_size, c.crop_size))
                detect_ms = look_ms + (time.perf_counter() - t2) * 1e3
                results.append(self._analyse(track, crop, index, timestamp, 1.0, True, {"detect": detect_ms},
                                             time.perf_counter() - detect_ms / 1e3))
                started += 1
            if self.tracks:
                self._idle_at = self._empty_since = None
            else:
                self._idle_at, self._idle_thumb = timestamp, _thumbnail(frame)
                if self._empty_since is None or timestamp < self._empty_since:
                    self._empty_since = timestamp
            if results and not started:  # a look for newcomers that found none: on the first row
                first = results[0].latency_ms
                first["detect"] = look_ms
                first["total"] = first.get("total", 0.0) + look_ms
            lat["detect"] = (time.perf_counter() - t1) * 1e3
        if not results:
            if not look:
                lat["idle"] = (time.perf_counter() - t0) * 1e3
            return [self._no_face(index, timestamp, lost_confidence or 0.0, lat)]
        results.sort(key=lambda r: r.face_id)
        return results

    def _analyse(self, track: FaceTrack, crop: np.ndarray, index: int, timestamp: float, confidence: float,
                 fresh: bool, lat: Dict[str, float], t0: float) -> FrameResult:
        """A tracked face's crop on this frame -> flow, motion, action, AUs, emotion, events.
        `fresh`: the track starts on this frame (its flow is zero by construction)."""
        c = self.config
        t1 = time.perf_counter()
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY, dst=self._gray)
        reference = self._reference(track, gray, timestamp)
        flow = track.flow(reference, gray, self._flow)
        lat["flow"] = (time.perf_counter() - t1) * 1e3
        result = FrameResult(index, timestamp, True, confidence, track.box, face_id=track.face_id)
        t2 = time.perf_counter()
        result.motion = region_motion(flow)
        lat["motion"] = (time.perf_counter() - t2) * 1e3
        action = 1.0  # what the outputs are conditioned on: P(action), or 1 without a gate
        if track.gate is not None:
            t2 = time.perf_counter()
            # A track's first frame is compared with itself: nothing has moved yet.
            action = 0.0 if fresh else track.gate(result.motion["motion_nonrigid"], track.box[2] - track.box[0])
            result.action = action
            result.action_present = track.gate.present(action)
            lat["action"] = (time.perf_counter() - t2) * 1e3
        else:
            result.action_present = True
        t2 = time.perf_counter()
        if self.au_model is not None or c.return_hsv28:
            kernels.encode_hsv28(flow, out=self._hsv, nonfinite="zero")
            if c.return_hsv28:  # a copy for the caller, encoded once
                result.hsv28 = self._hsv.transpose(2, 0, 1).astype(np.float32)
        if self.au_model is not None:
            self._au.input[0] = self._hsv.transpose(2, 0, 1)
            lat["encode"] = (time.perf_counter() - t2) * 1e3
            t3 = time.perf_counter()
            given_action = _sigmoid(self._au()[0][self._au_index])
            lat["au_model"] = (time.perf_counter() - t3) * 1e3
            present = (given_action >= self._au_thresholds) & result.action_present
            result.au = {n: float(action * p) for n, p in zip(self.au_names, given_action)}
            result.au_present = {n: bool(on) for n, on in zip(self.au_names, present)}
        uvs = None  # the frame's uvs28 map once encoded: the emotion and spotter models share it
        if self.emotion_model is not None:
            t3 = time.perf_counter()
            uvs = kernels.encode_uvs28(flow, out=self._uvs, scale=255.0, nonfinite="zero")
            if self.emotion_model.spec.input_encoding == "uvs28-regions":
                kernels.compose_regions(self._uvs, track.landmarks28, out=self._emotion.input[0])
            else:
                self._emotion.input[0] = self._uvs
            probs = _softmax(self._emotion()[0])
            if track.gate is not None:  # 'none' is the absence of facial action
                result.emotion = {"none": 1.0 - action, **{n: float(action * p) for n, p in
                                                            zip(self.emotion_model.labels, probs)}}
            else:
                result.emotion = {n: float(p) for n, p in zip(self.emotion_model.labels, probs)}
            lat["emotion_model"] = (time.perf_counter() - t3) * 1e3
        regions = None  # the frame's region flow features once computed
        t_regions = time.perf_counter()  # the graph spotter's time includes its features'
        if c.return_regions or self._spot_regions:
            regions = self._spot.input[0] if self._spot_regions else self._regions
            kernels.region_flow(flow, track.regions, out=regions, nonfinite="zero")
            if c.crop_size != REGION_CROP:  # features in px of the crop size the spotter was made for
                regions[:, :3] *= np.float32(REGION_CROP / c.crop_size)
            if c.return_regions:
                result.regions = regions.copy()
        if self.spotter_model is not None:
            t3 = t_regions if self._spot_regions else time.perf_counter()
            self._hold_spot_state(track)
            if self._spot_regions:
                pass  # region_flow wrote the features into the model's input above
            elif uvs is not None:
                self._spot.input[0] = uvs
            else:
                kernels.encode_uvs28(flow, out=self._spot.input[0], scale=255.0, nonfinite="zero")
            if c.return_uvs28:
                result.uvs28 = self._spot.input[0].copy()
            logits = self._spot()[0]
            result.spotting = {n: float(p) for n, p in zip(self.spotter_model.labels, _softmax(logits))}
            lat["spotter_model"] = (time.perf_counter() - t3) * 1e3
        if c.return_uvs28 and result.uvs28 is None:
            if uvs is None:
                uvs = kernels.encode_uvs28(flow, out=self._uvs, scale=255.0, nonfinite="zero")
            result.uvs28 = uvs.copy()
        score = 1.0 - result.spotting["none"] if c.spot_score == "learned" else result.motion[c.spot_score]
        result.event = track.spotter.update(index, timestamp, score, result.au, result.emotion or None,
                                            result.action_present)
        if result.event is not None:
            result.event.face_id = track.face_id
        if result.event is None and track.spotter.open is None:
            track.calm_since = timestamp if track.calm_since is None else track.calm_since
        else:
            track.calm_since = None
        lat["total"] = (time.perf_counter() - t0) * 1e3
        result.latency_ms = lat
        return result

    def _hold_spot_state(self, track: FaceTrack) -> None:
        """The learned spotter's recurrent state is per face: swap it in for `track`."""
        if self._spot_owner is track:
            return
        owner = self._spot_owner
        if owner is not None:
            owner.spot_state = self._spot.read_state()
        if track.spot_state:
            self._spot.load_state(*track.spot_state)
        self._spot_owner = track

    def events_pending(self, frame: int) -> bool:
        """Whether a tracked face's spotter holds an interval open after `frame` that can still
        become an event (one longer than the longest event cannot)."""
        return any(t.spotter.open is not None and frame - t.spotter.open["onset"][0] < t.spotter.max_frames
                   for t in self.tracks)

    def _no_face(self, index: int, timestamp: float, confidence: float, lat: Dict[str, float]) -> FrameResult:
        """A frame without a tracked face: the keys of every other result, values unknown."""
        nan = float("nan")
        lat["total"] = sum(lat.values())
        return FrameResult(index, timestamp, False, confidence, None,
                           au={n: nan for n in self.au_names}, au_present={n: None for n in self.au_names},
                           emotion={n: nan for n in self.emotion_names},
                           motion={m: nan for m in MOTION_SCORES},
                           spotting={n: nan for n in (self.spotter_model.labels if self.spotter_model else ())},
                           latency_ms=lat)

    def _new_reference(self, track: FaceTrack):
        """A track's reference (onset) changed: its learned spotter state and gate restart."""
        if self._spot is not None:
            self._hold_spot_state(track)
            self._spot.reset_state()
        if track.gate is not None:
            track.gate.reset()

    def use_fps(self, fps: float):
        """Frame rate of the stream to come (event durations and the lag are set in time)."""
        c = self.config
        c.fps = float(fps)
        self.spotter = self._interval_spotter()
        if self._gate_params is not None:  # its baseline spans a time, so a number of frames
            self.gate = ActionGate(self._gate_params, c.crop_size, c.fps)
        for track in self.tracks + self.lost:
            track.spotter = self._interval_spotter()
            track.gate = ActionGate(self._gate_params, c.crop_size, c.fps) if self._gate_params else None

    def _interval_spotter(self) -> IntervalSpotter:
        """A face's event detector, at the stream's frame rate."""
        c = self.config
        return IntervalSpotter(c.fps, k=c.spot_k, threshold=self.spot_threshold, min_ms=self.min_event_ms,
                               micro_max_ms=c.micro_max_ms, max_ms=max(c.macro_max_ms, c.micro_max_ms))

    def reset_track(self):
        """Drop the tracked faces (kept for re-identification): the next frame looks again."""
        for track in list(self.tracks):
            self._lose(track, None)

    def _reference(self, track: FaceTrack, gray: np.ndarray, timestamp: float) -> np.ndarray:
        """The onset image a track's crop is compared with (see PipelineConfig.reference)."""
        c = self.config
        if c.reference == "lag":
            track.history.append((timestamp, gray.copy()))
            while len(track.history) > 1 and timestamp - track.history[1][0] >= c.lag_ms / 1000:
                track.history.popleft()
            return track.history[0][1]
        if c.reference == "refresh" and track.calm_since is not None and \
                timestamp - track.calm_since >= c.refresh_ms / 1000:
            track.reference = gray.copy()
            self._new_reference(track)
            track.calm_since = timestamp
        return track.reference

    def stream(self, source, fps: Optional[float] = None) -> Iterator[FrameResult]:
        """Results for every frame of a source (anything FrameSource accepts, or a FrameSource)."""
        for _, result in self.stream_frames(source, fps):
            yield result

    def stream_frames(self, source, fps: Optional[float] = None) -> Iterator[Tuple[Frame, FrameResult]]:
        """(frame, result of its first face) for every frame of a source; see stream_faces."""
        for frame, results in self.stream_faces(source, fps):
            yield frame, results[0]

    def stream_faces(self, source, fps: Optional[float] = None) -> Iterator[Tuple[Frame, List[FrameResult]]]:
        """(frame, a result per tracked face) for every frame of a source, for callers that also
        need the picture. A source given as a FrameSource stays the caller's to close; one
        opened here is closed."""
        src = source if isinstance(source, FrameSource) else FrameSource(source, fps=fps)
        if src.fps:
            self.use_fps(src.fps)
        try:
            for frame in src:
                results = self.process_faces(frame.image, frame.index, frame.timestamp)
                if frame.wall_time is not None:
                    stamp = datetime.fromtimestamp(frame.wall_time, timezone.utc).isoformat(timespec="milliseconds")
                    for result in results:
                        result.timestamp_utc = stamp
                yield frame, results
        finally:
            if src is not source:
                src.close()
