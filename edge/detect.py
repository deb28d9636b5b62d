"""Face detection: MTCNN (P-, R-, O-Net as ONNX, shipped in edge/models/mtcnn) on ONNX Runtime.

The standard three-stage cascade: an image pyramid (scale 12/min_face, factor 0.709) scanned
by P-Net (12x12 cells, stride 2), non-maximum suppression within each scale (IoU 0.5) and
across scales (0.7), box regression and squaring; R-Net on 24x24 crops, O-Net on 48x48 crops
with landmarks; a final suppression by intersection over the smaller box. Runs on NumPy and
OpenCV only (no torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .frames import as_bgr

MODEL_DIR = Path(__file__).parent / "models" / "mtcnn"


@dataclass
class Face:
    box: np.ndarray  # (x1, y1, x2, y2) in pixels, float
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left and right mouth corner (x, y)

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy suppression, highest score first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    if method == "min":  # the classic MTCNN 'Min' variant counts inclusive pixels
        area = (x2 - x1 + 1) * (y2 - y1 + 1)
        extra = 1.0
    else:
        area = (x2 - x1) * (y2 - y1)
        extra = 0.0
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + extra)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + extra)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        overlap = inter / np.maximum(denom, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray, inclusive: bool) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + (1 if inclusive else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if inclusive else 0)
    out[:, 0] += offsets[:, 0] * w
    out[:, 1] += offsets[:, 1] * h
    out[:, 2] += offsets[:, 2] * w
    out[:, 3] += offsets[:, 3] * h
    return out


def _normalise(rgb: np.ndarray) -> np.ndarray:
    return ((rgb.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)


class FaceDetector:
    def __init__(self, model_dir=None, min_face: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, threads: int = 1, providers: Optional[List[str]] = None):
        import onnxruntime as ort
        model_dir = Path(model_dir) if model_dir else MODEL_DIR
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = providers or ["CPUExecutionProvider"]
        self.nets = {}
        for name in ("pnet", "rnet", "onet"):
            path = model_dir / f"{name}.onnx"
            if not path.is_file():
                raise FileNotFoundError(f"FaceDetector: missing {path}")
            self.nets[name] = ort.InferenceSession(str(path), opts, providers=providers)
        if min_face < 12:
            raise ValueError(f"FaceDetector: min_face must be >= 12 px, got {min_face}")
        if not 0 < factor < 1:
            raise ValueError(f"FaceDetector: factor must be in (0, 1), got {factor}")
        self.min_face, self.thresholds, self.factor = min_face, tuple(thresholds), factor

    @staticmethod
    def _to_rgb(frame: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(as_bgr(frame, "FaceDetector"), cv2.COLOR_BGR2RGB)

    def _crops(self, rgb: np.ndarray, boxes: np.ndarray, size: int):
        """Crops of the (integer, clipped) boxes resized to size x size; boxes that leave no
        pixel inside the image are dropped (their indices are not returned)."""
        h, w = rgb.shape[:2]
        b = np.trunc(boxes[:, :4]).astype(np.int64)
        x1, y1 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
        x2, y2 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
        keep = np.flatnonzero((y2 > y1 - 1) & (x2 > x1 - 1))
        batch = np.empty((len(keep), 3, size, size), np.float32)
        for j, k in enumerate(keep):
            crop = rgb[y1[k] - 1:y2[k], x1[k] - 1:x2[k]]
            batch[j] = _normalise(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
        return keep, batch

    def detect(self, frame: np.ndarray, min_face: Optional[float] = None) -> List[Face]:
        """Faces in a uint8 gray/BGR/BGRA frame, largest first; `min_face` (px, at least 12)
        overrides the detector's smallest face for this call (a downscaled frame's)."""
        rgb = self._to_rgb(frame)
        h, w = rgb.shape[:2]
        t1, t2, t3 = self.thresholds
        scale = 12.0 / max(12.0, float(min_face or self.min_face))
        smallest = min(h, w) * scale
        candidates = []
        while smallest >= 12:
            size = (int(w * scale + 1), int(h * scale + 1))
            img = _normalise(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))[None]
            offsets, prob = self.nets["pnet"].run(None, {"input": img})
            rows, cols = np.nonzero(prob[0, 1] >= t1)
            if rows.size:
                xy = np.stack([cols, rows], 1).astype(np.float32)
                boxes = np.concatenate([np.floor((2 * xy + 1) / scale), np.floor((2 * xy + 12) / scale),
                                        prob[0, 1, rows, cols][:, None],
                                        offsets[0][:, rows, cols].T], axis=1)
                candidates.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5)])
            scale *= self.factor
            smallest *= self.factor
        if not candidates:
            return []
        boxes = np.concatenate(candidates)
        boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = np.concatenate([_square(_regress(boxes[:, :4], boxes[:, 5:9], inclusive=False)),
                                boxes[:, 4:5]], axis=1)
        # Stage 2: R-Net
        keep, batch = self._crops(rgb, boxes, 24)
        if not len(keep):
            return []
        offsets, prob = self.nets["rnet"].run(None, {"input": batch})
        ok = prob[:, 1] > t2
        boxes = np.concatenate([boxes[keep][ok, :4], prob[ok, 1:2]], axis=1)
        offsets = offsets[ok]
        pick = _nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick, :4], offsets[pick], inclusive=True))
        boxes = np.concatenate([boxes, np.zeros((len(boxes), 1), np.float32)], axis=1)
        # Stage 3: O-Net
        keep, batch = self._crops(rgb, boxes, 48)
        if not len(keep):
            return []
        offsets, marks, prob = self.nets["onet"].run(None, {"input": batch})
        ok = prob[:, 1] > t3
        boxes, offsets, marks, scores = boxes[keep][ok, :4], offsets[ok], marks[ok], prob[ok, 1]
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack([bw[:, None] * marks[:, :5] + boxes[:, :1] - 1,
                           bh[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, offsets, inclusive=True)
        pick = _nms(boxes, scores, 0.7, method="min")
        faces = [Face(boxes[i].astype(np.float64), float(scores[i]), points[i].astype(np.float64))
                 for i in pick]
        return sorted(faces, key=lambda f: -f.area)
