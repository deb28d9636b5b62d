"""Evaluations on generated sets (training/synth.py): the runtime's spotting score with the
MEGC interval metric, and the end-point error of each flow mode against the known motion."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

from .metrics import spotting_scores


def read_sheet(root: Path) -> Dict[tuple, List[tuple]]:
    """(subject, clip) -> [(onset, offset)] as 0-based frame indices within the clip folder."""
    truth: Dict[tuple, List[tuple]] = {}
    with open(root / "samm.csv", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            key = (row["Subject"], row["Filename"])
            truth.setdefault(key, []).append((int(row["Onset Frame"]) - 1, int(row["Offset Frame"]) - 1))
    for key in list(truth):
        truth[key].sort()
    # clips without events still count (their predictions are false positives)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for clip in sorted(p for p in sub.iterdir() if p.is_dir()):
            truth.setdefault((sub.name, clip.name), [])
    return truth


def spot_eval(root, flow: str = "farneback", fps: float = 200.0, reference: str = "fixed",
              **config) -> Dict[str, object]:
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    root = Path(root)
    truth = read_sheet(root)
    gt, pred, per_clip = [], [], {}
    for (subject, clip), intervals in sorted(truth.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = Pipeline(PipelineConfig(flow=flow, reference=reference, emotion_model=None, fps=fps, **config))
        found = [(r.event.onset_frame, r.event.offset_frame)
                 for r in pipe.stream(root / subject / clip, fps=fps) if r.event is not None]
        gt.append(intervals)
        pred.append(found)
        per_clip[f"{subject}/{clip}"] = {"truth": intervals, "predicted": found}
    return {"set": str(root), "flow": flow, "reference": reference, "config": config, "iou": 0.5,
            **spotting_scores(gt, pred, 0.5), "clips": per_clip}


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
