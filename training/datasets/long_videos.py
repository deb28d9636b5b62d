"""The long-video spotting sets: CAS(ME)^2 and SAMM Long Videos, each a list of videos with their
annotated macro- and micro-expressions.

CAS(ME)^2 (30 fps), as distributed:
    ROOT/CAS(ME)^2code_final(Updated).xlsx   (or any *code_final*.xlsx)
      sheet 1, no header: participant number, "<video name>_<expression number>" (e.g.
        'anger1_1'), onset, apex, offset, AUs, estimated emotion, expression type
        ('macro-expression' / 'micro-expression'), self-reported emotion
      sheet 2, no header: which subject folder a participant number is (columns counted from 1:
        column 2 the subject, e.g. 's15' or 15; column 3 the participant number)
      sheet 3, no header: column 1 the video code (e.g. '0401'), column 2 the video name ('anger1')
    ROOT/rawvideo/s15/15_0401girlcrashing.avi   the raw long videos, or frame folders
    ROOT/rawpic/s15/15_0401girlcrashing/img1.jpg
  Quirks: an offset of 0 (or an empty cell) means the coders gave none; the apex is taken as the
  offset (reported).

SAMM Long Videos (200 fps):
    ROOT/SAMM_LongVideos_V3_Release.xlsx   (or any *.xlsx): text rows, then a header row with
      Subject, Filename ('006_1_3': video 006_1, expression 3), Inducement Code, Onset, Apex,
      Offset, Duration, Type ('Micro - 1/2' / 'Macro'), Action Units, Notes
    ROOT/006_1/006_1_0001.jpg   one frame folder per video (also one level deeper)
  Quirks: offsets of 0 or -1 or an empty cell (none given) take the apex (reported).

Frame numbers in both sheets are 1-based positions in the video; events here are 0-based.
Rows that cannot be used (unreadable numbers, a participant or video the sheets do not map, a
video that is not on disk) are reported with a warning naming them and left out, never silently.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from .au_codes import ParsedAUs, parse_action_units

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv")
FPS = {"casme-sq": 30.0, "samm-lv": 200.0}


@dataclass
class SpotEvent:
    onset: int  # 0-based frames within the video, inclusive
    apex: int
    offset: int
    kind: str  # 'micro' | 'macro'
    action_units: ParsedAUs = field(default_factory=ParsedAUs)
    emotion: str = ""


@dataclass
class LongVideo:
    subject: str
    name: str  # the video's name in the set: '15_0401girlcrashing', '006_1'
    source: Path  # a video file or a folder of frames
    fps: float
    events: List[SpotEvent] = field(default_factory=list)


def _workbook(path: Path):
    try:
        import openpyxl
    except ImportError as err:
        raise ImportError(f"{path}: reading .xlsx needs openpyxl (pip install 'microexp-edge[train]')") from err
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable .xlsx workbook ({err})") from err


def _values(sheet) -> List[list]:
    """Every row of a sheet as a list, blank ones as [] (so list positions are row numbers - 1)."""
    return [list(r) if any(v is not None and str(v).strip() for v in r) else []
            for r in sheet.iter_rows(values_only=True)]


def _int(value) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value).strip())


def _event(onset, apex, offset, kind: str, aus, emotion, where: str, sheet: Path) -> Optional[SpotEvent]:
    if offset is None or not str(offset).strip():
        offset = 0  # an empty cell: none given, as 0 and -1 say
    try:
        onset, apex, offset = _int(onset), _int(apex), _int(offset)
    except (TypeError, ValueError):
        warnings.warn(f"{sheet.name} ({where}): unreadable frame numbers {onset!r}, {apex!r}, {offset!r}; left out",
                      stacklevel=3)
        return None
    if offset <= 0:
        warnings.warn(f"{sheet.name} ({where}): no offset given ({offset}); the apex {apex} is taken as the offset",
                      stacklevel=3)
        offset = apex
    if offset < onset:
        warnings.warn(f"{sheet.name} ({where}): offset {offset} before onset {onset}; left out", stacklevel=3)
        return None
    if not onset <= apex <= offset:
        warnings.warn(f"{sheet.name} ({where}): apex {apex} outside [{onset}, {offset}]; kept as annotated",
                      stacklevel=3)
    return SpotEvent(onset - 1, apex - 1, offset - 1, kind, parse_action_units("" if aus is None else str(aus)),
                     "" if emotion is None else str(emotion).strip())


def _some_used(videos: Dict, rows: List[list], sheet: Path) -> None:
    """A workbook with annotation rows of which none could be used is an error, not an empty set
    (every prediction would count as a false positive)."""
    if any(rows) and not any(v.events for v in videos.values()):
        raise ValueError(f"{sheet}: none of its {sum(1 for r in rows if r)} annotation rows could be used "
                         "(the warnings above say why each was left out); is it this set's workbook, in its layout?")


def _find_sheet(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern)) or sorted(root.glob("*.xlsx"))
    if not found:
        raise FileNotFoundError(f"{root}: no annotation workbook ({pattern})")
    return found[0]


def _subject_name(value) -> str:
    text = str(value).strip().lower()
    digits = re.sub(r"\D", "", text)
    return f"s{int(digits)}" if digits else text


def read_casme_sq(root, sheet: Union[str, Path, None] = None) -> List[LongVideo]:
    """CAS(ME)^2's long videos with their events (see the module docstring for the layout)."""
    root = Path(root)
    sheet = Path(sheet) if sheet else _find_sheet(root, "*code_final*.xlsx")
    book = _workbook(sheet)
    if len(book.sheetnames) < 3:
        raise ValueError(f"{sheet}: expected 3 sheets (codes, participants, videos), found {book.sheetnames}")
    codes, participants, names = (_values(book[n]) for n in book.sheetnames[:3])
    subject_of: Dict[int, str] = {}
    for row in participants:
        try:
            subject_of[_int(row[2])] = _subject_name(row[1])
        except (TypeError, ValueError, IndexError):
            continue  # a title row
    code_of = {str(r[1]).strip().lower(): str(r[0]).strip().zfill(4) for r in names if len(r) > 1 and r[1] is not None}
    if not code_of:
        raise ValueError(f"{sheet}: its third sheet maps no video names to codes")
    videos: Dict[tuple, LongVideo] = {}
    missing = set()
    for line, row in enumerate(codes, start=1):
        if not row:
            continue
        row = (row + [None] * 9)[:9]
        participant, label, onset, apex, offset, aus, emotion, kind, _ = row
        where = f"row {line}, {label}"
        try:
            subject = subject_of[_int(participant)]
        except (TypeError, ValueError, KeyError):
            warnings.warn(f"{sheet.name} ({where}): participant {participant!r} is not on the participants sheet; "
                          "left out", stacklevel=2)
            continue
        name = str(label).strip().split("_")[0].lower()
        code = code_of.get(name)
        if code is None:
            warnings.warn(f"{sheet.name} ({where}): video {name!r} is not on the videos sheet; left out", stacklevel=2)
            continue
        kind_text = str(kind or "").lower()
        if "macro" not in kind_text and "micro" not in kind_text:
            warnings.warn(f"{sheet.name} ({where}): expression type {kind!r} is neither macro nor micro; left out",
                          stacklevel=2)
            continue
        event = _event(onset, apex, offset, "macro" if "macro" in kind_text else "micro", aus, emotion, where, sheet)
        if event is None:
            continue
        key = (subject, code)
        if key not in videos:
            source = _casme_sq_source(root, subject, code)
            if source is None:
                missing.add(key)
                continue
            videos[key] = LongVideo(subject, source.stem if source.is_file() else source.name, source, FPS["casme-sq"])
        videos[key].events.append(event)
    for subject, code in sorted(missing):
        warnings.warn(f"{root}: no video for {subject} code {code} (rawvideo/{subject}/{subject[1:]}_{code}*.avi or "
                      f"rawpic/{subject}/{subject[1:]}_{code}*/); its events are left out", stacklevel=2)
    _some_used(videos, codes, sheet)
    # Videos without an annotated expression count too: whatever is spotted there is a false positive.
    for folder in ("rawvideo", "rawpic"):
        for path in sorted((root / folder).glob("s*/*_*")):
            code = path.name.split("_")[1][:4]
            key = (path.parent.name.lower(), code)
            if key not in videos and (path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES):
                videos[key] = LongVideo(key[0], path.stem if path.is_file() else path.name, path, FPS["casme-sq"])
    return sorted(videos.values(), key=lambda v: (v.subject, v.name))


def _casme_sq_source(root: Path, subject: str, code: str) -> Optional[Path]:
    number = subject[1:]
    for folder in ("rawvideo", "rawpic"):
        for path in sorted((root / folder / subject).glob(f"{number}_{code}*")):
            if path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
                return path
    return None


def read_samm_lv(root, sheet: Union[str, Path, None] = None) -> List[LongVideo]:
    """SAMM Long Videos with their events (see the module docstring for the layout)."""
    root = Path(root)
    sheet = Path(sheet) if sheet else _find_sheet(root, "SAMM_LongVideos*.xlsx")
    book = _workbook(sheet)
    rows = _values(book[book.sheetnames[0]])
    start = next((i for i, r in enumerate(rows) if "Subject" in [str(v).strip() for v in r if v is not None]
                  and "Onset" in [str(v).strip() for v in r if v is not None]), None)
    if start is None:
        raise ValueError(f"{sheet}: no header row with 'Subject' and 'Onset'")
    header = [str(v).strip() if v is not None else "" for v in rows[start]]
    need = {"Subject", "Filename", "Onset", "Apex", "Offset", "Type"} - set(header)
    if need:
        raise ValueError(f"{sheet}: the header lacks {sorted(need)}")
    folders = {p.name: p for p in sorted(root.glob("*/")) if p.is_dir()}
    folders.update({p.name: p for p in sorted(root.glob("*/*/")) if p.is_dir() and p.name not in folders})
    videos: Dict[str, LongVideo] = {}
    missing = set()
    for line, values in enumerate(rows[start + 1:], start=start + 2):
        if not values:
            continue
        row = dict(zip(header, values))
        label = str(row.get("Filename") or "").strip()
        where = f"row {line}, {label}"
        parts = label.split("_")
        if len(parts) < 2:
            warnings.warn(f"{sheet.name} ({where}): Filename is not SUBJECT_VIDEO_N; left out", stacklevel=2)
            continue
        name = f"{parts[0]}_{parts[1]}"
        kind_text = str(row.get("Type") or "").lower()
        if "macro" not in kind_text and "micro" not in kind_text:
            warnings.warn(f"{sheet.name} ({where}): Type {row.get('Type')!r} is neither Macro nor Micro; left out",
                          stacklevel=2)
            continue
        event = _event(row.get("Onset"), row.get("Apex"), row.get("Offset"),
                       "macro" if "macro" in kind_text else "micro", row.get("Action Units"), "", where, sheet)
        if event is None:
            continue
        if name not in videos:
            if name not in folders:
                missing.add(name)
                continue
            videos[name] = LongVideo(str(row.get("Subject") or parts[0]).strip().zfill(3), name, folders[name],
                                     FPS["samm-lv"])
        videos[name].events.append(event)
    for name in sorted(missing):
        warnings.warn(f"{root}: no frame folder {name}/; its events are left out", stacklevel=2)
    _some_used(videos, rows[start + 1:], sheet)
    for name, path in folders.items():  # videos without an annotated expression count too
        if name not in videos and re.fullmatch(r"\d{3}_\d+", name):
            videos[name] = LongVideo(name.split("_")[0], name, path, FPS["samm-lv"])
    return sorted(videos.values(), key=lambda v: (v.subject, v.name))


def resolve_layout(root: Path, layout: str = "auto") -> str:
    """The layout 'auto' stands for in `root` (see read_long_videos); others as they are."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if layout == "auto":
        return "casme-sq" if (Path(root) / "rawvideo").is_dir() or (Path(root) / "rawpic").is_dir() else "samm-lv"
    return layout


def read_long_videos(root, layout: str = "auto") -> List[LongVideo]:
    """The videos of a spotting set: layout 'casme-sq', 'samm-lv', or 'auto' (CAS(ME)^2 where a
    rawvideo/ or rawpic/ folder is present, else SAMM Long Videos)."""
    root = Path(root)
    layout = resolve_layout(root, layout)
    if layout == "casme-sq":
        return read_casme_sq(root)
    if layout == "samm-lv":
        return read_samm_lv(root)
    raise ValueError(f"layout must be 'auto', 'casme-sq' or 'samm-lv', got {layout!r}")
