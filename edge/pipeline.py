"""The per-frame pipeline: detect (reference frame and after tracking loss) -> align by
template matching (native kernels) -> optical flow against the reference crop -> motion and the
action gate -> encode into the models' inputs (native kernels) -> AU probabilities and
decisions, emotion, events.

    with Pipeline.from_defaults() as pipe:
        for result in pipe.stream("clip.mp4"):  # result.au: the reported AUs (pipe.au_names)
            print(result.frame, result.action, result.au.get("AU04"), result.au_present.get("AU04"))
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from microexp import kernels

from .action import ActionGate, GateParams
from .backends import open_model
from .config import DEFAULT_SPOTTER, MODELS, PipelineConfig  # noqa: F401  (part of this module's API)
from .detect import FaceDetector
from .flow import FlowEstimator, describe, flow_token
from .frames import as_bgr
from .sources import Frame, FrameSource
from .spotting import Event, IntervalSpotter, region_motion


@dataclass
class FrameResult:
    frame: int
    timestamp: float
    success: bool
    confidence: float  # NCC score of the alignment (1.0 on a detection frame), 0 when lost
    box: Optional[Tuple[int, int, int, int]]  # x1, y1, x2, y2
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
    latency_ms: Dict[str, float] = field(default_factory=dict)
    event: Optional[Event] = None


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
        spotter = self.spotter_model
        if spotter is not None and (spotter.task != "spotting" or not spotter.spec.state_size
                                    or "none" not in spotter.labels):
            raise ValueError(f"{spotter.path}: not a streaming spotting model (task {spotter.task!r}, "
                             f"state size {spotter.spec.state_size}, labels {list(spotter.labels)}); "
                             "the spotter needs one with a 'none' class")
        # The learned score's detector threshold: the config's, else the one the spotter model
        # was shipped with (chosen on a development set), else baseline + k * MAD.
        self.spot_threshold = c.spot_threshold
        if self.spot_threshold is None and c.spot_score == "learned":
            self.spot_threshold = spotter.spec.spot_threshold
        self.spotter = IntervalSpotter(c.fps, k=c.spot_k, threshold=self.spot_threshold)
        self._crop = np.empty((c.crop_size, c.crop_size, 3), np.uint8)
        self._gray = np.empty((c.crop_size, c.crop_size), np.uint8)
        self._hsv = np.empty((28, 28, 3), np.uint8)
        # Models bound to their own input/output buffers: the encoders write straight into them.
        self._au = self.au_model.bind() if self.au_model else None
        self._emotion = self.emotion_model.bind() if self.emotion_model else None
        self._spot = self.spotter_model.bind() if self.spotter_model else None
        self._uvs = np.empty((3, 28, 28), np.float32)
        self._flow = np.empty((c.crop_size, c.crop_size, 2), np.float32) if self.flow.writes_out_only else None
        self.reset()

    @classmethod
    def from_defaults(cls, **overrides) -> "Pipeline":
        return cls(PipelineConfig(**overrides))

    def reset(self):
        self.template = None
        self.tracked = None
        self.box = None
        self._frame_size = None  # (rows, cols) of the frames the track was made on
        self.reference = None
        self.landmarks28 = None
        self.history = deque()
        self.calm_since = None
        self.count = 0
        self._new_reference()

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
        than this pipeline computes: what it means and what to do, for the run's summary."""
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

    def _acquire(self, frame: np.ndarray) -> bool:
        faces = [f for f in self.detector.detect(frame) if f.score >= self.config.detect_score]
        if not faces:
            return False
        h, w = frame.shape[:2]
        f = self._choose(faces, w, h)
        x1, y1 = int(max(0, np.floor(f.box[0]))), int(max(0, np.floor(f.box[1])))
        x2, y2 = int(min(w, np.ceil(f.box[2]))), int(min(h, np.ceil(f.box[3])))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return False
        self.box = (x1, y1, x2, y2)
        self._frame_size = frame.shape[:2]
        self.template = np.ascontiguousarray(frame[y1:y2, x1:x2])
        # What align_crop searches with: the template prepared once for the pyramid search.
        self.tracked = kernels.TemplateMatcher(self.template) if self.config.match_mode == "pyramid" else self.template
        crop = cv2.resize(self.template, (self.config.crop_size, self.config.crop_size))
        self.reference = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        self.history.clear()
        self._new_reference()  # a new onset: the spotter and the gate start afresh
        # Landmarks on the 28x28 grid of the crop, for the emotion model's region composite.
        self.landmarks28 = (f.landmarks - [x1, y1]) / [x2 - x1, y2 - y1] * 28.0
        return True

    def _choose(self, faces, w: int, h: int):
        """The face to track among detections (largest first), by PipelineConfig.face."""
        c = self.config
        if c.face == "largest":
            return faces[0]
        if self.box is not None:  # re-acquiring: stay with the person whose track was lost
            target = ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)
        else:
            target = c.face_point() or (w / 2, h / 2)

        def rank(f):
            x1, y1, x2, y2 = f.box
            inside = x1 <= target[0] <= x2 and y1 <= target[1] <= y2
            return (not inside, (target[0] - (x1 + x2) / 2) ** 2 + (target[1] - (y1 + y2) / 2) ** 2)
        return min(faces, key=rank)

    def process(self, frame: np.ndarray, index: Optional[int] = None,
                timestamp: Optional[float] = None) -> FrameResult:
        c = self.config
        index = self.count if index is None else index
        timestamp = index / c.fps if timestamp is None else timestamp
        self.count += 1
        lat = {}
        t0 = time.perf_counter()
        frame = as_bgr(frame, "Pipeline")
        confidence = 1.0
        if c.stills:
            self.reset_track()
        if self.template is not None and frame.shape[:2] != self._frame_size:
            # A new frame size (a camera switching mode, a resized stream): the template and
            # box belong to the old one, so the face is detected afresh.
            self.reset_track()
            self.box = None
        fresh = self.template is None  # this frame starts a track: its flow is zero by construction
        if fresh:
            found = self._acquire(frame)
            lat["detect"] = (time.perf_counter() - t0) * 1e3
            if not found:
                return FrameResult(index, timestamp, False, 0.0, None, latency_ms=lat)
            crop = cv2.resize(self.template, (c.crop_size, c.crop_size))
        else:
            crop, box, confidence = kernels.align_crop(frame, self.tracked, self.box, margin=c.margin,
                                                       size=(c.crop_size, c.crop_size),
                                                       mode=c.match_mode, out=self._crop,
                                                       finest_level=c.track_level)
            lat["align"] = (time.perf_counter() - t0) * 1e3
            if confidence < c.track_threshold:
                t1 = time.perf_counter()
                self.reset_track()
                found = self._acquire(frame)
                lat["detect"] = (time.perf_counter() - t1) * 1e3
                if not found:
                    return FrameResult(index, timestamp, False, float(confidence), None, latency_ms=lat)
                crop, confidence, fresh = cv2.resize(self.template, (c.crop_size, c.crop_size)), 1.0, True
            else:
                self.box = tuple(int(v) for v in box)
        t1 = time.perf_counter()
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY, dst=self._gray)
        reference = self._reference(gray, timestamp)
        flow = self.flow(reference, gray, self._flow)
        lat["flow"] = (time.perf_counter() - t1) * 1e3
        result = FrameResult(index, timestamp, True, float(confidence), self.box)
        t2 = time.perf_counter()
        result.motion = region_motion(flow)
        lat["motion"] = (time.perf_counter() - t2) * 1e3
        action = 1.0  # what the outputs are conditioned on: P(action), or 1 without a gate
        if self.gate is not None:
            t2 = time.perf_counter()
            # A track's first frame is compared with itself: nothing has moved yet.
            action = 0.0 if fresh else self.gate(result.motion["motion_nonrigid"], self.box[2] - self.box[0])
            result.action = action
            result.action_present = self.gate.present(action)
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
                kernels.compose_regions(self._uvs, self.landmarks28, out=self._emotion.input[0])
            else:
                self._emotion.input[0] = self._uvs
            probs = _softmax(self._emotion()[0])
            if self.gate is not None:  # 'none' is the absence of facial action
                result.emotion = {"none": 1.0 - action, **{n: float(action * p) for n, p in
                                                            zip(self.emotion_model.labels, probs)}}
            else:
                result.emotion = {n: float(p) for n, p in zip(self.emotion_model.labels, probs)}
            lat["emotion_model"] = (time.perf_counter() - t3) * 1e3
        if self.spotter_model is not None:
            t3 = time.perf_counter()
            if uvs is not None:
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
        result.event = self.spotter.update(index, timestamp, score, result.au, result.emotion or None,
                                           result.action_present)
        if result.event is None and self.spotter.open is None:
            self.calm_since = timestamp if self.calm_since is None else self.calm_since
        else:
            self.calm_since = None
        lat["total"] = (time.perf_counter() - t0) * 1e3
        result.latency_ms = lat
        return result

    def _new_reference(self):
        """The reference (onset) changed: the spotter's state and the gate's noise floor restart."""
        if self._spot is not None:
            self._spot.reset_state()
        if self.gate is not None:
            self.gate.reset()

    def use_fps(self, fps: float):
        """Frame rate of the stream to come (event durations and the lag are set in time)."""
        self.config.fps = float(fps)
        self.spotter = IntervalSpotter(self.config.fps, k=self.config.spot_k, threshold=self.spot_threshold)
        if self._gate_params is not None:  # its baseline spans a time, so a number of frames
            self.gate = ActionGate(self._gate_params, self.config.crop_size, self.config.fps)

    def reset_track(self):
        self.template = None
        self.tracked = None
        self.reference = None
        self._new_reference()

    def _reference(self, gray: np.ndarray, timestamp: float) -> np.ndarray:
        """The onset image the current crop is compared with (see PipelineConfig.reference)."""
        c = self.config
        if c.reference == "lag":
            self.history.append((timestamp, gray.copy()))
            while len(self.history) > 1 and timestamp - self.history[1][0] >= c.lag_ms / 1000:
                self.history.popleft()
            return self.history[0][1]
        if c.reference == "refresh" and self.calm_since is not None and \
                timestamp - self.calm_since >= c.refresh_ms / 1000:
            self.reference = gray.copy()
            self._new_reference()
            self.calm_since = timestamp
        return self.reference

    def stream(self, source, fps: Optional[float] = None) -> Iterator[FrameResult]:
        """Results for every frame of a source (anything FrameSource accepts, or a FrameSource)."""
        for _, result in self.stream_frames(source, fps):
            yield result

    def stream_frames(self, source, fps: Optional[float] = None) -> Iterator[Tuple[Frame, FrameResult]]:
        """(frame, result) for every frame of a source, for callers that also need the picture.
        A source given as a FrameSource stays the caller's to close; one opened here is closed."""
        src = source if isinstance(source, FrameSource) else FrameSource(source, fps=fps)
        if src.fps:
            self.use_fps(src.fps)
        try:
            for frame in src:
                yield frame, self.process(frame.image, frame.index, frame.timestamp)
        finally:
            if src is not source:
                src.close()
