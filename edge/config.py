"""What a Pipeline is configured with, and the defaults that follow from a choice: the fast
flow mode brings its crop size and tracking level unless they are given (so the library and
`microexp run --flow farneback-fast` analyse the same way)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from .backends import BACKENDS
from .flow import FAST_CROP, FAST_TRACK_LEVEL, METHODS
from .trt import PRECISIONS

MODELS = Path(__file__).parent / "models"
# The learned spotter shipped for --spotter-model / --spot-score learned (docs/synth.md).
DEFAULT_SPOTTER = MODELS / "spotter.onnx"
# The AU-aware graph spotter (none / macro / micro per frame on region flow features), trained
# on generated long clips at 30 fps (docs/spotting.md).
DEFAULT_GRAPH_SPOTTER = MODELS / "graph_spotter.onnx"
# What `--spotter` names: which score drives the event detector and the model behind it.
SPOTTERS = {"motion": {"spot_score": "motion_local"},
            "cnn-lstm": {"spot_score": "learned", "spotter_model": str(DEFAULT_SPOTTER)},
            "graph": {"spot_score": "learned", "spotter_model": str(DEFAULT_GRAPH_SPOTTER)}}
# The shipped action gate: P(facial action) per frame from absolute motion against the face's
# own noise floor (action.py), fitted on calibration clips (training/action_fit.py).
DEFAULT_GATE = MODELS / "action_gate.json"
# What `microexp run` analyses when given no source: a generated clip with its annotation sheet.
SAMPLE_CLIP = Path(__file__).parent / "samples" / "sample_clip.mp4"
REFERENCE_MODES = ("fixed", "lag", "refresh")
SPOT_SCORES = ("motion", "motion_upper", "motion_lower", "motion_local", "learned")
DEFAULT_CROP = 224


@dataclass
class PipelineConfig:
    au_model: Optional[str] = str(MODELS / "au_edge.onnx")
    emotion_model: Optional[str] = str(MODELS / "emotion_edge.onnx")
    # Gates the AU and emotion outputs by P(facial action): no action, no AU present and
    # emotion 'none'. None: the models' raw outputs, unconditioned (and no 'action' column).
    action_gate: Optional[str] = str(DEFAULT_GATE)
    # Every frame on its own (a folder of unrelated photos): each starts a new track, so nothing
    # is compared across frames (a photo has no motion: no action, no AU present).
    stills: bool = False
    # Report every AU the model outputs, not only those whose measured quality passes the bar in
    # its metadata (the others are experimental: model_info.json lists them).
    all_aus: bool = False
    flow: str = "farneback"
    # The aligned crop's side in px; None: 224, or FAST_CROP (152) for the fast flow mode.
    crop_size: Optional[int] = None
    margin: int = 40
    match_mode: str = "pyramid"
    # Pyramid level the tracking stops at: 0 full resolution, 1 half (faster); None: 0, or
    # FAST_TRACK_LEVEL (1) for the fast flow mode.
    track_level: Optional[int] = None
    track_threshold: float = 0.5  # NCC score below which the face is re-detected
    reference: str = "fixed"  # 'fixed' | 'lag' | 'refresh'
    lag_ms: float = 150.0  # 'lag': the reference is the frame this long ago
    refresh_ms: float = 1000.0  # 'refresh': new reference after this long without an event
    fps: float = 200.0  # used when the caller gives no timestamps
    min_face: int = 40
    # MTCNN's last stage passes candidates from 0.7; face-like texture gets there (0.73 on
    # lettering in a no-face video), real faces score >= 0.94 (docs/runtime.md). A track starts
    # only from a detection at this score or above.
    detect_score: float = 0.9
    # Which face is tracked: 'largest'; 'central' (nearest the frame centre, e.g. a kiosk's
    # user); or 'X,Y', the face at (nearest) that pixel of the first frame. Unless 'largest',
    # re-detection after a tracking loss takes the face nearest where the track was lost, so
    # the chosen person is followed.
    face: str = "largest"
    # How many faces are tracked at once, each with its own face_id, reference, action gate,
    # spotter and events (the order they are taken in: `face`). While fewer are tracked, a cheap
    # look for newcomers runs every scan_interval_ms (faces of idle_min_face px and up). A lost
    # face found again within forget_s, where it was or looking the same, gets its id back.
    faces: int = 4
    scan_interval_ms: float = 1000.0
    forget_s: float = 30.0
    # The idle state, for devices that wait for someone: after a look for a face found none, the
    # next looks are cheap (a copy of the frame shrunk so that a face of idle_min_face px is
    # MTCNN's smallest, 12 px; the face found is then detected once more at full resolution
    # around it, so the track starts from a full-resolution box) and spaced: one per
    # idle_interval_ms slot of source time when the picture changed (mean change of a thumbnail
    # above idle_change grey levels), else one per idle_max_interval_ms slot. The slots are fixed
    # on the source's clock, not counted from the last look. Someone stepping into view changes the picture, so
    # they are found within about idle_interval_ms. Faces under idle_min_face px are not looked
    # for while idle (set it to min_face to look for every face, at the full cost).
    idle_min_face: int = 80
    # For this long after the last face, the cheap looks run on every frame (a face hidden for a
    # moment, a head turned away, is found at once); after it, they are spaced as below.
    idle_after_ms: float = 500.0
    idle_interval_ms: float = 150.0
    idle_max_interval_ms: float = 1000.0
    idle_change: float = 2.0
    threads: int = 1
    # Where the AU, emotion and spotter models run (backends.BACKENDS): 'auto' is native TensorRT
    # where the tensorrt package and an NVIDIA driver are present, else ONNX Runtime. Face
    # detection (MTCNN, reference frames only) stays on ONNX Runtime's CPU provider.
    backend: str = "auto"
    trt_precision: str = "fp32"  # native TensorRT engines: 'fp32' | 'fp16' | 'int8'
    engine_cache: Optional[str] = None  # native TensorRT engines' folder (default: ~/.cache/microexp/engines)
    spot_k: float = 9.0  # chosen on a synthetic development set (seed 11), see docs/synth.md
    spot_score: str = "motion_local"  # which score drives the interval detector ('learned': the spotter model's)
    # A streaming spotting model (one step per frame with its (h, c) state), e.g. the shipped
    # DEFAULT_SPOTTER: per-frame probabilities in FrameResult.spotting. Off by default; the
    # shipped one when spot_score is 'learned'.
    spotter_model: Optional[str] = None
    spot_threshold: Optional[float] = None  # a fixed score threshold for the detector instead of baseline + k * MAD
    # Event kinds: an interval of at most micro_max_ms is a micro-expression (MEGC: 500 ms), a
    # longer one up to macro_max_ms a macro-expression (the long-video sets' go to about 4 s);
    # longer ones are dropped. macro_max_ms <= micro_max_ms reports micro-expressions only; a
    # shortest event (min_event_ms) above micro_max_ms, macro-expressions only.
    micro_max_ms: float = 500.0
    macro_max_ms: float = 4000.0
    # The shortest event reported: the config's, else the learned spotter model's (spot_min_ms,
    # chosen on a development set with its threshold), else 40 ms.
    min_event_ms: Optional[float] = None
    # Hand out each frame's uvs28 map (what the spotter model steps on) in FrameResult.uvs28:
    # a copy per frame, so off by default; the learned spotter's training data is made with it.
    return_uvs28: bool = False
    # The same for the hsv28 map the AU model reads (FrameResult.hsv28, (3, 28, 28) B, G, R 0..255):
    # training data for the AU model as the runtime encodes it.
    return_hsv28: bool = False
    # The same for the twelve facial regions' flow features (kernels.region_flow on the crop,
    # regions placed from the landmarks, edge/face_regions.py): FrameResult.regions (12, 4), what
    # the graph spotter steps on; its training data is made with it.
    return_regions: bool = False

    def __post_init__(self):
        if self.flow not in METHODS:
            raise ValueError(f"PipelineConfig: flow must be one of {METHODS}, got {self.flow!r}")
        fast = self.flow == "farneback-fast"
        if self.crop_size is None:
            self.crop_size = FAST_CROP if fast else DEFAULT_CROP
        if self.track_level is None:
            self.track_level = FAST_TRACK_LEVEL if fast else 0
        if self.backend not in BACKENDS:
            raise ValueError(f"PipelineConfig: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.trt_precision not in PRECISIONS:
            raise ValueError(f"PipelineConfig: trt_precision must be one of {PRECISIONS}, got {self.trt_precision!r}")
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"PipelineConfig: reference must be one of {REFERENCE_MODES}, got {self.reference!r}")
        if self.spot_score not in SPOT_SCORES:
            raise ValueError(f"PipelineConfig: spot_score {self.spot_score!r} is neither a motion score nor 'learned'")
        if self.spot_score == "learned" and not self.spotter_model:
            self.spotter_model = str(DEFAULT_SPOTTER)
        self.face_point()  # validates
        if self.min_event_ms is not None and not 0 < self.min_event_ms:
            raise ValueError(f"PipelineConfig: min_event_ms must be positive, got {self.min_event_ms!r}")
        if not 0 < self.micro_max_ms:
            raise ValueError(f"PipelineConfig: micro_max_ms must be positive, got {self.micro_max_ms!r}")
        if not 0.0 <= self.detect_score <= 1.0:
            raise ValueError(f"PipelineConfig: detect_score must be within 0..1, got {self.detect_score!r}")
        if self.crop_size < 28:
            raise ValueError(f"PipelineConfig: crop_size must be >= 28, got {self.crop_size}")
        if self.track_level not in range(5):
            raise ValueError(f"PipelineConfig: track_level must be 0 to 4, got {self.track_level!r}")
        if self.faces < 1:
            raise ValueError(f"PipelineConfig: faces must be >= 1, got {self.faces!r}")
        if self.idle_min_face < 12:
            raise ValueError(f"PipelineConfig: idle_min_face must be >= 12 px (MTCNN's smallest), got {self.idle_min_face!r}")
        if not 0 <= self.idle_interval_ms <= self.idle_max_interval_ms:
            raise ValueError(f"PipelineConfig: need 0 <= idle_interval_ms <= idle_max_interval_ms, got "
                             f"{self.idle_interval_ms!r} and {self.idle_max_interval_ms!r}")
        if self.track_level and self.match_mode != "pyramid":
            raise ValueError(f"PipelineConfig: track_level > 0 needs match_mode 'pyramid', got {self.match_mode!r}")

    def face_point(self) -> Optional[Tuple[float, float]]:
        """(x, y) of a face given as 'X,Y'; None for 'largest' and 'central'."""
        if self.face in ("largest", "central"):
            return None
        try:
            x, y = (float(v) for v in self.face.split(","))
        except ValueError:
            raise ValueError(f"PipelineConfig: face must be 'largest', 'central' or 'X,Y' pixel "
                             f"coordinates, got {self.face!r}") from None
        return x, y


