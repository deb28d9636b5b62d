"""A small grid of training settings, chosen per LOSO fold without looking at its test subject.

For each outer fold (one held-out subject), every configuration of the grid is scored by an inner
leave-one-subject-out over that fold's training subjects only: each inner fold trains on the
training subjects but one and predicts that one, and the configuration's score is the metric of
its pooled inner predictions (UF1 for emotion, the mean F1 over AUs for AU detection). The best
(the first in grid order on a tie) is then trained on all the training subjects and tested on the
held-out one, so the reported figure never selected anything on test data. The inner results are
files (<out>/sweep/<outer>/c<j>.<inner>.json), so a sweep resumes like the folds do, and each
inner fold is a task of its own (on a process pool or a Ray cluster); training.loso runs them and
the outer folds."""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from microexp.edge.atomic_io import atomic_write_json

from . import fitting, metrics
from .experiment import Experiment
from .fold_data import SHARED
from .inputs import prepare_inputs

# The settings a sweep may choose among: how a model is trained, not what is measured (task,
# protocol) nor what the run is (ensembles, extra data, probes).
SWEEPABLE = {"lr": float, "weight_decay": float, "epochs": int, "batch_size": int, "scale": float,
             "flip": bool, "class_balance": bool, "threshold": float, "landmark_jitter": int}


def parse_grid(text: str) -> List[Dict[str, object]]:
    """'lr=5e-4,1e-3;epochs=20,40' -> every combination, each a dict of Experiment overrides
    converted to the setting's type; ValueError naming what is wrong."""
    axes, seen = [], set()
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--sweep {part!r}: expected name=value,value,...")
        if name not in SWEEPABLE:
            raise ValueError(f"--sweep: {name!r} is not a setting a sweep may choose (one of {', '.join(sorted(SWEEPABLE))})")
        if name in seen:
            raise ValueError(f"--sweep: {name!r} is given twice; list all its values once, comma-separated")
        seen.add(name)
        values = [_convert(name, SWEEPABLE[name], v.strip()) for v in values.split(",")]
        if len(set(values)) != len(values):
            raise ValueError(f"--sweep: {name} lists a value twice")
        axes.append([(name, v) for v in values])
    if not axes:
        raise ValueError("--sweep: no settings given")
    return [dict(combo) for combo in itertools.product(*axes)]


def _convert(name: str, kind, text: str):
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return kind(text)
    except ValueError:
        raise ValueError(f"--sweep: {name}={text!r} is not {'an integer' if kind is int else 'a ' + kind.__name__}") from None


def check_grid(exp: Experiment, grid: List[Dict[str, object]], out_dir) -> None:
    if exp.protocol != "honest":
        raise ValueError("--sweep chooses settings on inner folds; the oracle-epoch protocol selects on the test fold")
    if out_dir is None:
        raise ValueError("--sweep keeps its inner folds' results in the run folder; give one")
    if not grid:
        raise ValueError("--sweep: the grid is empty")
    for overrides in grid:
        configured(exp, overrides)  # raises on a setting the experiment refuses
    out_dir = Path(out_dir)
    recorded = out_dir / "sweep" / "grid.json"
    if recorded.is_file():
        if json.loads(recorded.read_text()) != grid:
            raise ValueError(f"{out_dir}: this run folder was swept over another grid ({recorded}); "
                             "choose another --out")
    elif (out_dir / "folds").is_dir() and any((out_dir / "folds").glob("*.json")):
        raise ValueError(f"{out_dir}: this run folder holds folds trained without a sweep; choose another --out")
    else:
        atomic_write_json(recorded, grid)


def configured(exp: Experiment, overrides: Dict[str, object]) -> Experiment:
    return dataclasses.replace(exp, **overrides)


def _inner_path(out_dir: Path, outer: str, j: int, inner: str) -> Path:
    return Path(out_dir) / "sweep" / outer / f"c{j}.{inner}.json"


def _inner_subjects(outer: str, subjects=None) -> List[str]:
    subjects = SHARED["subjects"] if subjects is None else subjects
    return sorted(set(np.asarray(subjects).tolist()) - {outer})


def missing(grid: List[Dict[str, object]], outer: str, out_dir: Path, subjects) -> List[Tuple[int, str]]:
    """(configuration, inner subject) pairs of `outer`'s inner folds without a result file."""
    inner = _inner_subjects(outer, subjects)
    return [(j, t) for j in range(len(grid)) for t in inner if not _inner_path(out_dir, outer, j, t).is_file()]


def inner_fold(exp: Experiment, grid: List[Dict[str, object]], outer: str, j: int, inner: str, out_dir: Path) -> str:
    """Configuration j trained on every subject but `outer` and `inner`, its predictions on `inner`."""
    import torch
    maps, targets, subjects = SHARED["maps"], SHARED["targets"], np.asarray(SHARED["subjects"])
    landmarks = SHARED.get("landmarks")
    torch.set_num_threads(int(SHARED.get("threads", 1)))
    config = configured(exp, grid[j])
    train = (subjects != outer) & (subjects != inner)
    test = subjects == inner
    model = fitting.train_model(config, maps[train], targets[train],
                                landmarks=None if landmarks is None else landmarks[train],
                                subjects=subjects[train], extra=SHARED.get("extra"))
    x_test = prepare_inputs(config, maps[test], landmarks=None if landmarks is None else landmarks[test])
    thresholds = getattr(model, "thresholds", None)
    pred = fitting.predict(config, model, x_test, thresholds)
    atomic_write_json(_inner_path(out_dir, outer, j, inner), {"pred": np.asarray(pred).tolist(),
                                                              "true": targets[test].tolist()})
    return inner


def score(exp: Experiment, pred: np.ndarray, true: np.ndarray, num_classes: int) -> float:
    """UF1 (emotion) or the mean F1 over AUs (au) of pooled predictions."""
    if exp.task == "au":
        f1 = [metrics.binary_f1(true[:, i], pred[:, i]) for i in range(true.shape[1])]
        return float(np.nanmean(f1)) if not np.all(np.isnan(f1)) else 0.0  # NaN: an AU absent and never predicted
    return float(metrics.uf1_uar(true.tolist(), pred.tolist(), num_classes)["uf1"])


def choose(exp: Experiment, grid: List[Dict[str, object]], outer: str, out_dir: Path) -> Tuple[int, List[float]]:
    """(index of the chosen configuration, every configuration's inner score)."""
    labels = SHARED.get("labels") or []
    num_classes = len(labels) if labels else int(np.asarray(SHARED["targets"]).max()) + 1
    inner_subjects = _inner_subjects(outer)
    scores = []
    for j in range(len(grid)):
        runs = [json.loads(_inner_path(out_dir, outer, j, t).read_text()) for t in inner_subjects]
        pred = np.concatenate([np.asarray(r["pred"]) for r in runs])
        true = np.concatenate([np.asarray(r["true"]) for r in runs])
        scores.append(score(exp, pred, true, num_classes))
    return int(np.argmax(scores)), scores  # argmax: the first of equal scores
