"""CASME II: the coding sheet (exported to CSV, or the .xlsx itself when openpyxl is installed)
and the frame layout sub01/EP02_01f/img46.jpg (no zero padding)."""
from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .au_codes import ParsedAUs, parse_action_units


@dataclass
class Casme2Clip:
    subject: str  # 'sub01'
    clip: str  # 'EP02_01f'
    onset: int
    apex: Optional[int]  # None where the sheet has no usable apex ('/' or blank)
    offset: int
    action_units: ParsedAUs
    emotion: str


def _rows(path: Path):
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl
        except ImportError as err:
            raise ImportError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), "
                              "or export the sheet to CSV") from err
        sheet = openpyxl.load_workbook(path, read_only=True).active
        values = [[("" if v is None else str(v)) for v in r] for r in sheet.iter_rows(values_only=True)]
        start = next((i for i, r in enumerate(values) if "Subject" in r), None)
        if start is None:
            raise ValueError(f"{path}: no header row with 'Subject'")
        header = values[start]
        return [dict(zip(header, r)) for r in values[start + 1:]]
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def read_casme2_sheet(path) -> List[Casme2Clip]:
    path = Path(path)
    clips = []
    for line, row in enumerate(_rows(path), start=2):
        subject, clip = str(row.get("Subject", "")).strip(), str(row.get("Filename", "")).strip()
        if not subject or not clip:
            continue  # blank trailing rows
        subject = subject if subject.startswith("sub") else f"sub{int(float(subject)):02d}"
        try:
            onset, offset = int(float(row["OnsetFrame"])), int(float(row["OffsetFrame"]))
        except (KeyError, ValueError):
            warnings.warn(f"{path.name} line {line} ({subject}/{clip}): unreadable onset/offset; skipped", stacklevel=2)
            continue
        apex_text = str(row.get("ApexFrame", "")).strip()
        try:
            apex: Optional[int] = int(float(apex_text))
        except ValueError:
            apex = None
            warnings.warn(f"{path.name} line {line} ({subject}/{clip}): apex {apex_text!r} "
                          "missing; kept with apex=None", stacklevel=2)
        emotion = str(row.get("Estimated Emotion", "")).strip()
        if not emotion:
            warnings.warn(f"{path.name} line {line} ({subject}/{clip}): no emotion label", stacklevel=2)
        aus = parse_action_units(row.get("Action Units", ""))
        if aus.unknown:
            warnings.warn(f"{path.name} line {line} ({subject}/{clip}): unknown AU token(s) {aus.unknown}", stacklevel=2)
        clips.append(Casme2Clip(subject, clip, onset, apex, offset, aus, emotion))
    return clips


def casme2_frame_path(root, subject: str, clip: str, frame: int) -> Path:
    p = Path(root) / subject / clip / f"img{frame}.jpg"
    if not p.is_file():
        raise FileNotFoundError(f"CASME II: frame {frame} of {subject}/{clip} not found at {p}")
    return p


def casme2_clip_frames(root, subject: str, clip: str) -> List[int]:
    folder = Path(root) / subject / clip
    if not folder.is_dir():
        raise FileNotFoundError(f"CASME II: no folder {folder}")
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"img(\d+)\.jpg", p.name)))
