"""Training sequences for the learned spotter exactly as the runtime feeds it: every frame of
generated clips (training/synth.py) run through the Pipeline, the frame's uvs28 map kept
(PipelineConfig.return_uvs28), and labelled from the clip's samm.csv-style sheet.

The maps of training/sequences.py are real onset->apex maps scaled in time; the runtime's
maps differ from those in a way a model notices: each frame is min-max normalised on its own,
so a calm frame's residual flow (head wander, sensor noise) fills the whole 0..255 range.
A spotter has to learn that contrast from the runtime's own maps.

Per-frame targets: 0 no expression, 1 + class (negative, positive, surprise) inside an
annotated [onset, offset], EXPRESSION for an event whose emotion has no class (an 'Other'
event: the frame is part of an expression but which one is unknown), IGNORE where the
pipeline had no face (the runtime takes no spotter step there).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from .datasets.samm import read_samm_csv

IGNORE = -1
EXPRESSION = -2  # inside an event of unknown class: counts against 'none' only
# MEGC2019's three classes from SAMM-style emotion names (Contempt, Disgust, Fear, Anger and
# Sadness are 'negative'; CASME II's Repression too).
EMOTION_CLASS = {"Anger": 1, "Contempt": 1, "Disgust": 1, "Fear": 1, "Sadness": 1, "Repression": 1,
                 "Happiness": 2, "Surprise": 3}


@dataclass
class RuntimeSequence:
    name: str  # SUBJECT/CLIP
    maps: np.ndarray  # (T, 3, 28, 28) float32 0..255, zeros where the pipeline had no face
    targets: np.ndarray  # (T,) int64, see the module docstring


def frame_targets(length: int, events: Sequence[tuple]) -> np.ndarray:
    """(length,) targets from [(onset, offset, emotion)] with 0-based inclusive frames."""
    y = np.zeros(length, np.int64)
    for onset, offset, emotion in events:
        y[max(onset, 0):min(offset, length - 1) + 1] = EMOTION_CLASS.get(emotion, EXPRESSION)
    return y


def encode_set(root, fps: float = 200.0, progress: bool = False, **config) -> List[RuntimeSequence]:
    """Every clip of a generated set (SAMM layout, samm.csv beside) as the runtime encodes it.
    `config` overrides PipelineConfig fields (flow, crop_size, track_level, ...)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    root = Path(root)
    sheet = root / "samm.csv"
    if not sheet.is_file():
        raise FileNotFoundError(f"{root}: no samm.csv; expected a set written by `microexp synth`")
    events: Dict[tuple, list] = {}
    for clip in read_samm_csv(sheet):
        # the sheet's frame numbers are 1-based within the clip folder
        events.setdefault((clip.subject, clip.clip), []).append((clip.onset - 1, clip.offset - 1, clip.emotion))
    folders = sorted(p for p in root.glob("*/*") if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{root}: no SUBJECT/CLIP folders")
    out = []
    for folder in folders:
        pipe = Pipeline(PipelineConfig(au_model=None, emotion_model=None, fps=fps, return_uvs28=True, **config))
        maps, found = [], []
        for r in pipe.stream(folder, fps=fps):
            maps.append(r.uvs28 if r.success else np.zeros((3, 28, 28), np.float32))
            found.append(r.success)
        y = frame_targets(len(maps), events.get((folder.parent.name, folder.name), []))
        y[~np.asarray(found, bool)] = IGNORE
        out.append(RuntimeSequence(f"{folder.parent.name}/{folder.name}", np.stack(maps), y))
        if progress:
            print(f"encoded {out[-1].name}: {len(maps)} frames, {int((y > 0).sum() + (y == EXPRESSION).sum())} "
                  f"inside events", flush=True)
    return out


def mirror(maps: np.ndarray) -> np.ndarray:
    """The maps of the horizontally mirrored face: columns reversed and u negated. With u
    min-max normalised per frame, -u normalises to 255 - u; v and strain only move."""
    out = maps[..., ::-1].copy()
    out[..., 0, :, :] = 255.0 - out[..., 0, :, :]
    return out


def sample_windows(seqs: Sequence[RuntimeSequence], count: int, length: int,
                   rng: np.random.Generator, flip: bool = True, start_fraction: float = 0.25):
    """`count` windows of `length` frames: (maps (N, T, 3, 28, 28), targets (N, T)).

    A quarter of the windows start at a clip's first frame, where the runtime starts the
    spotter's state; the rest anywhere (the state must also settle mid-stream). Half are
    mirrored when `flip`."""
    xs, ys = [], []
    for _ in range(count):
        s = seqs[int(rng.integers(len(seqs)))]
        n = len(s.targets)
        w = min(length, n)
        start = 0 if rng.random() < start_fraction else int(rng.integers(0, n - w + 1))
        x = s.maps[start:start + w]
        if flip and rng.random() < 0.5:
            x = mirror(x)
        if w < length:  # a short clip: pad with ignored frames
            x = np.concatenate([x, np.zeros((length - w, *x.shape[1:]), np.float32)])
        y = np.full(length, IGNORE, np.int64)
        y[:w] = s.targets[start:start + w]
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)
