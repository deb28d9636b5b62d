"""The MEGC spotting protocol run on the runtime: every video of a set through a Pipeline, its
events against the annotated intervals, a prediction matching an interval of its own kind at
IoU >= 0.5 (training/metrics.spotting_by_kind); counts per video, then pooled over the set, for
micro- and macro-expressions separately and over all intervals. The runtime is not trained on
the set, so every video is a held-out one (no folds needed)."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence

from .datasets.long_videos import LongVideo
from .metrics import spotting_by_kind


def video_events(video: LongVideo, flow: str, reference: str, **config) -> Dict[str, object]:
    """What the runtime reports on a video: {'events': [(onset, offset, kind)] of every face
    (0-based frames; the sets have one person per video, and a second face's events count as
    predictions too), 'faces': face ids handed out, 'notes': the run's notes (a model trained at
    another frame rate or flow), 'min_event_ms': the shortest event the detector took}."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    settings = PipelineConfig(flow=flow, reference=reference, emotion_model=None, fps=video.fps, **config)
    with Pipeline(settings) as pipe:
        events = [(r.event.onset_frame, r.event.offset_frame, r.event.kind)
                  for _, results in pipe.stream_faces(video.source, fps=video.fps) for r in results
                  if r.event is not None]
        return {"events": sorted(events), "faces": pipe.faces_started, "notes": pipe.flow_mismatches(),
                "min_event_ms": pipe.min_event_ms}


def spotting_report(videos: Sequence[LongVideo], flow: str = "farneback", reference: str = "fixed",
                    **config) -> Dict[str, object]:
    """Pooled scores over all intervals at the top level, `by_kind` micro and macro, the run's
    notes, and `videos`: each video's frame rate, faces, truth, predictions and counts by kind."""
    if not videos:
        raise ValueError("spotting: no videos to evaluate")
    truth, predicted, per_video, notes, shortest = [], [], {}, [], set()
    for video in videos:
        run = video_events(video, flow, reference, **config)
        found = run["events"]
        notes += [n for n in run["notes"] if n not in notes]
        shortest.add(run["min_event_ms"])
        gt = sorted((e.onset, e.offset, e.kind) for e in video.events)
        truth.append(gt)
        predicted.append(found)
        counts = spotting_by_kind([gt], [found])
        per_video[f"{video.subject}/{video.name}"] = {
            "fps": video.fps, "faces": run["faces"], "truth": gt, "predicted": found,
            **{k: {n: counts[k][n] for n in ("tp", "n_true", "n_pred")} for k in ("micro", "macro")}}
    scores = spotting_by_kind(truth, predicted, 0.5)
    if config.get("spot_score") == "learned" and "spotter_model" not in config:
        from microexp.edge.config import DEFAULT_SPOTTER
        config = dict(config, spotter_model=str(DEFAULT_SPOTTER))
    config = dict(config, min_event_ms=sorted(shortest)[0] if len(shortest) == 1 else sorted(shortest))
    return {"flow": flow, "reference": reference, "config": config, "iou": 0.5, "videos_evaluated": len(videos),
            "fps": sorted({v.fps for v in videos}), **scores["all"], "by_kind": {k: scores[k] for k in ("micro", "macro")},
            "notes": notes, "videos": per_video}


def read_sheet(root: Path, kinds: bool = False) -> Dict[tuple, List[tuple]]:
    """(subject, clip) -> [(onset, offset)] as 0-based frame indices within the clip folder;
    with `kinds`, [(onset, offset, 'micro' | 'macro')] from the sheet's Micro column."""
    truth: Dict[tuple, List[tuple]] = {}
    with open(root / "samm.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            key = (row["Subject"], row["Filename"])
            interval = (int(row["Onset Frame"]) - 1, int(row["Offset Frame"]) - 1)
            if kinds:
                interval += ("macro" if "macro" in (row.get("Micro") or "").lower() else "micro",)
            truth.setdefault(key, []).append(interval)
    for key in list(truth):
        truth[key].sort()
    # clips without events still count (their predictions are false positives)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for clip in sorted(p for p in sub.iterdir() if p.is_dir()):
            truth.setdefault((sub.name, clip.name), [])
    return truth


def synth_videos(root) -> List[LongVideo]:
    """A generated set (`microexp synth`, SAMM layout) as videos: each clip folder, its events
    from samm.csv with their kinds, its frame rate from set.json."""
    import json

    from .datasets.long_videos import SpotEvent
    root = Path(root)
    fps = json.loads((root / "set.json").read_text())["fps"] if (root / "set.json").is_file() else 200.0
    return [LongVideo(subject, clip, root / subject / clip, fps,
                      [SpotEvent(a, a, b, kind) for a, b, kind in events])
            for (subject, clip), events in sorted(read_sheet(root, kinds=True).items())]


def with_fps(videos: Sequence[LongVideo], fps) -> List[LongVideo]:
    """The videos at another frame rate (a set whose stated rate is wrong), or as they are."""
    return [dataclasses.replace(v, fps=float(fps)) for v in videos] if fps else list(videos)
