"""One source analysed into an output folder: per-frame rows, events, the run's summary, the
models it used (`model_info.json`), and optionally a timeline PNG and an annotated video. What
`microexp run` does, as a function the other front ends (a server, batch jobs) call too.

Whatever stops the run (its end, `max_frames`, Ctrl-C or SIGTERM, a camera that is gone), the rows
written so far are whole and the summary, model information and timeline are written."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .atomic_io import atomic_write_json
from .outputs import Columns, EventWriter, FrameWriter
from .pipeline import Pipeline
from .sources import FrameSource, SourceLost
from .timeline import Timeline

# How a run ended: the source's end or max_frames; Ctrl-C or SIGTERM; a live source that did not
# come back.
COMPLETE, INTERRUPTED, SOURCE_LOST = "complete", "interrupted", "source-lost"


class Terminated(KeyboardInterrupt):
    """Raised by a SIGTERM handler (a service being stopped): the run ends as on Ctrl-C."""


@dataclass
class AnalysisOptions:
    out: Path
    format: str = "csv"  # 'csv' | 'jsonl'
    max_frames: Optional[int] = None
    timeline: bool = True
    video: bool = False  # an annotated copy of the video
    video_name: str = "annotated.mp4"  # .mp4 (MPEG-4, smallest) or .webm (VP8, which browsers play)
    # Called every `progress_every` frames and at the end with (frames done, total or None).
    progress: Optional[Callable[[int, Optional[int]], None]] = None
    progress_every: int = 25


@dataclass
class AnalysisResult:
    summary: Dict[str, object]
    ended: str  # COMPLETE, INTERRUPTED or SOURCE_LOST
    message: str = ""  # what stopped it, when it did not complete


def reported_aus(pipe: Pipeline) -> Dict[str, object]:
    """The AU columns and what each is worth: the model's measured figures per AU, the bar an AU
    must pass to be reported by default, and which columns are experimental (below the bar)."""
    if pipe.au_model is None:
        return {}
    quality = pipe.au_model.spec.au_quality or {}
    per_au = quality.get("per_au", {})
    return {"columns": list(pipe.au_names), "experimental": list(pipe.experimental_aus()),
            "bar": quality.get("bar"), "figures": {n: per_au.get(n) for n in pipe.au_names},
            "protocol": quality.get("protocol"), "command": quality.get("command"),
            "not_reported": [n for n in pipe.au_model.labels if n not in pipe.au_names]}


def licences(pipe: Pipeline) -> List[str]:
    """One line per distinct licence term of the run's models."""
    seen = []
    for m in pipe.models().values():
        if m.spec.licence and m.spec.licence not in seen:
            seen.append(m.spec.licence)
    return seen


def model_info(pipe: Pipeline) -> Dict[str, object]:
    """What a user needs to know about the models behind a run's numbers: each model's file,
    backend and contract; the AUs reported and how well each is detected; the weights' terms;
    the action gate; any mismatch between a model's training inputs and this run's."""
    gate = None
    if pipe.gate is not None:
        gate = {"path": str(pipe.config.action_gate), "parameters": pipe.gate.params.to_dict()}
    return {"flow": pipe.config.flow,
            "models": {role: {"path": str(m.path), "runs_on": list(m.providers), "metadata": m.spec.to_props()}
                       for role, m in pipe.models().items()},
            "aus": reported_aus(pipe), "action_gate": gate, "licence": licences(pipe),
            "notes": pipe.flow_mismatches()}


def annotated_intervals(source: str, fps: float) -> Optional[List[Tuple[float, float]]]:
    """Annotated intervals (seconds) of a clip with a samm.csv-style sheet beside it (the sample
    clip: sample_clip.csv), else None; a CSV of another kind (OpenFace's output) is not one."""
    sheet = Path(source).with_suffix(".csv")
    if not sheet.is_file():
        return None
    with open(sheet, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows or not {"Onset Frame", "Offset Frame"} <= set(rows[0]):
        return None
    try:
        return [((int(r["Onset Frame"]) - 1) / fps, (int(r["Offset Frame"]) - 1) / fps) for r in rows]
    except (TypeError, ValueError):
        return None


def stream_with_holds(pipe: Pipeline, source: FrameSource):
    """(frame, its results, whether its rows wait for an open interval) for every frame."""
    for frame, results in pipe.stream_faces(source):
        yield frame, results, pipe.events_pending(frame.index)


def analyse(pipe: Pipeline, source: FrameSource, options: AnalysisOptions, replay=None) -> AnalysisResult:
    """Run `pipe` over `source` into options.out; the source is closed at the end. `replay`:
    (frame, results, hold) computed elsewhere (the time ranges of a split input, edge.ranges),
    written as if `pipe` had made them from `source`."""
    out = Path(options.out)
    columns = Columns.of(pipe, live=source.live)
    frames_path = out / f"frames.{options.format}"
    try:
        total = None if source.loop else len(source)
    except TypeError:  # a live source
        total = None
    if options.max_frames:
        total = min(total, options.max_frames) if total else options.max_frames
    timeline = Timeline(columns.au)
    video = None
    if options.video:
        from .annotate import AnnotatedVideo
        video = AnnotatedVideo(out / options.video_name, source.fps)
    done = lost = 0
    faces = set()  # the face ids seen
    ended, message = COMPLETE, ""
    with FrameWriter(frames_path, columns, options.format) as rows:
        events = EventWriter(out / "events.jsonl")
        try:
            for frame, results, hold in (replay if replay is not None else stream_with_holds(pipe, source)):
                # A row per face; the frame's rows wait while any face's interval is open.
                event_ids = rows.write(results, hold=hold)
                for result, event_id in zip(results, event_ids):
                    if result.event is not None:
                        events.write(result.event, event_id)
                    if result.face_id is not None:
                        faces.add(result.face_id)
                primary = results[0]  # the timeline and the video's panel follow the first face
                if video is not None:
                    video.write(frame.image, primary, results)
                timeline.add(primary)
                done += 1
                lost += not primary.success
                if options.progress and done % options.progress_every == 0:
                    options.progress(done, total)
                if options.max_frames and done >= options.max_frames:
                    break
        except KeyboardInterrupt as err:
            ended, message = INTERRUPTED, "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        except SourceLost as err:
            ended, message = SOURCE_LOST, str(err)
        finally:
            events.close()
            source.close()
            if video is not None:
                video.close()
    if options.progress and done % options.progress_every:  # the last call, unless just made
        options.progress(done, total)
    # A file that ends before the frame count its header announces: usually a truncated recording.
    short = (ended == COMPLETE and total is not None and done < total and not source.live and not source.files)
    # lost: frames on which no face was tracked; faces: the face ids handed out.
    summary: Dict[str, object] = {"frames": done, "lost": lost, "faces": len(faces), "events": events.count,
                                  "events_by_kind": dict(events.kinds), "rows": str(frames_path),
                                  "events_file": str(events.path)}
    if video is not None and video.writer is not None:
        summary["video"] = str(video.path)
    if options.timeline and done >= 2:
        truth = annotated_intervals(source.uri, source.fps)
        summary["timeline"] = str(timeline.save(out / "timeline.png", truth=truth))
    if source.skipped:
        summary["unreadable_images"] = len(source.skipped)
    info = model_info(pipe)
    info_path = out / "model_info.json"
    atomic_write_json(info_path, info)
    summary["model_info"] = str(info_path)
    if info["aus"]:
        summary["aus"] = info["aus"]["columns"]
        if info["aus"]["experimental"]:
            summary["experimental_aus"] = info["aus"]["experimental"]
    if info["licence"]:
        summary["licence"] = info["licence"]
    if info["notes"]:
        summary["notes"] = info["notes"]
    if ended != COMPLETE:
        summary["ended"] = ended
    if short:
        summary["ended_early"] = (f"the video ended after {done} of the {total} frames its header announces "
                                  "(a truncated or damaged file?)")
    return AnalysisResult(summary, ended, message)
