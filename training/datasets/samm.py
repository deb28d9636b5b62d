"""SAMM: the ';'-separated annotation sheet (samm.csv, as samm-optflow-28 ships it), the raw
frame layout SUBJECT/CLIP/SUBJECT_FRAME.jpg (4- or 5-digit frame numbers), and the public
AU multi-label flow maps (samm_multilabel_au_expanded.csv + dataset/SAMM_FLOWS/*.png)."""
from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .au_codes import ParsedAUs, parse_action_units


@dataclass
class SammClip:
    subject: str
    clip: str
    onset: int
    apex: int
    offset: int
    action_units: ParsedAUs
    au_text: str
    emotion: str
    objective_class: str
    notes: str
    kind: str = "micro"  # 'macro' where the sheet's Micro (SAMM Long Videos: Type) column says Macro


def read_samm_csv(path) -> List[SammClip]:
    """Rows of samm.csv. Rows with unreadable frame numbers are reported and skipped; an apex
    outside [onset, offset] and AU tokens the parser does not know are reported and kept."""
    path = Path(path)
    clips: List[SammClip] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=";")
        missing = {"Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame",
                   "Action Units"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a samm.csv sheet, missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            clip = (row.get("Filename") or "").strip()
            try:
                onset, apex, offset = (int(str(row[k]).strip()) for k in
                                       ("Onset Frame", "Apex Frame", "Offset Frame"))
            except ValueError:
                warnings.warn(f"{path.name} line {line} ({clip}): unreadable frame numbers; skipped", stacklevel=2)
                continue
            if not onset <= apex <= offset:
                warnings.warn(f"{path.name} line {line} ({clip}): apex {apex} outside "
                              f"[{onset}, {offset}]; kept as annotated", stacklevel=2)
            aus = parse_action_units(row["Action Units"])
            if aus.unknown:
                warnings.warn(f"{path.name} line {line} ({clip}): unknown AU token(s) {aus.unknown}", stacklevel=2)
            clips.append(SammClip(str(row["Subject"]).strip().zfill(3), clip, onset, apex, offset,
                                  aus, row["Action Units"], (row.get("Estimated Emotion") or "").strip(),
                                  str(row.get("Objective Classes") or "").strip(),
                                  (row.get("Notes") or "").strip(),
                                  "macro" if "macro" in str(row.get("Micro") or row.get("Type") or "").lower()
                                  else "micro"))
    return clips


def samm_frame_path(root, subject: str, clip: str, frame: int) -> Path:
    """Path of one raw frame, trying 4- then 5-digit zero padding (both occur in SAMM)."""
    folder = Path(root) / subject / clip
    for width in (4, 5):
        p = folder / f"{subject}_{frame:0{width}d}.jpg"
        if p.is_file():
            return p
    raise FileNotFoundError(f"SAMM: frame {frame} of {subject}/{clip} not found as "
                            f"{subject}_{frame:04d}.jpg or {subject}_{frame:05d}.jpg in {folder}")


def samm_clip_frames(root, subject: str, clip: str) -> List[int]:
    """Frame numbers present on disk for one clip, sorted."""
    pattern = re.compile(rf"^{re.escape(subject)}_(\d+)\.jpg$")
    folder = Path(root) / subject / clip
    if not folder.is_dir():
        raise FileNotFoundError(f"SAMM: no folder {folder}")
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))


class SammAUMaps:
    """The public SAMM AU multi-label set: one 28x28 HSV flow map (onset -> apex, the seed's
    encoding, stored as BGR PNG) per clip and AU_xx intensity columns (0 or 0.2 .. 1.0)."""

    CSV = "samm_multilabel_au_expanded.csv"
    FLOW_DIR = "dataset/SAMM_FLOWS"

    def __init__(self, root, aus: Optional[Sequence[str]] = None):
        self.root = Path(root)
        sheet = self.root / self.CSV
        if not sheet.is_file():
            raise FileNotFoundError(f"SAMM AU maps: no {self.CSV} under {self.root}")
        with open(sheet, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = [c for c in (rows[0].keys() if rows else []) if re.fullmatch(r"AU_\d+", c)]
        self.au_names = list(aus) if aus else sorted(columns, key=lambda c: int(c[3:]))
        unknown = set(self.au_names) - set(columns)
        if unknown:
            raise ValueError(f"SAMM AU maps: no column(s) {sorted(unknown)} in {sheet.name}")
        self.subjects: List[str] = []
        self.clips: List[str] = []
        self.files: List[Path] = []
        intensities = []
        for line, row in enumerate(rows, start=2):
            p = self.root / self.FLOW_DIR / row["sub_filename"].strip()
            if not p.is_file():
                warnings.warn(f"{sheet.name} line {line}: no flow map {p.name}; skipped", stacklevel=2)
                continue
            self.subjects.append(row["sub"].strip())
            self.clips.append(row["filename_o"].strip())
            self.files.append(p)
            intensities.append([float(row[c] or 0) for c in self.au_names])
        self.intensity = np.array(intensities, np.float32).reshape(len(self.files), len(self.au_names))

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labels(self) -> np.ndarray:
        """Presence (N, A) as 0/1 float32."""
        return (self.intensity > 0).astype(np.float32)

    def load_maps(self) -> np.ndarray:
        """float32 (N, 3, 28, 28), 0..255, channels as stored (B, G, R), which is what our
        runtime's encode_hsv28 produces."""
        maps = np.empty((len(self.files), 3, 28, 28), np.float32)
        for i, p in enumerate(self.files):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None or img.shape[:2] != (28, 28):
                raise ValueError(f"SAMM AU maps: {p} is not a readable 28x28 image")
            maps[i] = img.transpose(2, 0, 1)
        return maps
