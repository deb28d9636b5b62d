import numpy as np
import pytest

from microexp.training.metrics import binary_f1, confusion, per_au_f1, uf1_uar


def test_uf1_uar_hand_computed():
    true = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    # class 0: TP 2, FP 0, FN 1 -> F1 4/5, recall 2/3
    # class 1: TP 1, FP 1, FN 1 -> F1 2/4, recall 1/2
    # class 2: TP 1, FP 1, FN 0 -> F1 2/3, recall 1
    m = uf1_uar(true, pred, 3)
    assert m["uf1"] == pytest.approx(np.mean([4 / 5, 1 / 2, 2 / 3]))
    assert m["uar"] == pytest.approx(np.mean([2 / 3, 1 / 2, 1.0]))


def test_class_absent_from_the_pooled_truth():
    # no sample of class 2; predicted once -> F1_2 = 0 counts, recall_2 undefined -> left out
    m = uf1_uar([0, 0, 1, 1], [0, 2, 1, 1], 3)
    assert m["uf1"] == pytest.approx(np.mean([2 / 3, 1.0, 0.0]))
    assert m["uar"] == pytest.approx(np.mean([0.5, 1.0]))
    # not predicted either -> left out of both
    m = uf1_uar([0, 0, 1, 1], [0, 1, 1, 1], 3)
    assert m["uf1"] == pytest.approx(np.mean([2 / 3, 0.8]))


def test_pooling_differs_from_fold_averaging():
    # fold A perfect on one class, fold B all wrong: pooled metrics, not a mean of fold scores
    true = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0])
    assert uf1_uar(true, pred, 2)["uar"] == pytest.approx(0.5)
    assert confusion(true, pred, 2).tolist() == [[2, 0], [2, 0]]


def test_per_au_f1_and_frequent_mean():
    y = np.zeros((20, 2), int)
    y[:12, 0] = 1  # AU A: 12 positives
    y[:3, 1] = 1  # AU B: 3 positives (below 10: not in the mean)
    p = y.copy()
    p[:6, 0] = 0  # AU A: TP 6, FN 6 -> F1 2*6/(12+6) = 2/3
    out = per_au_f1(y, p, ["AU_A", "AU_B"])
    assert out["f1"]["AU_A"] == pytest.approx(2 / 3)
    assert out["f1"]["AU_B"] == 1.0
    assert out["frequent"] == ["AU_A"]
    assert out["mean_f1_min10"] == pytest.approx(2 / 3)
    assert np.isnan(binary_f1(np.zeros(4), np.zeros(4)))
