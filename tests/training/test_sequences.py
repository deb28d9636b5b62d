import numpy as np
import pytest

torch = pytest.importorskip("torch")

from microexp.training.metrics import interval_iou, intervals, spotting_scores
from microexp.training.sequences import SequenceSpec, make_sequence, profile
from microexp.training.streaming import evaluate_cnn_lstm, train_cnn_lstm

from .test_loso import _separable


def test_interval_helpers_use_inclusive_frames():
    assert intervals([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    assert interval_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    assert interval_iou((0, 3), (4, 8)) == 0.0


def test_spotting_scores_match_each_truth_once():
    truth = [[(10, 20)], [(0, 5), (30, 40)]]
    pred = [[(11, 21), (12, 19)], [(31, 41), (60, 70)]]
    s = spotting_scores(truth, pred)
    # video 1: first prediction matches, the second finds the truth already taken
    assert (s["tp"], s["n_true"], s["n_pred"]) == (2, 3, 4)
    assert s["precision"] == 0.5 and s["recall"] == pytest.approx(2 / 3)


def test_profile_peaks_at_the_apex_and_is_zero_outside():
    p = profile(20, 4, 12)
    assert p[:4].sum() == 0 and p[13:].sum() == 0
    assert p.argmax() == 8 and p.max() == pytest.approx(1.0)


def test_sequence_targets_follow_the_planted_event():
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 255, (3, 28, 28)).astype(np.float32)
    frames, targets = make_sequence(m, 2, SequenceSpec(), rng)
    assert frames.shape == (24, 3, 28, 28) and 0 <= frames.min() and frames.max() <= 255
    assert set(np.unique(targets)) == {0, 3}
    assert len(intervals(targets > 0)) == 1


def test_cnn_lstm_learns_to_spot_planted_events():
    maps, labels, _ = _separable(n_per_subject=6)
    spec = SequenceSpec(length=12, event_min=4, event_max=8, noise=0.02)
    model = train_cnn_lstm(maps, labels, spec=spec, epochs=12, copies=4, width=8, hidden=16,
                           lr=3e-3, batch_size=16)
    metrics = evaluate_cnn_lstm(model, maps, labels, spec)
    assert metrics["spotting"]["f1"] > 0.8
