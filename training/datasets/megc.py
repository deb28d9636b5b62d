"""MEGC2019 composite (SMIC + CASME II + SAMM, 3 classes) as the official HTNet repository
stores it: `combined_3_class2_for_optical_flow.csv`, 28x28 u/v/strain flow PNGs in
`datasets/STSNet_whole_norm_u_v_os/` named '<sub>_<clip> .png' (with that space), and apex
faces in `datasets/combined_datasets_whole/<imagename>`."""
from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

LABELS = ("negative", "positive", "surprise")
# HTNet's fallback landmarks on the 28x28 apex face (used when its MTCNN finds no face), in
# MTCNN order: left eye, right eye, nose, left and right mouth corner, as (x, y).
FALLBACK_LANDMARKS_28 = np.array([[9.528073, 11.062551], [21.396168, 10.919773],
                                  [15.380184, 17.380562], [10.255435, 22.121233],
                                  [20.583706, 22.25584]])


@dataclass
class CompositeSample:
    dataset: str  # 'smic' | 'casme2' | 'samm'
    subject: str
    clip: str
    label: int
    flow_file: Path
    apex_file: Path


class MegcComposite:
    CSV = "combined_3_class2_for_optical_flow.csv"
    FLOW_DIR = "datasets/STSNet_whole_norm_u_v_os"
    APEX_DIR = "datasets/combined_datasets_whole"

    def __init__(self, root):
        self.root = Path(root)
        sheet = self.root / self.CSV
        if not sheet.is_file():
            raise FileNotFoundError(f"MEGC composite: no {self.CSV} under {self.root}")
        self.samples: List[CompositeSample] = []
        with open(sheet, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    label = int(row["label"])
                    if label not in (0, 1, 2):
                        raise ValueError(f"label {label} not in 0..2")
                    sub, clip = row["sub"].strip(), row["filename_o"].strip()
                except (KeyError, ValueError) as err:
                    warnings.warn(f"{sheet.name} line {line}: skipped ({err})", stacklevel=2)
                    continue
                flow = self._flow_path(sub, clip)
                if flow is None:
                    warnings.warn(f"{sheet.name} line {line}: no flow PNG for {sub}/{clip}; skipped", stacklevel=2)
                    continue
                self.samples.append(CompositeSample(row["dataset"].strip(), sub, clip, label, flow,
                                                    self.root / self.APEX_DIR / row["imagename"].strip()))

    def _flow_path(self, sub: str, clip: str) -> Optional[Path]:
        for name in (f"{sub}_{clip} .png", f"{sub}_{clip}.png"):
            p = self.root / self.FLOW_DIR / name
            if p.is_file():
                return p
        return None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], np.int64)

    @property
    def subjects(self) -> List[str]:
        return [s.subject for s in self.samples]

    @property
    def datasets(self) -> List[str]:
        return [s.dataset for s in self.samples]

    def load_maps(self) -> np.ndarray:
        """float32 (N, 3, 28, 28), values 0..255, channels (u, v, strain).

        The PNGs hold u, v, strain as R, G, B (cv2 reads them as strain, v, u: the channel with
        the low mean of a magnitude is first). The official code trains on cv2's order; a fixed
        channel permutation is absorbed by the first (1x1) layer, so we use the order our
        encode_uvs28 kernel writes."""
        maps = np.empty((len(self.samples), 3, 28, 28), np.float32)
        for i, s in enumerate(self.samples):
            img = cv2.imread(str(s.flow_file), cv2.IMREAD_COLOR)
            if img is None or img.shape[:2] != (28, 28):
                raise ValueError(f"MEGC composite: {s.flow_file} is not a readable 28x28 image")
            maps[i] = img[..., ::-1].transpose(2, 0, 1)
        return maps

    def apex_landmarks(self, detector=None):
        """Per-sample composite landmarks (N, 5, 2) found as the official HTNet code finds them:
        the apex face resized to 28x28 (INTER_AREA), MTCNN (ours, edge.detect), the largest
        face's five points; HTNet's fallback points where no face is found. Returns
        (landmarks, found) with found (N,) bool.

        The official code hands cv2's BGR array to a detector that expects RGB; the same
        channel order is fed here, so the points are the ones its composite was built from."""
        if detector is None:
            from microexp.edge.detect import FaceDetector
            detector = FaceDetector()
        landmarks = np.repeat(FALLBACK_LANDMARKS_28[None], len(self.samples), axis=0)
        found = np.zeros(len(self.samples), bool)
        for i, s in enumerate(self.samples):
            img = cv2.imread(str(s.apex_file), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"MEGC composite: apex face {s.apex_file} is missing or unreadable")
            small = cv2.resize(img, (28, 28), interpolation=cv2.INTER_AREA)
            # detect() converts BGR to RGB; reversing first hands the network cv2's order.
            faces = detector.detect(np.ascontiguousarray(small[..., ::-1]))
            if faces:
                landmarks[i] = max(faces, key=lambda f: f.area).landmarks
                found[i] = True
        return landmarks, found
