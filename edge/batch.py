"""Many inputs analysed into one output folder: `microexp batch` (a local process pool or Ray).

Each input is analysed as `microexp run` would (edge.analysis.analyse) into its own folder under
the output, first under `.partial/` and renamed into place when whole, so a killed worker or
driver never leaves half an input's results. `manifest.json` (written atomically by the driver
only) records each input's state; a rerun skips inputs already done and retries the others. A
failing input is recorded with its error and the batch goes on. `summary.csv` has a row per
input, `summary.png` the same at a glance.

With `ray_address` the inputs are Ray tasks (edge.distributed): a worker that dies is run again by
Ray, and its half-written folder under .partial is never renamed into place."""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from .atomic_io import atomic_write_image, atomic_write_json, replacing
from .config import PipelineConfig
from .distributed import TaskPool
from .ranges import TimeRange, analyse_range, least_overlap_s, merged, plan
from .sources import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv"}
MANIFEST = "manifest.json"
PENDING, DONE, FAILED = "pending", "done", "failed"
SUMMARY_COLUMNS = ("input", "folder", "state", "frames", "tracked_fraction", "faces", "events", "error")


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def expand_inputs(items: Iterable[str]) -> List[str]:
    """Video files, frame folders (SAMM/CASME II: a folder of one clip's images), glob patterns,
    list files (`@list.txt`: one input per line) and folders of those, as a sorted list of
    distinct paths; ValueError naming what matched nothing."""
    found: List[str] = []

    def add(path: Path, named: str):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            found.append(str(path.resolve()))
        elif _is_frame_folder(path):
            found.append(str(path.resolve()))
        elif path.is_dir():  # a data set's root: every clip below it
            inside = [p for p in sorted(path.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES or _is_frame_folder(p)
                      or (p.is_dir() and not p.name.startswith("."))]
            if not inside:
                raise ValueError(f"batch input {named}: folder holds no videos or frame folders")
            for p in inside:
                add(p, str(p))
        else:
            raise ValueError(f"batch input {named}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) "
                             "or a folder of frames")

    for item in items:
        if item.startswith("@"):
            listed = Path(item[1:])
            if not listed.is_file():
                raise FileNotFoundError(f"batch input {item}: no such list file")
            lines = [line.strip() for line in listed.read_text().splitlines()]
            for line in lines:
                if line and not line.startswith("#"):
                    add(listed.parent / line if not os.path.isabs(line) else Path(line), line)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise ValueError(f"batch input {item}: the pattern matches nothing")
            for m in matches:
                add(Path(m), m)
        elif not Path(item).exists():
            raise FileNotFoundError(f"batch input {item}: no such file or folder")
        else:
            add(Path(item), item)
    return sorted(dict.fromkeys(found))


def folder_name(uri: str) -> str:
    """An output folder name for an input: its name made safe, and 8 hex digits of its full path
    (two clips called 001 in different subjects' folders do not collide)."""
    path = Path(uri)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{path.parent.name}_{path.stem}" if path.is_dir() else path.stem)
    return f"{stem[:80]}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"


def analyse_input(uri: str, folder: str, out: str, config: Dict[str, object], fmt: str = "csv") -> Dict[str, object]:
    """One input into out/folder (in a worker process): written under out/.partial, then renamed."""
    from .analysis import AnalysisOptions, analyse
    from .pipeline import Pipeline
    from .sources import FrameSource
    partial = _partial(out, folder)
    with Pipeline(PipelineConfig(**config)) as pipe:
        result = analyse(pipe, FrameSource(uri), AnalysisOptions(partial, format=fmt))
    return _finished(result, partial, Path(out) / folder, fmt)


def merge_ranges(uri: str, folder: str, out: str, config: Dict[str, object], fmt: str,
                 parts: List[TimeRange], paths: List[str]) -> Dict[str, object]:
    """A split input's ranges merged into out/folder (a task): the rows and events one sequential
    run gives (edge.ranges), written as analyse_input writes them."""
    from .analysis import AnalysisOptions, analyse
    from .pipeline import Pipeline
    from .sources import FrameSource
    partial = _partial(out, folder)
    stats: Dict[str, int] = {}
    settings = PipelineConfig(**config)
    with Pipeline(PipelineConfig(**config)) as pipe:
        source = FrameSource(uri)
        result = analyse(pipe, source, AnalysisOptions(partial, format=fmt),
                         replay=merged(uri, settings, parts, paths, stats))
    return dict(_finished(result, partial, Path(out) / folder, fmt), split=stats)


def _partial(out: str, folder: str) -> Path:
    partial = Path(out) / ".partial" / f"{folder}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def _finished(result, partial: Path, final: Path, fmt: str) -> Dict[str, object]:
    from .analysis import COMPLETE
    if result.ended != COMPLETE:
        raise RuntimeError(result.message or result.ended)
    shutil.rmtree(final, ignore_errors=True)  # an earlier attempt's, never a finished one (the manifest says)
    os.replace(partial, final)
    s = result.summary
    return {"frames": s["frames"], "tracked_fraction": round(1 - s["lost"] / s["frames"], 4) if s["frames"] else 0.0,
            "faces": s["faces"], "events": s["events"], "au_present": au_presence(final / f"frames.{fmt}")}


def split_plan(uri: str, config: PipelineConfig, split_s: Optional[float], overlap_s: float) -> List[TimeRange]:
    """The input's time ranges (one when it is short, not split, or its length is unknown)."""
    if not split_s:
        return []
    from .sources import FrameSource
    try:
        with FrameSource(uri) as source:
            frames, fps = len(source), source.fps
    except (OSError, ValueError, TypeError):  # reported when the input itself is analysed
        return []
    parts = plan(frames, fps, split_s, overlap_s)
    return parts if len(parts) > 1 else []


def _ranges_folder(out: Path, folder: str, parts: List[TimeRange], settings: Dict[str, object]) -> Path:
    """Where a split input's range records wait for the merge; named by the plan and settings,
    so records made for other ones are never merged."""
    digest = hashlib.sha1(json.dumps([list(map(str, parts)), settings], sort_keys=True, default=str).encode())
    return out / ".ranges" / f"{folder}-{digest.hexdigest()[:8]}"


def au_presence(frames_path: Path) -> Dict[str, int]:
    """Rows with each AU decided present (its AUxx_c column is 1)."""
    counts: Dict[str, int] = {}
    with open(frames_path, newline="") as f:
        records = csv.DictReader(f) if frames_path.suffix == ".csv" else (json.loads(line) for line in f)
        for record in records:
            for key, value in record.items():
                if key.startswith("AU") and key.endswith("_c"):
                    counts[key[:-2]] = counts.get(key[:-2], 0) + (str(value) == "1")
    return counts


def load_manifest(out: Path) -> Dict[str, dict]:
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())["inputs"]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a batch manifest ({err}); choose another --out") from None


def run_batch(inputs: List[str], out: Path, config: PipelineConfig, workers: int = 1, fmt: str = "csv",
              on_done: Optional[Callable[[str, dict], None]] = None, ray_address: Optional[str] = None,
              split_s: Optional[float] = None, overlap_s: Optional[float] = None) -> Dict[str, dict]:
    """Analyse every input not yet done in out's manifest; returns the manifest's inputs.
    ray_address: None for a process pool of `workers`; "" for a local Ray instance; else a Ray
    cluster's address (edge.distributed.TaskPool). split_s: inputs longer than this many seconds
    run as time ranges on several workers and are merged exactly (edge.ranges), each range
    started overlap_s earlier (default: ranges.least_overlap_s)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    for uri in inputs:
        entry = manifest.setdefault(uri, {"folder": folder_name(uri), "state": PENDING})
        if entry["state"] != DONE:
            entry["state"] = PENDING
    save = lambda: atomic_write_json(out / MANIFEST, {"inputs": manifest})  # noqa: E731
    save()
    todo = [uri for uri in inputs if manifest[uri]["state"] != DONE]
    settings = asdict(config)
    splits: Dict[str, tuple] = {}  # a split input: (its ranges, their record files, how many are still to run)
    with TaskPool(workers, ray_address) as pool:
        for uri in todo:
            folder = manifest[uri]["folder"]
            parts = split_plan(uri, config, split_s, overlap_s if overlap_s is not None else least_overlap_s(config))
            if not parts:
                pool.submit(analyse_input, uri, folder, str(out), settings, fmt, key=(uri, None))
                continue
            where = _ranges_folder(out, folder, parts, settings)
            where.mkdir(parents=True, exist_ok=True)
            paths = [str(where / f"{k}.pkl") for k in range(len(parts))]
            missing = [k for k, p in enumerate(paths) if not os.path.isfile(p)]  # finished ones are whole
            splits[uri] = (parts, paths, len(missing))
            for k in missing:
                pool.submit(analyse_range, uri, settings, parts[k], paths[k], key=(uri, k))
            if not missing:
                pool.submit(merge_ranges, uri, folder, str(out), settings, fmt, parts, paths, key=(uri, None))
        for (uri, k), result, err in pool.completed():
            entry = manifest[uri]
            if err is None and k is not None:  # a range of a split input: merged when all are in
                parts, paths, left = splits[uri]
                splits[uri] = (parts, paths, left - 1)
                if left == 1:
                    pool.submit(merge_ranges, uri, entry["folder"], str(out), settings, fmt, parts, paths,
                                key=(uri, None))
                continue
            if err is None:
                entry.update(result, state=DONE, error="")
                if uri in splits:
                    shutil.rmtree(Path(splits[uri][1][0]).parent, ignore_errors=True)
            elif entry["state"] != FAILED:  # reported in the manifest and the summary; the batch goes on
                entry.update(state=FAILED, error=f"{type(err).__name__}: {err}")
            else:
                continue  # another range of an input already failed
            save()
            if on_done:
                on_done(uri, entry)
    shutil.rmtree(out / ".partial", ignore_errors=True)
    if (out / ".ranges").is_dir() and not any((out / ".ranges").iterdir()):
        (out / ".ranges").rmdir()  # every split input merged
    write_summary(out, {uri: manifest[uri] for uri in inputs})
    return manifest


def write_summary(out: Path, entries: Dict[str, dict]) -> Path:
    """summary.csv (a row per input; `AUxx_present`: rows with the AU decided present) and
    summary.png (the same at a glance)."""
    aus = sorted({au for e in entries.values() for au in e.get("au_present", {})})
    path = out / "summary.csv"
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(SUMMARY_COLUMNS) + [f"{au}_present" for au in aus],
                                extrasaction="ignore")
        writer.writeheader()
        for uri, entry in entries.items():
            counts = {f"{au}_present": n for au, n in entry.get("au_present", {}).items()}
            writer.writerow({"input": uri, **entry, **counts})
    overview(entries, out / "summary.png")
    return path


def overview(entries: Dict[str, dict], path: Path) -> Path:
    """A PNG drawn with OpenCV: per input, its name, state, the tracked fraction as a bar, frames
    and events; failed inputs in red with the start of their error."""
    import cv2
    import numpy as np
    row_h, width = 26, 1100
    img = np.full((row_h * (len(entries) + 2), width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for x, title in ((10, "input"), (430, "tracked"), (640, "frames"), (740, "events"), (840, "AU rows present")):
        cv2.putText(img, title, (x, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (uri, e) in enumerate(entries.items()):
        y = row_h * (i + 2) - 8
        failed = e.get("state") != DONE
        colour = (40, 39, 214) if failed else (40, 40, 40)
        cv2.putText(img, Path(uri).name[-48:] if not Path(uri).is_dir() else "/".join(Path(uri).parts[-2:])[-48:],
                    (10, y), font, 0.45, colour, 1, cv2.LINE_AA)
        if failed:
            cv2.putText(img, (e.get("error") or e.get("state", ""))[:90], (430, y), font, 0.4, colour, 1, cv2.LINE_AA)
            continue
        bar = int(200 * float(e.get("tracked_fraction", 0.0)))
        cv2.rectangle(img, (430, y - 12), (430 + bar, y + 2), (44, 160, 44), -1)
        cv2.rectangle(img, (430, y - 12), (630, y + 2), (160, 160, 160), 1)
        cv2.putText(img, str(e.get("frames", "")), (640, y), font, 0.45, colour, 1, cv2.LINE_AA)
        cv2.putText(img, str(e.get("events", "")), (740, y), font, 0.45, colour, 1, cv2.LINE_AA)
        present = ", ".join(f"{au} {n}" for au, n in sorted(e.get("au_present", {}).items()))
        cv2.putText(img, present[:40], (840, y), font, 0.45, colour, 1, cv2.LINE_AA)
    return atomic_write_image(path, img)
