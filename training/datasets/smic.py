"""SMIC recognition layout: s1/micro/negative/s1_ne_01/image000123.jpg (6-digit frames). There
is no coding sheet: onset and offset are the first and last frame, the apex the midpoint."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List

EMOTIONS = ("negative", "positive", "surprise")


@dataclass
class SmicClip:
    subject: str  # 's1'
    emotion: str
    clip: str  # 's1_ne_01'
    frames: List[int]

    @property
    def onset(self) -> int:
        return self.frames[0]

    @property
    def offset(self) -> int:
        return self.frames[-1]

    @property
    def apex(self) -> int:  # SMIC has no apex annotation: the midpoint, as reference code does
        return self.frames[len(self.frames) // 2]

    def frame_path(self, root, frame: int) -> Path:
        return Path(root) / self.subject / "micro" / self.emotion / self.clip / f"image{frame:06d}.jpg"


def scan_smic(root) -> List[SmicClip]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SMIC: no folder {root}")
    clips = []
    for subject in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)):
        for emotion_dir in sorted((subject / "micro").glob("*")):
            if emotion_dir.name not in EMOTIONS:
                warnings.warn(f"SMIC: unexpected folder {emotion_dir}; skipped", stacklevel=2)
                continue
            for clip in sorted(p for p in emotion_dir.iterdir() if p.is_dir()):
                frames = sorted(int(m.group(1)) for f in clip.iterdir()
                                if (m := re.fullmatch(r"image(\d{6})\.jpg", f.name)))
                if not frames:
                    warnings.warn(f"SMIC: no image######.jpg frames in {clip}; skipped", stacklevel=2)
                    continue
                clips.append(SmicClip(subject.name, emotion_dir.name, clip.name, frames))
    return clips
