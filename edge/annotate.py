"""An annotated copy of the input video: face box, alignment score, the strongest AUs, the
local motion as a bar, and the event state. Written to a temporary name and renamed when
closed, so an interrupted run leaves either a playable file or none."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .frames import as_bgr

# The codec by the file's suffix: pip's OpenCV writes MPEG-4 part 2 into .mp4 (which browsers do
# not play) and VP8 into .webm (which they do); it has no H.264 encoder.
CODECS = {".mp4": "mp4v", ".webm": "VP80"}


class AnnotatedVideo:
    def __init__(self, path, fps: float, motion_scale: float = 2.0):
        self.path = Path(path)
        if self.path.suffix not in CODECS:
            raise ValueError(f"AnnotatedVideo: {self.path} must end in {' or '.join(CODECS)}")
        self.tmp = self.path.with_name(self.path.stem + ".tmp" + self.path.suffix)
        self.fps, self.motion_scale = fps, motion_scale
        self.writer = None

    def write(self, frame: np.ndarray, result, faces=()):
        """One frame: every face's box with its id (`faces`, the frame's results), and the panel
        and motion bar of `result` (the first face)."""
        img = as_bgr(frame, "AnnotatedVideo").copy()
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = img.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*CODECS[self.path.suffix]), self.fps,
                                          (w, h))
            if not self.writer.isOpened():
                raise RuntimeError(f"AnnotatedVideo: OpenCV cannot write {self.path} (no "
                                   f"{CODECS[self.path.suffix]} encoder)")
        scale = max(img.shape[0] / 720, 0.5)
        font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(2 * scale))
        for face in (faces or (result,)):
            if face.box is not None:
                x1, y1, x2, y2 = face.box
                cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), thick)
                cv2.putText(img, f"face {face.face_id}", (x1, max(0, y1 - 6)), font, 0.6 * scale, (0, 200, 0), thick)
        lines = [f"t {result.timestamp:.3f}s  score {result.confidence:.3f}" + ("" if result.success else "  LOST")]
        if result.success:  # without a face the AU values are unknown (NaN)
            for name, p in sorted(result.au.items(), key=lambda kv: -kv[1])[:3]:
                lines.append(f"{name} {p:.2f}")
        line_h = int(30 * scale)
        panel_w = int(330 * scale)
        cv2.rectangle(img, (0, 0), (panel_w, line_h * len(lines) + int(10 * scale)), (30, 30, 30), -1)
        for i, text in enumerate(lines):
            cv2.putText(img, text, (8, line_h * (i + 1)), font, 0.7 * scale, (255, 255, 255), thick, cv2.LINE_AA)
        motion = result.motion.get("motion_local", 0.0)
        if not math.isfinite(motion):  # no face on this frame: unknown, drawn as no bar
            motion = 0.0
        bar = int(min(motion / self.motion_scale, 1.0) * img.shape[1] * 0.4)
        y = img.shape[0] - int(20 * scale)
        cv2.rectangle(img, (10, y - int(12 * scale)), (10 + bar, y), (0, 0, 230) if result.event else (200, 120, 0), -1)
        if result.event is not None:
            cv2.putText(img, "EVENT", (20 + bar, y), font, 0.8 * scale, (0, 0, 230), thick)
        self.writer.write(img)

    def close(self):
        if self.writer is not None:
            self.writer.release()
            self.tmp.replace(self.path)
