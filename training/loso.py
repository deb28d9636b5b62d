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
import multiprocessing as mp
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .datasets.megc import FALLBACK_LANDMARKS_28
from .experiment import Experiment, build_model
from .regions import compose_batch, flip_landmarks, flip_maps

_SHARED: Dict[str, object] = {}  # the data, inherited by forked fold workers


def atomic_write_json(path: Path, payload) -> None:
    """Write JSON to a temporary file and rename it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def atomic_torch_save(path: Path, payload) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    torch.save(payload, tmp)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def prepare_inputs(exp: Experiment, maps: np.ndarray, rng: Optional[np.random.Generator] = None,
                   landmarks: Optional[np.ndarray] = None) -> torch.Tensor:
    """Model input from whole maps: optional landmark jitter and random flip (training only),
    region composite (per-sample landmarks (N, 5, 2) on the 28x28 grid, or HTNet's fallback
    ones), scaling."""
    x = maps
    if rng is not None and exp.landmark_jitter:
        base = FALLBACK_LANDMARKS_28[None] if landmarks is None else np.asarray(landmarks, np.float64)
        j = exp.landmark_jitter
        landmarks = base + rng.integers(-j, j + 1, size=(len(x), 5, 2))
    if rng is not None and exp.flip:
        chosen = rng.random(len(x)) < 0.5
        x = x.copy()
        x[chosen] = flip_maps(x[chosen])
        if landmarks is not None:
            landmarks = np.array(landmarks, dtype=np.float64)
            landmarks[chosen] = flip_landmarks(landmarks[chosen])
    if exp.input == "composite":
        x = compose_batch(x, landmarks)
    return torch.from_numpy(np.ascontiguousarray(x * exp.scale, dtype=np.float32))


def loss_function(exp: Experiment, train_targets: np.ndarray, num_outputs: int) -> nn.Module:
    if exp.task == "emotion":
        weight = None
        if exp.class_balance:
            counts = np.bincount(train_targets, minlength=num_outputs).astype(np.float64)
            weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / num_outputs, dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight)
    positives = train_targets.sum(axis=0)
    negatives = len(train_targets) - positives
    ratio = negatives / np.maximum(positives, 1)
    if exp.pos_weight_cap is not None:
        ratio = np.minimum(ratio, exp.pos_weight_cap)
    pos_weight = torch.tensor(ratio, dtype=torch.float32)
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight)


def default_device() -> torch.device:
    """CPU unless CUDA is present (MICROEXP_DEVICE overrides)."""
    return torch.device(os.environ.get("MICROEXP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def logits_of(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def predict(exp: Experiment, model: nn.Module, x: torch.Tensor, thresholds=None) -> np.ndarray:
    """Class ids (emotion) or 0/1 decisions (au) at `thresholds` (default: exp.threshold)."""
    logits = logits_of(model, x)
    if exp.task == "emotion":
        return logits.argmax(1).numpy()
    t = exp.threshold if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float32)
    return (torch.sigmoid(logits) >= t).numpy().astype(np.int64)


THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def inner_thresholds(exp: Experiment, maps: np.ndarray, targets: np.ndarray,
                     subjects: np.ndarray) -> np.ndarray:
    """Per-AU thresholds chosen without the test fold: train on 80% of these (training)
    subjects, pick for each AU the grid threshold with the best F1 on the other 20%. An AU
    with no positive in the inner validation keeps exp.threshold."""
    from .metrics import binary_f1
    names = sorted(set(subjects.tolist()))
    rng = np.random.default_rng(exp.seed)
    val_subjects = rng.choice(names, size=max(1, len(names) // 5), replace=False)
    val = np.isin(subjects, val_subjects)
    model = train_model(exp, maps[~val], targets[~val])
    probs = torch.sigmoid(logits_of(model, prepare_inputs(exp, maps[val]))).numpy()
    chosen = np.full(targets.shape[1], exp.threshold, np.float32)
    for j in range(targets.shape[1]):
        if targets[val, j].sum() == 0:
            continue
        scores = [binary_f1(targets[val, j], probs[:, j] >= t) for t in THRESHOLD_GRID]
        chosen[j] = THRESHOLD_GRID[int(np.nanargmax(scores))]
    return chosen


def num_outputs_for(exp: Experiment, targets: np.ndarray) -> int:
    return 3 if exp.task == "emotion" else targets.shape[1]


def train_model(exp: Experiment, maps: np.ndarray, targets: np.ndarray, *,
                landmarks: Optional[np.ndarray] = None, epoch_callback: Optional[Callable[[int, nn.Module], None]] = None,
                state: Optional[dict] = None, checkpoint: Optional[Callable[[dict], None]] = None,
                checkpoint_every: int = 0, subjects: Optional[np.ndarray] = None) -> nn.Module:
    """Train one model on (maps, targets) for exp.epochs epochs; resumes from `state`. The
    linear model is fitted instead (linear_fit.py), its penalty chosen among `subjects`."""
    if exp.model == "linear":
        from .linear_fit import fit_linear
        return fit_linear(exp, maps, targets, subjects, landmarks=landmarks).to(default_device())
    torch.manual_seed(exp.seed)
    rng = np.random.default_rng(exp.seed)
    device = default_device()
    outputs = num_outputs_for(exp, targets)
    model = build_model(exp, outputs).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=exp.lr, weight_decay=exp.weight_decay)
    criterion = loss_function(exp, targets, outputs).to(device)
    y = torch.from_numpy(targets.astype(np.int64 if exp.task == "emotion" else np.float32)).to(device)
    start = 1
    if state is not None:
        model.load_state_dict(state["model"])  # saved from the same device kind
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        start = state["epoch"] + 1
    for epoch in range(start, exp.epochs + 1):
        model.train()
        x = prepare_inputs(exp, maps, rng, landmarks).to(device)
        order = torch.from_numpy(rng.permutation(len(x))).to(device)
        for i in range(0, len(x), exp.batch_size):
            idx = order[i:i + exp.batch_size]
            if len(idx) < 2 and len(x) >= 2:
                continue  # BatchNorm needs two samples; the remainder rejoins next epoch
            optimiser.zero_grad()
            loss = criterion(model(x[idx]), y[idx])
            loss.backward()
            optimiser.step()
        if epoch_callback is not None:
            epoch_callback(epoch, model)
        if checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0 and epoch < exp.epochs:
            checkpoint({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "epoch": epoch})
    return model


def probabilities(exp: Experiment, model: nn.Module, maps: np.ndarray,
                  landmarks: Optional[np.ndarray] = None) -> np.ndarray:
    """Class probabilities (emotion: softmax) or label probabilities (au: sigmoid) of whole maps."""
    logits = logits_of(model, prepare_inputs(exp, maps, landmarks=landmarks))
    return (torch.softmax(logits, 1) if exp.task == "emotion" else torch.sigmoid(logits)).numpy()


def decide(exp: Experiment, probs: np.ndarray, thresholds=None) -> np.ndarray:
    """Class ids (emotion) or 0/1 decisions (au) from probabilities."""
    if exp.task == "emotion":
        return probs.argmax(1)
    t = exp.threshold if thresholds is None else np.asarray(thresholds, dtype=np.float32)
    return (probs >= t).astype(np.int64)


def combine_members(exp: Experiment, members: List[dict]) -> np.ndarray:
    """The ensemble's probabilities: each member's (averaged with its mirrored-input output when
    tta_flip), then the mean over members."""
    per_member = [(np.asarray(m["probs"]) + np.asarray(m["probs_flipped"])) / 2 if exp.tta_flip
                  else np.asarray(m["probs"]) for m in members]
    return np.mean(per_member, axis=0)


def run_fold(exp: Experiment, subject: str, out_dir: Optional[Path], checkpoint_every: int = 10) -> dict:
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
        pred = predict(exp, model, x_test)
        accuracy = float(np.mean(np.all(pred.reshape(len(pred), -1) == y_test.reshape(len(pred), -1), axis=1)))
        best["by_epoch"] = best["by_epoch"][:epoch - 1] + [pred.tolist()]
        if best["accuracy"] <= accuracy:  # ties go to the later epoch, as in the official code
            best.update(accuracy=accuracy, epoch=epoch, pred=pred)

    thresholds = None
    if exp.task == "au" and exp.inner_thresholds:
        thresholds = inner_thresholds(exp, maps[train], targets[train], subjects[train])
    members, model = [], None
    for k in range(exp.ensemble):
        member_exp = dataclasses.replace(exp, seed=exp.seed + k)
        # One model keeps the original file names, so runs made before ensembles resume as before.
        stem = subject if exp.ensemble == 1 else f"{subject}.m{k}"
        finished = out_dir / "folds" / f"{stem}.json" if out_dir and exp.ensemble > 1 else None
        if finished is not None and finished.is_file():
            members.append(json.loads(finished.read_text()))
            continue
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

        model = train_model(member_exp, maps[train], targets[train], landmarks=lm_train,
                            epoch_callback=on_epoch, state=state, checkpoint=checkpoint,
                            checkpoint_every=checkpoint_every, subjects=subjects[train])
        member = {"seed": member_exp.seed, "probs": probabilities(exp, model, maps[test], lm_test).tolist()}
        if exp.tta_flip:
            member["probs_flipped"] = probabilities(
                exp, model, flip_maps(maps[test]), None if lm_test is None else flip_landmarks(lm_test)).tolist()
        if exp.probe_landmarks is not None:
            probe = np.repeat(np.asarray(exp.probe_landmarks, np.float64)[None], int(test.sum()), axis=0)
            member["probs_probe"] = probabilities(exp, model, maps[test], probe).tolist()
        members.append(member)
        if finished is not None:
            atomic_write_json(finished, member)
        if ckpt_path is not None and ckpt_path.is_file():
            ckpt_path.unlink()
    if exp.protocol == "oracle-epoch":
        pred, probs = best["pred"], None
    else:
        probs = combine_members(exp, members)
        pred = decide(exp, probs, thresholds)
    extra = onnx_predictions(exp, model, maps[test], thresholds, lm_test) if _SHARED.get("int8_eval") else {}
    result = {**extra, "subject": subject, "indices": np.flatnonzero(test).tolist(),
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


def onnx_predictions(exp: Experiment, model: nn.Module, test_maps: np.ndarray, thresholds,
                     landmarks: Optional[np.ndarray] = None) -> dict:
    """The fold's model exported to ONNX and quantised to INT8 (microexp.export), predicting the
    held-out subject with ONNX Runtime: the accuracy change of deployment, fold by fold."""
    import onnxruntime as ort

    from microexp.export.onnx_export import export_onnx
    from microexp.export.quantize import quantize_int8

    from .checkpoint import save_checkpoint
    labels = _SHARED["labels"]
    x = prepare_inputs(exp, test_maps, landmarks=landmarks).numpy()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "fold.pt", model.cpu(), exp, dataset=_SHARED["dataset"],
                               labels=labels, metrics={}, provenance="LOSO fold", thresholds=thresholds)
        fp32 = export_onnx(ckpt, Path(tmp) / "fold.onnx", parity_samples=8).onnx_path
        int8 = quantize_int8(fp32, Path(tmp) / "fold.int8.onnx", calibration_samples=64)
        for name, path in (("pred_ort_fp32", fp32), ("pred_ort_int8", int8)):
            logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            if exp.task == "emotion":
                pred = logits.argmax(1)
            else:
                t = exp.threshold if thresholds is None else np.asarray(thresholds)
                pred = (1 / (1 + np.exp(-logits)) >= t).astype(np.int64)
            out[name] = pred.tolist()
    return out


def _init_worker(shared):
    _SHARED.update(shared)


def run_loso(exp: Experiment, maps: np.ndarray, targets: np.ndarray, subjects: Sequence[str],
             out_dir=None, workers: int = 1, folds: Optional[Sequence[str]] = None,
             progress: bool = True, checkpoint_every: int = 10, int8_eval: bool = False,
             dataset: str = "", labels: Optional[Sequence[str]] = None,
             landmarks: Optional[np.ndarray] = None) -> List[dict]:
    """All LOSO folds (or the named ones); finished folds found in out_dir are reused.
    `landmarks` (N, 5, 2): per-sample composite landmarks on the 28x28 grid (exp.landmarks)."""
    subjects = np.asarray(subjects)
    if int8_eval and (exp.ensemble > 1 or exp.tta_flip):
        raise ValueError("run_loso: --int8-eval scores one exported model per fold; not with an "
                         "ensemble or flip averaging")
    if landmarks is not None and np.shape(landmarks) != (len(maps), 5, 2):
        raise ValueError(f"run_loso: landmarks must be (N, 5, 2) with N = {len(maps)} maps, "
                         f"got {np.shape(landmarks)}")
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
    shared = {"maps": maps, "targets": targets, "subjects": subjects,
              "threads": max(1, (os.cpu_count() or 1) // max(1, workers)),
              "int8_eval": int8_eval, "dataset": dataset, "labels": list(labels or []),
              "landmarks": landmarks}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo) + len(done), initial=len(done), desc="LOSO folds", unit="fold")
    if workers <= 1 or len(todo) <= 1:
        _init_worker(shared)
        for s in todo:
            done.append(run_fold(exp, s, out_dir, checkpoint_every))
            if bar:
                bar.update(1)
    else:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(shared,)) as pool:
            futures = [pool.submit(run_fold, exp, s, out_dir, checkpoint_every) for s in todo]
            for f in as_completed(futures):
                done.append(f.result())
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return sorted(done, key=lambda r: r["subject"])
