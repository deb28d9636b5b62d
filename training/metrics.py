"""Recognition and detection metrics of the MEGC protocols (docs/results.md says which is which).

All functions take the predictions of every LOSO fold concatenated (never averaged per fold)."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = truth, columns = prediction."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def uf1_uar(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> Dict[str, float]:
    """Unweighted F1 and unweighted average recall over the classes.

    F1_c = 2TP / (2TP + FP + FN); recall_c = TP / N_c. A class with no samples in y_true has
    no recall and is left out of UAR; its F1 is 0 if it was predicted, else it is left out of
    UF1 too (no samples and no predictions: nothing to score).
    """
    m = confusion(y_true, y_pred, num_classes)
    f1s, recalls = [], []
    for c in range(num_classes):
        tp = m[c, c]
        fn = m[c].sum() - tp
        fp = m[:, c].sum() - tp
        if m[c].sum() > 0:
            recalls.append(tp / m[c].sum())
        if 2 * tp + fp + fn > 0:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"uf1": float(np.mean(f1s)) if f1s else float("nan"),
            "uar": float(np.mean(recalls)) if recalls else float("nan")}


def binary_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of one binary label; 0 when there are no positives and none predicted is undefined,
    returned as NaN."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = np.sum(y_true & y_pred)
    denom = 2 * tp + np.sum(~y_true & y_pred) + np.sum(y_true & ~y_pred)
    return float(2 * tp / denom) if denom else float("nan")


def per_au_f1(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str],
              min_positives: int = 10) -> Dict[str, object]:
    """Per-AU F1 over all folds' predictions, and the mean over AUs with >= min_positives."""
    scores = {name: binary_f1(y_true[:, i], y_pred[:, i]) for i, name in enumerate(names)}
    positives = {name: int(y_true[:, i].sum()) for i, name in enumerate(names)}
    fired = {name: int(y_pred[:, i].sum()) for i, name in enumerate(names)}
    hits = {name: int((y_pred[:, i].astype(bool) & y_true[:, i].astype(bool)).sum()) for i, name in enumerate(names)}
    # precision of an AU never predicted and recall of an AU never present are undefined: None
    precision = {n: hits[n] / fired[n] if fired[n] else None for n in names}
    recall = {n: hits[n] / positives[n] if positives[n] else None for n in names}
    frequent = [n for n in names if positives[n] >= min_positives]
    mean = float(np.mean([scores[n] for n in frequent])) if frequent else float("nan")
    return {"f1": scores, "precision": precision, "recall": recall, "positives": positives,
            "frequent": frequent, f"mean_f1_min{min_positives}": mean}


def intervals(active: Sequence[bool]):
    """Runs of True as inclusive (start, end) frame pairs."""
    out, start = [], None
    for i, a in enumerate(list(active) + [False]):
        if a and start is None:
            start = i
        elif not a and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def interval_iou(a, b) -> float:
    """IoU of inclusive frame intervals (length = end - start + 1)."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def spotting_scores(truth, predicted, iou: float = 0.5) -> Dict[str, float]:
    """MEGC spotting: a prediction is a true positive when its IoU with a not yet matched
    ground-truth interval is >= `iou`. `truth`/`predicted`: lists (one per video) of interval
    lists. Precision = matched / predicted, recall = matched / ground truth, pooled."""
    matched = n_true = n_pred = 0
    for gt, pr in zip(truth, predicted):
        n_true += len(gt)
        n_pred += len(pr)
        free = list(gt)
        for p in pr:
            best = max(free, key=lambda g: interval_iou(p, g), default=None)
            if best is not None and interval_iou(p, best) >= iou:
                matched += 1
                free.remove(best)
    precision = matched / n_pred if n_pred else 0.0
    recall = matched / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": matched, "n_true": n_true, "n_pred": n_pred, "precision": precision,
            "recall": recall, "f1": f1}


def spotting_by_kind(truth, predicted, iou: float = 0.5) -> Dict[str, Dict[str, float]]:
    """MEGC spotting for micro- and macro-expressions separately, and over all intervals (kinds
    ignored). `truth`/`predicted`: per video, lists of (start, end, kind) with kind 'micro' or
    'macro'. A micro prediction can only match a micro interval, a macro one a macro interval."""
    out = {}
    for kind in ("micro", "macro"):
        out[kind] = spotting_scores([[(s, e) for s, e, k in v if k == kind] for v in truth],
                                    [[(s, e) for s, e, k in v if k == kind] for v in predicted], iou)
    out["all"] = spotting_scores([[(s, e) for s, e, _ in v] for v in truth],
                                 [[(s, e) for s, e, _ in v] for v in predicted], iou)
    return out
