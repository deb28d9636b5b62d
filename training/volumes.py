"""Frame stacks for the 3D-CNN (MicroExpSTCNN): each annotated clip's onset..offset frames,
sampled to a fixed count, the face aligned on every frame by the runtime's own kernels (MTCNN on
the onset frame, then template matching, kernels.align_crop), grey, resized.

Sources (frame folders as the sets distribute them; `microexp synth` writes the SAMM layout):
  samm    ROOT/SUBJECT/CLIP/SUBJECT_NNNNN.jpg and a samm.csv-style sheet (ROOT/samm.csv by default)
  casme2  ROOT/subNN/EPxx_xx/imgN.jpg and the CASME II coding sheet (.xlsx or CSV)
  smic    ROOT/sN/micro/EMOTION/CLIP/image######.jpg (no sheet: the whole clip)
Labels are MEGC's three classes (negative, positive, surprise) from each sheet's emotion; a
clip of another emotion ('Other', 'others') has none and is left out, counted in the report.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

LABELS = ("negative", "positive", "surprise")
NEGATIVE = {"anger", "contempt", "disgust", "fear", "sadness", "repression"}
FRAMES, SIZE = 18, 64  # the thesis' stack: 18 frames of 64 x 64 grey


def label_of(emotion: str) -> Optional[int]:
    """The MEGC class index of a sheet's emotion name, None for one outside the three classes."""
    e = (emotion or "").strip().lower()
    if e in NEGATIVE or e == "negative":
        return 0
    if e in ("happiness", "happy", "positive"):
        return 1
    if e in ("surprise", "surprised"):
        return 2
    return None


@dataclass
class ClipRef:
    subject: str
    name: str
    paths: List[Path]  # onset..offset frame files in order
    label: int


def sample_indices(count: int, frames: int = FRAMES) -> np.ndarray:
    """`frames` positions spread evenly over `count` frames, first and last included (frames
    repeat when the clip is shorter)."""
    return np.round(np.linspace(0, count - 1, frames)).astype(int)


def clip_volume(images: Sequence[np.ndarray], frames: int = FRAMES, size: int = SIZE,
                detector=None, name: str = "clip") -> np.ndarray:
    """(frames, size, size) uint8: the face found on the first image, tracked by template
    matching on the rest, each crop grey and resized. ValueError naming the clip when its first
    image shows no face."""
    from microexp import kernels
    from microexp.edge.detect import FaceDetector
    detector = detector or FaceDetector()
    picked = [images[i] for i in sample_indices(len(images), frames)]
    first = picked[0] if picked[0].ndim == 3 else cv2.cvtColor(picked[0], cv2.COLOR_GRAY2BGR)
    faces = detector.detect(first)
    if not faces:
        raise ValueError(f"{name}: no face on its onset frame")
    h, w = first.shape[:2]
    x1, y1, x2, y2 = faces[0].box
    box = (int(max(0, x1)), int(max(0, y1)), int(min(w, x2)), int(min(h, y2)))
    template = np.ascontiguousarray(first[box[1]:box[3], box[0]:box[2]])
    out = np.empty((frames, size, size), np.uint8)
    crop = np.empty((size, size, 3), np.uint8)
    for k, img in enumerate(picked):
        img = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        kernels.align_crop(np.ascontiguousarray(img), template, box, size=(size, size), out=crop)
        out[k] = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return out


def clip_refs(root, layout: str, sheet=None) -> List[ClipRef]:
    """The labelled clips of a set (see the module docstring), onset..offset frames each."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if layout in ("samm", "casme2"):
        if layout == "samm":
            from .datasets.samm import read_samm_csv as read
            from .datasets.samm import samm_clip_frames as on_disk
            from .datasets.samm import samm_frame_path as path
            sheet = Path(sheet) if sheet else root / "samm.csv"
        else:
            from .datasets.casme2 import casme2_clip_frames as on_disk
            from .datasets.casme2 import casme2_frame_path as path
            from .datasets.casme2 import read_casme2_sheet as read
            if sheet is None:
                raise ValueError("casme2: name the coding sheet (--sheet CASME2-coding.xlsx)")
            sheet = Path(sheet)
        if not sheet.is_file():
            raise FileNotFoundError(f"{root}: no {sheet.name} ({sheet}, the {layout} layout's sheet); name it with "
                                    "--sheet, or choose another --layout")
        refs = []
        for c in read(sheet):
            present = set(on_disk(root, c.subject, c.clip))
            frames = [f for f in range(c.onset, c.offset + 1) if f in present]
            refs.append(ClipRef(c.subject, c.clip, [path(root, c.subject, c.clip, f) for f in frames],
                                label_of(c.emotion)))
    elif layout == "smic":
        from .datasets.smic import scan_smic
        refs = [ClipRef(c.subject, c.clip, [c.frame_path(root, f) for f in c.frames], label_of(c.emotion))
                for c in scan_smic(root)]
    else:
        raise ValueError(f"layout must be 'samm', 'casme2' or 'smic', got {layout!r}")
    if not refs:
        raise ValueError(f"{root}: no clip found in the {layout} layout" + (f" with the sheet {sheet}" if sheet else ""))
    for r in refs:
        if not r.paths:
            warnings.warn(f"{r.subject}/{r.name}: none of its onset..offset frames is on disk; left out", stacklevel=2)
    return [r for r in refs if r.paths]


def build_volumes(roots: Sequence[str], layout: str, sheet=None, frames: int = FRAMES, size: int = SIZE,
                  progress: bool = False) -> Dict[str, object]:
    """Every labelled clip of the sets as a stack: {'volumes' (N, frames, size, size) uint8,
    'labels', 'subjects', 'names', 'left_out': {reason: count}}."""
    from microexp.edge.detect import FaceDetector
    detector = FaceDetector()
    volumes, labels, subjects, names = [], [], [], []
    left_out = {"no_class": 0, "no_face": 0}
    for root in roots:
        # Several sets: their subjects are told apart by the set's folder (two sets' '001' are
        # not one person, and one person must not be split across folds by another id either:
        # give each person one set).
        prefix = f"{Path(root).name}/" if len(roots) > 1 else ""
        for ref in clip_refs(root, layout, sheet):
            if ref.label is None:
                left_out["no_class"] += 1
                continue
            images = []
            for p in ref.paths:
                img = cv2.imread(str(p))
                if img is None:
                    raise ValueError(f"{p}: not a readable image")
                images.append(img)
            try:
                volumes.append(clip_volume(images, frames, size, detector, f"{ref.subject}/{ref.name}"))
            except ValueError as err:
                warnings.warn(f"{err}; left out", stacklevel=2)
                left_out["no_face"] += 1
                continue
            labels.append(ref.label)
            subjects.append(prefix + ref.subject)
            names.append(f"{prefix}{ref.subject}/{ref.name}")
            if progress:
                print(f"stacked {names[-1]}: {len(ref.paths)} frames -> {frames}", flush=True)
    if not volumes:
        raise ValueError(f"{', '.join(map(str, roots))}: no labelled clip with a face to stack")
    return {"volumes": np.stack(volumes), "labels": np.asarray(labels, np.int64), "subjects": np.asarray(subjects),
            "names": np.asarray(names), "left_out": left_out}
