"""Evaluations on generated sets (training/synth.py): the runtime's spotting score with the
MEGC interval metric, its AU decisions at each planted apex, and the end-point error of each
flow mode against the known motion."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from .spot_protocol import read_sheet


def spot_eval(root, flow: str = "farneback", fps: Optional[float] = None, reference: str = "fixed",
              **config) -> Dict[str, object]:
    """The runtime's events on every clip of a generated set against its sheet: the MEGC interval
    metric over all events (kinds ignored) at the top level, for micro- and macro-expressions
    separately under `by_kind` (training/spot_protocol.py). `fps`: the clips' rate if not the
    set's (set.json)."""
    from .spot_protocol import spotting_report, synth_videos, with_fps
    report = spotting_report(with_fps(synth_videos(root), fps), flow, reference, **config)
    report["clips"] = report.pop("videos")
    return {"set": str(root), **report}


def read_events(root: Path) -> Dict[tuple, List[dict]]:
    """(subject, clip) -> [{onset, apex, offset (0-based), aus: planted AU numbers}]."""
    from .datasets.au_codes import parse_action_units
    events: Dict[tuple, List[dict]] = {}
    with open(root / "samm.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            events.setdefault((row["Subject"], row["Filename"]), []).append({
                "onset": int(row["Onset Frame"]) - 1, "apex": int(row["Apex Frame"]) - 1,
                "offset": int(row["Offset Frame"]) - 1,
                "aus": parse_action_units(row["Action Units"]).present})
    return events


def au_eval(root, au_model=None, flow: str = "farneback", fps: float = 200.0,
            action_gate: Optional[str] = None) -> Dict[str, object]:
    """The runtime's AU decisions (the model's own thresholds) at every planted apex, the map
    taken from the clip's first, neutral frame (fixed reference, as onset -> apex in training),
    against the AUs planted there: per-AU F1 over the events, for the AUs that the generator
    plants and the model names (all of them, reported or not). Also how often an AU fires on
    calm frames (before the first onset, after the first 10 frames). `action_gate`: None scores
    the classifier's own decisions; a gate file, the gated ones (`microexp eval-outputs` reads
    the gated runtime as it ships)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig

    from .metrics import binary_f1
    root = Path(root)
    events = read_events(root)
    config = {"au_model": str(au_model)} if au_model else {}
    decided, planted, calm_fires, calm_cells, names = [], [], 0, 0, None
    for (subject, clip), evs in sorted(events.items()):
        pipe = Pipeline(PipelineConfig(flow=flow, reference="fixed", emotion_model=None, fps=fps, all_aus=True,
                                       action_gate=action_gate, **config))
        names = list(pipe.au_names)
        apexes = {e["apex"]: e for e in evs}
        first_onset = min(e["onset"] for e in evs)
        for r in pipe.stream(root / subject / clip, fps=fps):
            if not r.success or not r.au:
                continue
            fired = np.array([r.au_present[n] for n in names])
            if r.frame in apexes:
                decided.append(fired)
                planted.append([n in {f"AU{au:02d}" for au in apexes[r.frame]["aus"]} for n in names])
            elif 10 <= r.frame < first_onset:
                calm_fires += int(fired.sum())
                calm_cells += len(names)
    decided, planted = np.array(decided), np.array(planted)
    plantable = [n for n in names if planted[:, names.index(n)].any()] if len(planted) else []
    per_au = {n: {"events": int(planted[:, names.index(n)].sum()),
                  "fired": int(decided[:, names.index(n)].sum()),
                  "f1": binary_f1(planted[:, names.index(n)], decided[:, names.index(n)])} for n in plantable}
    f1s = [v["f1"] for v in per_au.values()]
    return {"set": str(root), "flow": flow, "au_model": str(au_model or "default"), "events": len(decided),
            "per_au": per_au, "mean_f1": float(np.nanmean(f1s)) if f1s else float("nan"),
            "fired_per_event": float(decided.sum(1).mean()) if len(decided) else float("nan"),
            "calm_fire_rate": calm_fires / calm_cells if calm_cells else float("nan")}


def flow_report(root, methods: Sequence[str] = ("farneback", "dis-ultrafast", "dis-fast", "dis-medium", "tvl1"),
                frames_per_clip: int = 4) -> Dict[str, object]:
    """Mean end-point error (px, full-frame scale) inside the detected face box, from each
    clip's first frame to its frames of largest true motion."""
    from microexp.edge.detect import FaceDetector
    from microexp.edge.flow import FlowEstimator
    root = Path(root)
    detector = FaceDetector()
    errors = {m: [] for m in methods}
    for flows_file in sorted(root.glob("*/*/flows.npz")):
        data = np.load(flows_file)
        gt = data["flow"].astype(np.float32)
        scale = float(data["scale"])
        images = sorted(flows_file.parent.glob("*.jpg"))
        first = cv2.imread(str(images[0]))
        faces = detector.detect(first)
        if not faces:
            continue
        x1, y1, x2, y2 = (faces[0].box / scale).astype(int)
        mags = np.linalg.norm(gt[:, y1:y2, x1:x2], axis=-1).mean(axis=(1, 2))
        chosen = np.argsort(-mags)[:frames_per_clip]
        g0 = cv2.cvtColor(first, cv2.COLOR_BGR2GRAY)
        for t in chosen:
            gt_t = gt[t, y1:y2, x1:x2]
            g1 = cv2.cvtColor(cv2.imread(str(images[t])), cv2.COLOR_BGR2GRAY)
            for m in methods:
                est = FlowEstimator(m)(g0, g1)
                small = cv2.resize(est, (gt.shape[2], gt.shape[1]), interpolation=cv2.INTER_AREA)[y1:y2, x1:x2]
                errors[m].append(float(np.linalg.norm(small - gt_t, axis=-1).mean()))
    return {"set": str(root), "pairs": len(next(iter(errors.values()))),
            "mean_epe_px": {m: float(np.mean(v)) if v else float("nan") for m, v in errors.items()},
            "note": "onset -> frames of largest true motion; face box; GT at 1/4 resolution"}


def _probabilities(model, result) -> np.ndarray:
    """A model's per-frame probabilities in a FrameResult, in its label order."""
    values = result.au if model.task == "au" else result.emotion
    return np.array([values[n] for n in model.labels], np.float64)


def flow_shift(root, model, against: str = "tvl1", runtime: str = "farneback",
               fps: float = 200.0) -> Dict[str, object]:
    """How far a model's outputs move when its input maps come from `against` flow instead of
    the runtime's, on the same generated clips: every clip runs through two pipelines that
    differ only in the flow, and on each frame both track, the model's probabilities are
    compared. Reported for frames inside the planted events and for calm frames: the mean
    absolute probability difference, and how often the decision agrees (the top class for
    emotion, every AU's decision at the model's thresholds for AUs)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    root = Path(root)
    events = read_sheet(root)
    task = _task(model)
    models = {"au_model": None, "emotion_model": None, f"{task}_model": str(model)}
    diffs = {"event": [], "calm": []}
    agree = {"event": [], "calm": []}
    spec = None
    for (subject, clip), intervals in sorted(events.items()):
        runs = []
        for flow in (runtime, against):
            with Pipeline(PipelineConfig(flow=flow, fps=fps, **models)) as pipe:
                m = pipe.models()[task]
                spec = m.spec
                runs.append([(r.frame, _probabilities(m, r) if r.success else None)
                             for r in pipe.stream(root / subject / clip, fps=fps)])
        for (frame, a), (_, b) in zip(*runs):
            if a is None or b is None:
                continue
            kind = "event" if any(on <= frame <= off for on, off in intervals) else "calm"
            diffs[kind].append(float(np.abs(a - b).mean()))
            if spec.task == "emotion":
                agree[kind].append(bool(a.argmax() == b.argmax()))
            else:
                t = np.asarray(spec.thresholds)
                agree[kind].append(float(np.mean((a >= t) == (b >= t))))
    out = {"set": str(root), "model": str(model), "runtime_flow": runtime, "against": against}
    for kind in ("event", "calm"):
        out[kind] = {"frames": len(diffs[kind]),
                     "mean_abs_probability_difference": float(np.mean(diffs[kind])) if diffs[kind] else float("nan"),
                     "decision_agreement": float(np.mean(agree[kind])) if agree[kind] else float("nan")}
    e = out["event"]
    decision = "top class" if task == "emotion" else "AU decisions"
    out["summary"] = (f"{e['mean_abs_probability_difference']:.2f} in probability on average, with the same "
                      f"{decision} on {100 * e['decision_agreement']:.0f}% of expression frames, between "
                      f"{against} and {runtime} flow ({e['frames']} frames of generated clips)")
    return out


def _task(model) -> str:
    """'au' or 'emotion': the task in a model file's metadata."""
    from microexp.edge.backends import open_model
    task = open_model(model, "ort-cpu").task
    if task not in ("au", "emotion"):
        raise ValueError(f"flow_shift: {model} is a {task!r} model; only AU and emotion models are compared")
    return task
