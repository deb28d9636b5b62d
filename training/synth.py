"""Synthetic micro-expression sequences planted into real face photos, with ground truth.

Each AU is a smooth displacement field (sums of Gaussian bumps) placed relative to the five
MTCNN landmarks, in units of the inter-ocular distance d, moving the way the muscle moves the
skin (FACS): brows up for AU1/AU2, brows down and together for AU4, cheeks up for AU6, lower
lids up for AU7, mouth corners up and out for AU12, sideways for AU14, down for AU15, chin up
for AU17, lower lip and jaw down for AU25/AU26, upper lids down for AU43.

A clip is rendered by backward warping the photo: frame_t(x) = photo(x - D_t(x)), where D_t is
the planted expression (an onset -> apex -> offset profile times the AU fields, scaled by the
intensity A..E) plus head jitter (a slow mean-reverting wander of translation and rotation) plus blinks.
Sensor noise and illumination flicker change intensities only. The ground-truth flow from the
clip's first frame to frame t solves F(p) = D_t(p + F(p)) (fixed-point iteration).

Outputs use the SAMM layout (SUBJECT/CLIP/SUBJECT_FRAME.jpg, 5-digit frames), a samm.csv-style
sheet (';'), set.json (frame rate, seed, every clip's blinks), and flows.npz per clip (ground
truth at 1/4 resolution, float16, in pixels of the full frame). Everything is deterministic from
the seed.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

INTENSITY = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}
# AU -> bumps: (anchor, offset in the face frame (x along the eyes, y down) in units of d,
# sigma in d, direction in the face frame, amplitude at intensity E in d).
# Anchors: 'le', 're' eyes, 'nose', 'lm', 'rm' mouth corners, 'mc' mouth centre.
AU_FIELDS: Dict[int, List[tuple]] = {
    1: [("le", (0.22, -0.42), 0.14, (0.0, -1.0), 0.07), ("re", (-0.22, -0.42), 0.14, (0.0, -1.0), 0.07)],
    2: [("le", (-0.25, -0.40), 0.15, (0.0, -1.0), 0.07), ("re", (0.25, -0.40), 0.15, (0.0, -1.0), 0.07)],
    4: [("le", (0.20, -0.38), 0.14, (0.5, 0.85), 0.06), ("re", (-0.20, -0.38), 0.14, (-0.5, 0.85), 0.06)],
    6: [("le", (0.0, 0.42), 0.18, (0.0, -1.0), 0.05), ("re", (0.0, 0.42), 0.18, (0.0, -1.0), 0.05)],
    7: [("le", (0.0, 0.12), 0.08, (0.0, -1.0), 0.035), ("re", (0.0, 0.12), 0.08, (0.0, -1.0), 0.035)],
    12: [("lm", (0.0, 0.0), 0.13, (-0.6, -0.8), 0.09), ("rm", (0.0, 0.0), 0.13, (0.6, -0.8), 0.09)],
    14: [("lm", (0.03, 0.0), 0.10, (-1.0, 0.0), 0.05), ("rm", (-0.03, 0.0), 0.10, (1.0, 0.0), 0.05)],
    15: [("lm", (0.0, 0.03), 0.12, (0.0, 1.0), 0.06), ("rm", (0.0, 0.03), 0.12, (0.0, 1.0), 0.06)],
    17: [("mc", (0.0, 0.45), 0.18, (0.0, -1.0), 0.06)],
    25: [("mc", (0.0, 0.12), 0.10, (0.0, 1.0), 0.05)],
    26: [("mc", (0.0, 0.35), 0.30, (0.0, 1.0), 0.08)],
    43: [("le", (0.0, -0.08), 0.09, (0.0, 1.0), 0.06), ("re", (0.0, -0.08), 0.09, (0.0, 1.0), 0.06)],
}
EMOTION_OF = [((6, 12), "Happiness"), ((12,), "Happiness"), ((1, 2), "Surprise"), ((26,), "Surprise"),
              ((4, 7), "Anger"), ((4,), "Anger"), ((14,), "Contempt"), ((15,), "Sadness"),
              ((17,), "Sadness"), ((43,), "Other"), ((1,), "Sadness"), ((2,), "Surprise"),
              ((6,), "Happiness"), ((7,), "Anger"), ((25,), "Surprise")]
OBJECTIVE_CLASS = {"Anger": 1, "Contempt": 2, "Happiness": 3, "Surprise": 4, "Sadness": 5, "Fear": 6, "Disgust": 7, "Other": 7}


def emotion_for(aus: Sequence[int]) -> str:
    s = set(aus)
    for need, name in EMOTION_OF:
        if set(need) <= s:
            return name
    return "Other"


def face_frame(landmarks: np.ndarray):
    """(anchors dict, d, x axis, y axis) from five (x, y) landmarks."""
    le, re, nose, lm, rm = (np.asarray(p, np.float64) for p in landmarks)
    d = float(np.linalg.norm(re - le))
    if d < 4:
        raise ValueError(f"synth: the eyes are {d:.1f} px apart; landmarks look wrong")
    ex = (re - le) / d
    ey = np.array([-ex[1], ex[0]])
    return {"le": le, "re": re, "nose": nose, "lm": lm, "rm": rm, "mc": (lm + rm) / 2}, d, ex, ey


def au_field(au: int, landmarks: np.ndarray, shape: Tuple[int, int], grid=None) -> np.ndarray:
    """Displacement (H, W, 2) in pixels of one AU at intensity E."""
    if au not in AU_FIELDS:
        raise ValueError(f"synth: AU{au} has no displacement field (have {sorted(AU_FIELDS)})")
    anchors, d, ex, ey = face_frame(landmarks)
    yy, xx = grid if grid is not None else np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    out = np.zeros(shape + (2,), np.float32)
    for anchor, (ox, oy), sigma, (dx, dy), amp in AU_FIELDS[au]:
        c = anchors[anchor] + d * (ox * ex + oy * ey)
        direction = dx * ex + dy * ey
        g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * (sigma * d) ** 2))
        out[..., 0] += amp * d * direction[0] * g
        out[..., 1] += amp * d * direction[1] * g
    return out


def profile(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """0 outside [onset, offset]; raised-cosine rise to 1 at apex and fall back to 0."""
    t = np.arange(n, dtype=np.float64)
    p = np.zeros(n)
    rise = (t >= onset) & (t <= apex)
    fall = (t > apex) & (t <= offset)
    p[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / max(apex - onset, 1))
    p[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / max(offset - apex, 1))
    return p


KINDS = ("micro", "macro", "mixed")
MACRO_GAIN = 2.0  # a mixed set's macro-expressions move the face this many times further


@dataclass
class PlantedEvent:
    aus: Dict[int, str]  # AU -> intensity letter
    onset: int
    apex: int
    offset: int
    kind: str = "micro"  # 'micro' or 'macro' (the sheet's Micro column)
    gain: float = 1.0  # displacement multiplier on top of the intensity letters

    @property
    def au_text(self) -> str:
        return "+".join(f"{au}{grade}" for au, grade in sorted(self.aus.items()))


@dataclass
class ClipSpec:
    frames: int = 200
    fps: float = 200.0
    events: List[PlantedEvent] = field(default_factory=list)
    jitter_px: float = 0.3  # head translation: standard deviation of a slow mean-reverting wander
    jitter_deg: float = 0.15  # head rotation, same process
    jitter_s: float = 0.5  # its correlation time
    noise: float = 2.0  # sensor noise, grey levels
    flicker: float = 0.01  # relative illumination flicker
    blinks: List[int] = field(default_factory=list)  # frames where a blink starts
    size: Optional[Tuple[int, int]] = None  # (width, height) of the frames; default: the photo's


def _rigid(shape, dx, dy, deg, centre):
    """Displacement field of a small rotation about `centre` plus a translation."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    a = np.deg2rad(deg)
    rx, ry = xx - centre[0], yy - centre[1]
    ux = (np.cos(a) - 1) * rx - np.sin(a) * ry + dx
    uy = np.sin(a) * rx + (np.cos(a) - 1) * ry + dy
    return np.dstack([ux, uy]).astype(np.float32)


def render_clip(photo: np.ndarray, landmarks: np.ndarray, spec: ClipSpec, seed: int = 0):
    """Frames (list of uint8 BGR), ground-truth flow (T, H/4, W/4, 2) float16 from frame 0."""
    rng = np.random.default_rng(seed)
    if spec.size is not None:
        sx, sy = spec.size[0] / photo.shape[1], spec.size[1] / photo.shape[0]
        photo = cv2.resize(photo, spec.size, interpolation=cv2.INTER_AREA)
        landmarks = np.asarray(landmarks, np.float64) * [sx, sy]
    h, w = photo.shape[:2]
    grid = np.mgrid[0:h, 0:w].astype(np.float32)
    fields = {}
    # Per-frame scalar weights of each AU field (sum over events), then the rigid jitter.
    weights: Dict[int, np.ndarray] = {}
    for ev in spec.events:
        p = profile(spec.frames, ev.onset, ev.apex, ev.offset)
        for au, grade in ev.aus.items():
            weights.setdefault(au, np.zeros(spec.frames))
            weights[au] += p * INTENSITY[grade] * ev.gain
    blink_w = np.zeros(spec.frames)
    blink_len = max(3, int(round(0.12 * spec.fps)))  # a blink lasts about 120 ms
    for b in spec.blinks:
        blink_w += profile(spec.frames, b, b + blink_len // 2, b + blink_len)
    if blink_w.any():
        weights[43] = weights.get(43, np.zeros(spec.frames)) + blink_w
    for au in weights:
        fields[au] = au_field(au, landmarks, (h, w), grid)
    # Head wander: an Ornstein-Uhlenbeck process (bounded, unlike a random walk), 0 at frame 0.
    rho = np.exp(-1.0 / max(spec.jitter_s * spec.fps, 1.0))
    sigma = np.array([spec.jitter_px, spec.jitter_px, spec.jitter_deg])
    walk = np.zeros((spec.frames, 3))
    for t in range(1, spec.frames):
        walk[t] = rho * walk[t - 1] + sigma * np.sqrt(1 - rho ** 2) * rng.normal(0, 1, 3)
    centre = np.asarray(landmarks, np.float64)[2]
    frames, flows = [], []
    yy, xx = grid
    for t in range(spec.frames):
        disp = _rigid((h, w), walk[t, 0], walk[t, 1], walk[t, 2], centre)
        for au, wt in weights.items():
            if wt[t]:
                disp += fields[au] * np.float32(wt[t])
        frame = cv2.remap(photo, xx - disp[..., 0], yy - disp[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
        gain = 1.0 + spec.flicker * np.sin(2 * np.pi * t / max(spec.fps / 7.0, 1)) * rng.uniform(0.5, 1)
        frame = np.clip(frame.astype(np.float32) * gain + rng.normal(0, spec.noise, frame.shape), 0, 255)
        frames.append(frame.astype(np.uint8))
        # Ground-truth flow from frame 0 (identity warp) to frame t: F(p) = D(p + F(p)).
        f = disp.copy()
        for _ in range(3):
            f = np.dstack([cv2.remap(disp[..., k], xx + f[..., 0], yy + f[..., 1], cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE) for k in range(2)])
        flows.append(cv2.resize(f, (w // 4, h // 4), interpolation=cv2.INTER_AREA).astype(np.float16))
    return frames, np.stack(flows)


def random_events(rng, frames: int, fps: float, count: int, micro: bool = True,
                  kind: Optional[str] = None) -> List[PlantedEvent]:
    """`count` non-overlapping events with random AU combinations, intensities and durations,
    apex at 30-60% of each event. `kind` 'micro': 150-500 ms; 'macro': 0.6-2 s; 'mixed' (long
    clips with both, as in CAS(ME)^2 and SAMM Long Videos): each event a micro-expression
    (150-500 ms) or, with even odds, a macro-expression (0.5-4 s, longer than 500 ms, moving
    MACRO_GAIN times further), 1-3 s apart. Without `kind`, `micro` picks micro or macro."""
    kind = kind or ("micro" if micro else "macro")
    if kind not in KINDS:
        raise ValueError(f"synth: kind must be one of {KINDS}, got {kind!r}")
    combos = [(12,), (6, 12), (1, 2), (4,), (4, 7), (14,), (15,), (17,), (15, 17), (1, 2, 26), (25, 26), (7,)]
    events: List[PlantedEvent] = []
    start = int(0.1 * frames)
    micro_frames = int(round(0.5 * fps))
    for _ in range(count):
        this = kind if kind != "mixed" else ("macro" if rng.random() < 0.5 else "micro")
        if this == "micro":
            length = min(int(rng.uniform(0.15, 0.5) * fps), micro_frames)
        else:
            lo, hi = (0.5, 4.0) if kind == "mixed" else (0.6, 2.0)
            length = max(int(rng.uniform(lo, hi) * fps), micro_frames + 1)
        if start + length >= frames - int(0.05 * frames):
            break
        combo = combos[rng.integers(len(combos))]
        grades = "BCDE"
        aus = {au: grades[rng.integers(len(grades))] for au in combo}
        apex = start + int(length * rng.uniform(0.3, 0.6))
        gain = MACRO_GAIN if kind == "mixed" and this == "macro" else 1.0
        events.append(PlantedEvent(aus, start, apex, start + length - 1, this, gain))
        gap = rng.uniform(1.0, 3.0) if kind == "mixed" else rng.uniform(0.3, 0.8)
        start += length + int(gap * fps)
    return events


def write_video(path: Path, frames, fps: float) -> Path:
    """The frames as an MPEG-4 file (written to a temporary name, then renamed)."""
    h, w = frames[0].shape[:2]
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"synth: OpenCV cannot write {path} (no mp4v encoder)")
    for f in frames:
        writer.write(f)
    writer.release()
    tmp.replace(path)
    return path


def write_clip(root: Path, subject: str, clip: str, frames, flows, spec: ClipSpec, first_frame: int = 1,
               video: bool = False):
    if video:
        (root / subject).mkdir(parents=True, exist_ok=True)
        write_video(root / subject / f"{clip}.mp4", frames, spec.fps)
    folder = root / subject / clip
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{subject}_{first_frame + i:05d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 95])
    tmp = folder / "flows.tmp.npz"
    np.savez_compressed(tmp, flow=flows, scale=np.float32(4.0), first_frame=np.int64(first_frame))
    tmp.replace(folder / "flows.npz")


SHEET_COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
                 "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]


def generate(photos: Sequence[Tuple[np.ndarray, np.ndarray]], out: Path, clips_per_photo: int = 2,
             frames: int = 200, fps: float = 200.0, events_per_clip: int = 2, seed: int = 0,
             size: Optional[Tuple[int, int]] = None, micro: bool = True, video: bool = False,
             blinks: bool = True, kind: Optional[str] = None) -> Path:
    """Each (photo, landmarks) is a subject; writes the SAMM layout and samm.csv under `out`.
    `events_per_clip` 0 and `blinks` False make still faces: only head wander and sensor noise.
    `kind` (random_events) overrides `micro`; each event's row says whether it is micro or macro."""
    kind = kind or ("micro" if micro else "macro")
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, blinks_of = [], {}
    for s, (photo, landmarks) in enumerate(photos):
        subject = f"{s + 1:03d}"
        for c in range(clips_per_photo):
            clip = f"{subject}_{c + 1}_1"
            events = random_events(rng, frames, fps, events_per_clip, kind=kind)
            blink_at = [int(rng.uniform(0.05, 0.95) * frames)] if rng.random() < 0.5 else []
            # keep blinks clear of planted events, so that events stay the only expressions
            blink_at = [b for b in blink_at if blinks and all(b + 0.15 * fps < e.onset or b > e.offset for e in events)]
            spec = ClipSpec(frames=frames, fps=fps, events=events, blinks=blink_at, size=size)
            imgs, flows = render_clip(photo, landmarks, spec, seed=int(rng.integers(1 << 31)))
            write_clip(out, subject, clip, imgs, flows, spec, video=video)
            blinks_of[f"{subject}/{clip}"] = [b + 1 for b in blink_at]
            for e in events:
                emotion = emotion_for(e.aus)
                rows.append({"Subject": subject, "Filename": clip, "Inducement Code": 0,
                             "Onset Frame": e.onset + 1, "Apex Frame": e.apex + 1, "Offset Frame": e.offset + 1,
                             "Duration": e.offset - e.onset + 1, "Micro": "Micro - 1/2" if e.kind == "micro" else "Macro",
                             "Action Units": e.au_text, "Estimated Emotion": emotion,
                             "Objective Classes": OBJECTIVE_CLASS[emotion],
                             "Notes": json.dumps({"synthetic": True, "seed": seed, "blinks": [b + 1 for b in blink_at]})})
    tmp = out / "samm.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SHEET_COLUMNS, delimiter=";")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "samm.csv")
    # What the sheet does not say: the frame rate, and every clip's blinks (1-based start
    # frames), clips without events included (the sheet has rows for events only).
    tmp = out / "set.json.tmp"
    tmp.write_text(json.dumps({"fps": fps, "frames": frames, "seed": seed, "micro": kind == "micro", "kind": kind,
                              "blinks": blinks_of},
                              indent=1))
    tmp.replace(out / "set.json")
    return out


PHOTOS = Path(__file__).parent / "faces"


def load_photos(paths, landmarks_json=None):
    """[(photo, landmarks)] with landmarks from our MTCNN unless `landmarks_json` (a JSON file
    {photo: [[x, y] x 5]}) names them."""
    from microexp.edge.detect import FaceDetector
    given = json.loads(Path(landmarks_json).read_text()) if landmarks_json else {}
    detector = None
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is None:
            raise ValueError(f"synth: cannot read photo {p}")
        if str(p) in given or Path(p).name in given:
            lm = np.asarray(given.get(str(p), given.get(Path(p).name)), np.float64)
        else:
            detector = detector or FaceDetector()
            faces = detector.detect(img)
            if not faces:
                raise ValueError(f"synth: no face found in {p}; pass its landmarks with --landmarks")
            lm = faces[0].landmarks
        out.append((img, lm))
    return out
