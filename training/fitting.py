"""Training one model and turning its outputs into decisions: the loss, the epoch loop (or the
linear model's closed fit), probabilities, thresholds chosen on inner subjects, and ensembles."""
from __future__ import annotations

import os
from typing import Callable, List, Optional

import numpy as np
import torch
from torch import nn

from .experiment import Experiment, build_model
from .inputs import num_outputs_for, prepare_inputs


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


def train_model(exp: Experiment, maps: np.ndarray, targets: np.ndarray, *,
                landmarks: Optional[np.ndarray] = None, epoch_callback: Optional[Callable[[int, nn.Module], None]] = None,
                state: Optional[dict] = None, checkpoint: Optional[Callable[[dict], None]] = None,
                checkpoint_every: int = 0, subjects: Optional[np.ndarray] = None, extra=None) -> nn.Module:
    """Train one model on (maps, targets) for exp.epochs epochs; resumes from `state`. The
    linear model is fitted instead (linear_fit.py), its penalty chosen among `subjects`;
    `extra` (maps, targets): rows added to its training data (Experiment.extra_maps)."""
    if exp.model == "linear":
        from .linear_fit import fit_linear
        return fit_linear(exp, maps, targets, subjects, landmarks=landmarks, extra=extra).to(default_device())
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
