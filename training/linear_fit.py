"""Fitting the pooled linear model (models/linear.py): class-balanced logistic regression with
an L2 penalty, solved by Newton's method in float64 (deterministic, no epochs), its inverse
penalty C chosen on held-out training subjects only (one at a time, or in groups).

Objective per output, as scikit-learn writes it: sum_i w_i * loss_i + ||W||^2 / (2 C), the
intercept unpenalised; w_i = n / (classes * n_class(i)) ("balanced"). Emotion: one softmax over
the 3 classes, one C. AUs: an independent sigmoid per AU, each AU with its own C. An AU that
is all negative (or all positive) in the training data never (always) fires.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

from .datasets.megc import FALLBACK_LANDMARKS_28
from .experiment import Experiment
from .inputs import num_outputs_for, prepare_inputs
from .metrics import binary_f1, uf1_uar
from .models.linear import PooledLinear
from .regions import flip_landmarks, flip_maps

_SURE = 12.0  # logit of an AU that was constant in training: sigmoid(12) = 0.999994


def balanced_weights(task: str, y: np.ndarray, classes: int) -> np.ndarray:
    """Sample weights (N,) for emotion, (N, A) for AUs; 0 for an AU column with one class."""
    n = len(y)
    if task == "emotion":
        counts = np.bincount(y, minlength=classes).astype(np.float64)
        present = int((counts > 0).sum())
        return n / (present * counts[y])
    positives = y.sum(0).astype(np.float64)
    negatives = n - positives
    varied = (positives > 0) & (negatives > 0)
    w = np.where(y > 0, n / (2 * np.maximum(positives, 1)), n / (2 * np.maximum(negatives, 1)))
    return w * varied


def solve(features: np.ndarray, y: np.ndarray, task: str, inverse_penalty,
          classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(W (K, F), b (K,)) minimising the objective above on standardised features, by damped
    Newton steps (convex and small: F + 1 unknowns per output). Torch float64, so the fold
    workers' thread setting (torch.set_num_threads) holds for the linear algebra too."""
    x = torch.from_numpy(np.hstack([np.asarray(features, np.float64), np.ones((len(features), 1))]))
    k = classes if task == "emotion" else y.shape[1]
    ridge = torch.empty(k, x.shape[1], dtype=torch.float64)
    ridge[:, :-1] = torch.from_numpy(
        1.0 / np.broadcast_to(np.asarray(inverse_penalty, np.float64), (k,)).copy())[:, None]
    ridge[:, -1] = 1e-10  # the intercept is unpenalised; this only keeps the Hessian invertible
    weights = torch.from_numpy(balanced_weights(task, y, classes))
    if task == "emotion":
        theta = _newton_softmax(x, torch.eye(classes, dtype=torch.float64)[torch.from_numpy(y)], weights, ridge)
    else:
        theta = _newton_binary(x, torch.from_numpy(y.astype(np.float64)), weights, ridge)
    theta = theta.numpy()
    w_out, b_out = theta[:, :-1].copy(), theta[:, -1].copy()
    if task == "au":
        positives, n = y.sum(0), len(y)
        for j in np.flatnonzero((positives == 0) | (positives == n)):
            w_out[j] = 0.0
            b_out[j] = _SURE if positives[j] == n else -_SURE
    return w_out, b_out


_NEWTON_STEPS, _TOLERANCE = 100, 1e-9


def _newton_binary(x, y, weights, ridge):
    """Independent penalised logistic regressions, one per column of y, solved together."""
    theta = torch.zeros_like(ridge)

    def losses(t):
        z = x @ t.T  # (N, K)
        return (weights * (torch.nn.functional.softplus(z) - y * z)).sum(0) + 0.5 * (ridge * t ** 2).sum(1)

    current = losses(theta)
    for _ in range(_NEWTON_STEPS):
        p = torch.sigmoid(x @ theta.T)
        grad = (weights * (p - y)).T @ x + ridge * theta  # (K, F+1)
        curvature = weights * p * (1 - p)  # (N, K)
        hessian = torch.einsum("nk,nf->kfn", curvature, x) @ x + torch.diag_embed(ridge)
        # The Hessian is symmetric positive definite (ridge > 0): Cholesky. Batched LU
        # (torch.linalg.solve) fails in MKL's row swaps with 2 threads from 589 unknowns.
        step = torch.cholesky_solve(grad.unsqueeze(-1), torch.linalg.cholesky(hessian)).squeeze(-1)
        theta, current, moved = _damped(theta, step, current, losses)
        if moved < _TOLERANCE:
            break
    return theta


def _newton_softmax(x, onehot, weights, ridge):
    """One penalised multinomial logistic regression (K classes). The intercepts are kept
    centred: adding a constant to all of them changes no probability."""
    k, f = ridge.shape
    theta = torch.zeros_like(ridge)

    def loss(t):
        z = x @ t[0].T
        return ((weights * (torch.logsumexp(z, 1) - (onehot * z).sum(1))).sum()
                + 0.5 * (ridge * t[0] ** 2).sum()).reshape(1)

    current = loss(theta[None])
    for _ in range(_NEWTON_STEPS):
        p = torch.softmax(x @ theta.T, 1)
        grad = (weights[:, None] * (p - onehot)).T @ x + ridge * theta
        hessian = torch.zeros(k, f, k, f, dtype=torch.float64)
        for a in range(k):
            for b in range(k):
                c = weights * p[:, a] * (float(a == b) - p[:, b])
                hessian[a, :, b, :] = (x * c[:, None]).T @ x
            hessian[a, :, a, :] += torch.diag(ridge[a])
        step = torch.linalg.solve(hessian.reshape(k * f, k * f), grad.reshape(-1)).reshape(k, f)
        step[:, -1] -= step[:, -1].mean()
        theta, current, moved = _damped(theta[None], step[None], current, loss)
        theta = theta[0]
        if moved < _TOLERANCE:
            break
    return theta


def _damped(theta, step, current, losses):
    """theta - t * step with t halved (per output row) until the loss does not increase;
    returns the new parameters, their losses and the largest parameter change."""
    t = torch.ones(len(theta), dtype=torch.float64)
    shape = (-1,) + (1,) * (theta.dim() - 1)
    for _ in range(40):
        trial = theta - t.reshape(shape) * step
        new = losses(trial)
        worse = new > current + 1e-12 * current.abs()
        if not worse.any():
            break
        t[worse] /= 2
    else:
        trial = torch.where(worse.reshape(shape), theta, trial)
        new = torch.where(worse, current, new)
    return trial, new, float((trial - theta).abs().max())


def standardise(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the training features (a constant feature keeps spread 1)."""
    mean = features.mean(0)
    spread = features.std(0)
    return mean, np.where(spread > 1e-8, spread, 1.0)


def fit_predict_scores(train_x, train_y, test_x, task, inverse_penalty, classes) -> np.ndarray:
    """Decision scores of test_x (logits) from a fit on the training features."""
    mean, spread = standardise(train_x)
    w, b = solve((train_x - mean) / spread, train_y, task, inverse_penalty, classes)
    return ((test_x - mean) / spread) @ w.T + b


def inner_split(subjects: np.ndarray, folds: Optional[int]) -> List[List[str]]:
    """The held-out groups of the inner selection: every subject alone (None), or the sorted
    subjects dealt round-robin into `folds` groups."""
    names = sorted(set(subjects.tolist()))
    if folds is None or folds >= len(names):
        return [[n] for n in names]
    return [names[i::folds] for i in range(folds)]


THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def choose_inverse_penalty(features: np.ndarray, y: np.ndarray, subjects: np.ndarray, task: str,
                           grid, classes: int, threshold: float = 0.5,
                           groups: Optional[np.ndarray] = None, folds: Optional[int] = None,
                           with_thresholds: bool = False):
    """C per output (AUs) or one C (emotion, repeated per class) with the best pooled score
    over held-out subjects (one at a time, or the groups of `folds`): F1 of each AU at
    `threshold`, or UF1.
    Ties go to the smaller C (the stronger penalty). `groups` maps every row to its subject
    when copies (mirrored, jittered) follow the original rows; a held-out subject's copies are
    held out too. `folds`: held-out groups of subjects instead of single subjects (inner_split).
    `with_thresholds` (AUs): also each AU's decision threshold on sigmoid(logit), the grid value
    with the best pooled F1 of the same held-out predictions at its chosen C (ties: the value
    nearest 0.5); returns (C, thresholds) then."""
    groups = subjects if groups is None else groups
    held_out = inner_split(subjects, folds)
    grid = sorted(float(c) for c in grid)
    n = len(subjects)  # the original rows come first; their copies follow
    scores, held_logits = [], []
    for c in grid:
        logits_all = np.zeros((n, classes if task == "emotion" else y.shape[1]), np.float64)
        for names in held_out:
            test = np.flatnonzero(np.isin(subjects, names))
            train = np.flatnonzero(~np.isin(groups, names))
            logits_all[test] = fit_predict_scores(features[train], y[train], features[test], task, c, classes)
        held_logits.append(logits_all)
        truth = y[:n]
        if task == "emotion":
            scores.append([uf1_uar(truth, logits_all.argmax(1), classes)["uf1"]] * classes)
        else:
            decided = logits_all >= _logit(threshold)
            scores.append([binary_f1(truth[:, j], decided[:, j]) for j in range(y.shape[1])])
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=-1.0)
    best = np.argmax(scores, axis=0)  # argmax keeps the first (smallest C)
    chosen = np.asarray(grid)[best]
    if not with_thresholds:
        return chosen
    if task != "au":
        raise ValueError("choose_inverse_penalty: thresholds are chosen for AUs only")
    thresholds = np.full(y.shape[1], threshold)
    for j in range(y.shape[1]):
        if y[:n, j].sum() == 0:
            continue  # never present in training: the model says never; any threshold will do
        probs = 1 / (1 + np.exp(-held_logits[best[j]][:, j]))
        f1 = np.nan_to_num([binary_f1(y[:n, j], probs >= t) for t in THRESHOLD_GRID], nan=-1.0)
        tied = THRESHOLD_GRID[f1 == f1.max()]
        thresholds[j] = float(tied[np.argmin(np.abs(tied - 0.5))])
    return chosen, thresholds


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def fit_linear(exp: Experiment, maps: np.ndarray, targets: np.ndarray, subjects: np.ndarray,
               landmarks: Optional[np.ndarray] = None, extra=None) -> PooledLinear:
    """The pooled linear model fitted on these maps, C chosen among these subjects only.
    exp.flip adds every map's mirrored copy (flow semantics kept: u negated; HSV maps with
    'chroma' features are mirrored in the decoded plane) to the fit;
    exp.landmark_jitter adds jitter_copies copies of every map (and mirror) whose composite
    landmarks each moved by random integer offsets in [-j, j] px (numpy seed exp.seed)."""
    if subjects is None or len(subjects) != len(maps):
        raise ValueError("fit_linear: one subject per map is needed to choose the penalty")
    subjects = np.asarray(subjects)
    classes = num_outputs_for(exp, targets)
    model = PooledLinear(classes, **exp.model_args)
    views = [(maps, landmarks)]
    if exp.flip and exp.task == "emotion":
        views.append((flip_maps(maps), None if landmarks is None else flip_landmarks(landmarks)))
    if exp.landmark_jitter:
        rng = np.random.default_rng(exp.seed)
        j = exp.landmark_jitter
        for _ in range(model.config["jitter_copies"]):
            for view_maps, view_landmarks in list(views[:2 if exp.flip else 1]):
                base = FALLBACK_LANDMARKS_28[None] if view_landmarks is None else view_landmarks
                moved = base + rng.integers(-j, j + 1, size=(len(maps), 5, 2))
                views.append((view_maps, moved))
    with torch.no_grad():
        features = torch.cat([model.pooled(prepare_inputs(exp, m, landmarks=lm)) for m, lm in views])
        if exp.flip and exp.task == "au":  # HSV maps: mirrored in the decoded plane (models/linear.py)
            features = torch.cat([features, model.pooled(prepare_inputs(exp, maps), mirrored=True)])
        features = features.double().numpy()
    copies = len(features) // len(maps)
    y = np.concatenate([targets] * copies)
    groups = np.concatenate([subjects] * copies)
    if extra is not None:  # (maps, targets): rows in every inner training set, never held out
        extra_maps, extra_targets = extra[0], extra[1]
        with torch.no_grad():
            extra_features = model.pooled(prepare_inputs(exp, extra_maps)).double().numpy()
        features = np.concatenate([features, extra_features])
        y = np.concatenate([y, extra_targets])
        groups = np.concatenate([groups, np.full(len(extra_maps), "\0extra")])
    chosen = choose_inverse_penalty(features, y, subjects, exp.task, model.config["c_grid"], classes,
                                    exp.threshold, groups, model.config["inner_folds"],
                                    with_thresholds=exp.inner_thresholds)
    c, thresholds = chosen if exp.inner_thresholds else (chosen, None)
    mean, spread = standardise(features)
    w, b = solve((features - mean) / spread, y, exp.task, c, classes)
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(mean))
        model.spread.copy_(torch.from_numpy(spread))
        model.linear.weight.copy_(torch.from_numpy(w))
        model.linear.bias.copy_(torch.from_numpy(b))
    model.inverse_penalty = c.tolist()  # loso.py reports it per fold
    if thresholds is not None:
        model.thresholds = thresholds.tolist()  # chosen on the same held-out training subjects
    return model.eval()
