"""Leave-one-subject-out training and evaluation, resumable and parallel over folds.

Data in: maps (N, 3, 28, 28) float32 0..255, targets (N,) class ids or (N, A) 0/1, subjects.
Each fold trains a fresh model on every other subject and predicts the held-out subject:
* honest: the model after the fixed number of epochs, the fixed AU threshold;
* oracle-epoch: after every epoch the test fold is scored and the epoch with the best
  accuracy on it is kept (ties go to the later epoch), as the official HTNet code does. This
  selects on the test set; it exists only to reproduce the published table. Every epoch's test
  predictions are kept too ("pred_by_epoch"), so the same run also gives the fixed-epoch
  figures; the configured last epoch's is the honest one (report.py).
With exp.ensemble > 1 (honest only) a fold trains one model per seed and decides on their mean
probabilities (exp.tta_flip: each model's output also averaged with its output on the mirrored
maps); each member's probabilities are kept in the fold's result for the summary's ablations,
and a finished member is kept in <out>/folds/<subject>.m<k>.json until its fold is written.
A finished fold is written to <out>/folds/<subject>.json; an unfinished one keeps
<out>/folds/<subject>.pt (model, optimiser, epoch, RNG) every `checkpoint_every` epochs, so a
run that is interrupted resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from microexp.edge.atomic_io import atomic_write_json

from . import fitting
from .checkpoint import atomic_torch_save
from .experiment import Experiment
from .fold_data import SHARED, install
from .inputs import prepare_inputs
from .regions import flip_landmarks, flip_maps

_SHARED = SHARED  # the data, installed in each worker (fold_data)
# A fold's extra predictions from its trained model: (exp, model, test maps, thresholds, test
# landmarks, labels, dataset name) -> dict merged into the fold's result. microexp.export
# provides one (deployed ONNX / INT8 predictions); training itself never exports.
FoldExtra = Callable[..., dict]


def run_fold(exp: Experiment, subject: str, out_dir: Optional[Path], checkpoint_every: int = 10,
             notes: Optional[dict] = None) -> dict:
    """One fold: trained on every other subject, its predictions on `subject` (written to
    folds/<subject>.json with `notes` added, e.g. the configuration a sweep chose)."""
    maps, targets, subjects = _SHARED["maps"], _SHARED["targets"], _SHARED["subjects"]
    landmarks = _SHARED.get("landmarks")
    test = subjects == subject
    train = ~test
    lm_train, lm_test = (None, None) if landmarks is None else (landmarks[train], landmarks[test])
    x_test = prepare_inputs(exp, maps[test], landmarks=lm_test)
    y_test = targets[test]
    best = {"accuracy": -1.0, "epoch": 0, "pred": None, "by_epoch": []}
    torch.set_num_threads(int(_SHARED.get("threads", 1)))

    def on_epoch(epoch: int, model: nn.Module):
        if exp.protocol != "oracle-epoch":
            return
        pred = fitting.predict(exp, model, x_test)
        accuracy = float(np.mean(np.all(pred.reshape(len(pred), -1) == y_test.reshape(len(pred), -1), axis=1)))
        best["by_epoch"] = best["by_epoch"][:epoch - 1] + [pred.tolist()]
        if best["accuracy"] <= accuracy:  # ties go to the later epoch, as in the official code
            best.update(accuracy=accuracy, epoch=epoch, pred=pred)

    thresholds = None
    if exp.task == "au" and exp.inner_thresholds and exp.model != "linear":
        thresholds = fitting.inner_thresholds(exp, maps[train], targets[train], subjects[train])
    members, model = [], None
    for k in range(exp.ensemble):
        member, trained = train_member(exp, subject, k, out_dir, checkpoint_every, on_epoch, best)
        members.append(member)
        model = trained if trained is not None else model  # a member read back from its file has none
    if getattr(model, "thresholds", None) is not None:  # the linear fit chose them on its inner LOSO
        thresholds = np.asarray(model.thresholds, np.float32)
    if exp.protocol == "oracle-epoch":
        pred, probs = best["pred"], None
    else:
        probs = fitting.combine_members(exp, members)
        pred = fitting.decide(exp, probs, thresholds)
    fold_extra = _SHARED.get("fold_extra")
    extra = fold_extra(exp, model, maps[test], thresholds, lm_test, _SHARED["labels"], _SHARED["dataset"]) \
        if fold_extra is not None else {}
    result = {**extra, **(notes or {}), "subject": subject, "indices": np.flatnonzero(test).tolist(),
              "pred": np.asarray(pred).tolist(), "true": y_test.tolist(),
              "epoch": best["epoch"] if exp.protocol == "oracle-epoch" else exp.epochs,
              "thresholds": None if thresholds is None else thresholds.tolist(),
              "probs": None if probs is None else probs.tolist()}
    if exp.protocol == "oracle-epoch" and len(best["by_epoch"]) == exp.epochs:
        result["pred_by_epoch"] = best["by_epoch"]
    if hasattr(model, "inverse_penalty"):
        result["inverse_penalty"] = model.inverse_penalty  # the linear model's C, chosen in the fold
    if exp.ensemble > 1 or exp.tta_flip or exp.probe_landmarks is not None:
        result["members"] = members  # for the ablations in the summary (report.py)
    if out_dir is not None:
        atomic_write_json(out_dir / "folds" / f"{subject}.json", result)
        for k in range(exp.ensemble if exp.ensemble > 1 else 0):
            (out_dir / "folds" / f"{subject}.m{k}.json").unlink(missing_ok=True)
    return result


def train_member(exp: Experiment, subject: str, k: int, out_dir: Optional[Path], checkpoint_every: int = 10,
                 on_epoch=None, best: Optional[dict] = None):
    """(member, model) for ensemble member k of a fold: trained on every other subject, its
    probabilities on the held-out one. A finished member of an ensemble is kept in
    folds/<subject>.m<k>.json (and read back, model None); an unfinished one resumes from
    folds/<stem>.pt. Also a task of its own (member_task), so a cluster trains members at once."""
    maps, targets, subjects = _SHARED["maps"], _SHARED["targets"], _SHARED["subjects"]
    landmarks = _SHARED.get("landmarks")
    test = subjects == subject
    train = ~test
    lm_train, lm_test = (None, None) if landmarks is None else (landmarks[train], landmarks[test])
    best = {} if best is None else best
    torch.set_num_threads(int(_SHARED.get("threads", 1)))
    member_exp = dataclasses.replace(exp, seed=exp.seed + k)
    # One model keeps the original file names, so runs made before ensembles resume as before.
    stem = subject if exp.ensemble == 1 else f"{subject}.m{k}"
    finished = out_dir / "folds" / f"{stem}.json" if out_dir and exp.ensemble > 1 else None
    if finished is not None and finished.is_file():
        return json.loads(finished.read_text()), None
    ckpt_path = out_dir / "folds" / f"{stem}.pt" if out_dir else None
    state = None
    if ckpt_path is not None and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=False)
        best.update(state.get("oracle_best", {}))
        best.setdefault("by_epoch", [])  # a checkpoint saved before per-epoch predictions were kept
    checkpoint = None
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)

        def checkpoint(payload, path=ckpt_path):
            atomic_torch_save(path, dict(payload, oracle_best=dict(best)))

    model = fitting.train_model(member_exp, maps[train], targets[train], landmarks=lm_train,
                                epoch_callback=on_epoch, state=state, checkpoint=checkpoint,
                                checkpoint_every=checkpoint_every, subjects=subjects[train],
                                extra=_SHARED.get("extra"))
    member = {"seed": member_exp.seed, "probs": fitting.probabilities(exp, model, maps[test], lm_test).tolist()}
    if exp.tta_flip:
        member["probs_flipped"] = fitting.probabilities(
            exp, model, flip_maps(maps[test]), None if lm_test is None else flip_landmarks(lm_test)).tolist()
    if exp.probe_landmarks is not None:
        probe = np.repeat(np.asarray(exp.probe_landmarks, np.float64)[None], int(test.sum()), axis=0)
        member["probs_probe"] = fitting.probabilities(exp, model, maps[test], probe).tolist()
    if finished is not None:
        atomic_write_json(finished, member)
    if ckpt_path is not None and ckpt_path.is_file():
        ckpt_path.unlink()
    return member, model


def member_task(exp: Experiment, subject: str, k: int, out_dir: Path, checkpoint_every: int) -> str:
    """An ensemble member trained as a task of its own; its file is what the fold reads."""
    train_member(exp, subject, k, out_dir, checkpoint_every)
    return subject


def _init_worker(shared):
    install(shared)


def outer_fold(exp: Experiment, grid: List[Dict[str, object]], outer: str, out_dir: Path,
               checkpoint_every: int = 10) -> dict:
    """A sweep's outer fold with the configuration its inner folds chose (training.sweep; inner
    folds not yet run are run here first)."""
    from . import sweep
    for j, t in sweep.missing(grid, outer, out_dir, _SHARED["subjects"]):
        sweep.inner_fold(exp, grid, outer, j, t, out_dir)
    best, scores = sweep.choose(exp, grid, outer, out_dir)
    notes = {"config": grid[best], "inner_scores": [round(s, 6) for s in scores]}
    return run_fold(sweep.configured(exp, grid[best]), outer, out_dir, checkpoint_every, notes=notes)


def run_loso(exp: Experiment, maps: np.ndarray, targets: np.ndarray, subjects: Sequence[str],
             out_dir=None, workers: int = 1, folds: Optional[Sequence[str]] = None,
             progress: bool = True, checkpoint_every: int = 10, fold_extra: Optional[FoldExtra] = None,
             dataset: str = "", labels: Optional[Sequence[str]] = None,
             landmarks: Optional[np.ndarray] = None, extra=None, ray_address: Optional[str] = None,
             sweep: Optional[List[Dict[str, object]]] = None, threads: Optional[int] = None) -> List[dict]:
    """All LOSO folds (or the named ones); finished folds found in out_dir are reused.
    `landmarks` (N, 5, 2): per-sample composite landmarks on the 28x28 grid (exp.landmarks).
    `fold_extra`: a module-level function (see FoldExtra) scoring each fold's one model further,
    e.g. microexp.export.fold_deployment.deployed_predictions. `extra` (maps, targets): training
    rows every fold adds and none tests on (Experiment.extra_maps).
    `workers` > 1 or `ray_address` (see edge.distributed.TaskPool): folds, and with an ensemble
    and an out_dir its members, run as tasks at once; the results are the sequential run's.
    `sweep`: a list of Experiment overrides; each fold chooses one by an inner LOSO over its
    training subjects (training.sweep), never by its test subject."""
    subjects = np.asarray(subjects)
    if fold_extra is not None and (exp.ensemble > 1 or exp.tta_flip):
        raise ValueError("run_loso: a fold_extra (such as --int8-eval) scores one model per fold; not "
                         "with an ensemble or flip averaging")
    if landmarks is not None and np.shape(landmarks) != (len(maps), 5, 2):
        raise ValueError(f"run_loso: landmarks must be (N, 5, 2) with N = {len(maps)} maps, "
                         f"got {np.shape(landmarks)}")
    if sweep is not None:
        from .sweep import check_grid
        check_grid(exp, sweep, out_dir)
    out_dir = Path(out_dir) if out_dir else None
    todo, done = [], []
    for s in (folds if folds is not None else sorted(set(subjects.tolist()))):
        if s not in set(subjects.tolist()):
            raise ValueError(f"run_loso: no samples for subject {s!r}")
        finished = out_dir / "folds" / f"{s}.json" if out_dir else None
        if finished is not None and finished.is_file():
            done.append(json.loads(finished.read_text()))
        else:
            todo.append(s)
    # Torch threads per fold (default: the cores shared out). Float sums depend on it, so runs
    # meant to match bit for bit use the same number.
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    shared = {"maps": maps, "targets": targets, "subjects": subjects, "threads": threads,
              "fold_extra": fold_extra, "dataset": dataset, "labels": list(labels or []),
              "landmarks": landmarks, "extra": extra}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo) + len(done), initial=len(done), desc="LOSO folds", unit="fold")
    if ray_address is None and (workers <= 1 or len(todo) <= 1):
        _init_worker(shared)
        for s in todo:
            done.append(fold_task(exp, sweep, s, out_dir, checkpoint_every))
            if bar:
                bar.update(1)
    else:
        from microexp.edge.distributed import TaskPool
        with TaskPool(workers, ray_address, initializer=_init_worker, shared=shared, start="fork") as pool:
            done += _run_tasks(pool, exp, todo, subjects, out_dir, checkpoint_every, sweep, bar)
    if bar:
        bar.close()
    return sorted(done, key=lambda r: r["subject"])


def fold_task(exp: Experiment, sweep: Optional[List[Dict[str, object]]], subject: str, out_dir: Optional[Path],
              checkpoint_every: int) -> dict:
    """One fold: a sweep's outer fold, or a plain one."""
    if sweep is not None:
        return outer_fold(exp, sweep, subject, out_dir, checkpoint_every)
    return run_fold(exp, subject, out_dir, checkpoint_every)


def _run_tasks(pool, exp: Experiment, todo: Sequence[str], subjects: np.ndarray, out_dir: Optional[Path],
               checkpoint_every: int,
               sweep: Optional[List[Dict[str, object]]], bar) -> List[dict]:
    """The folds as tasks: a fold whose ensemble members (or sweep's inner folds) are still to
    train waits for them, then runs (cheaply: it reads their files)."""
    from . import sweep as inner
    waiting: Dict[str, int] = {}
    results = []

    def fold(s):
        pool.submit(fold_task, exp, sweep, s, out_dir, checkpoint_every, key=("fold", s))

    for s in todo:
        if sweep is not None:
            parts = [(inner.inner_fold, exp, sweep, s, j, t, out_dir) for j, t in inner.missing(sweep, s, out_dir, subjects)]
        elif exp.ensemble > 1 and out_dir is not None:
            parts = [(member_task, exp, s, k, out_dir, checkpoint_every) for k in range(exp.ensemble)
                     if not (out_dir / "folds" / f"{s}.m{k}.json").is_file()]
        else:
            parts = []
        waiting[s] = len(parts)
        for fn, *args in parts:
            pool.submit(fn, *args, key=("part", s))
        if not parts:
            fold(s)
    for (kind, s), result, err in pool.completed():
        if err is not None:
            raise err
        if kind == "part":
            waiting[s] -= 1
            if waiting[s] == 0:
                fold(s)
        else:
            results.append(result)
            if bar:
                bar.update(1)
    return results
