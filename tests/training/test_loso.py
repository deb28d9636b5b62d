import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from microexp.training import loso
from microexp.training.experiment import Experiment
from microexp.training.report import summarise, write_report

TINY = dict(model="cnn", model_args=dict(width=8), input="whole", batch_size=8, lr=3e-3)


def _separable(n_per_subject=6, subjects=("a", "b", "c", "d")):
    rng = np.random.default_rng(0)
    maps, labels, subs = [], [], []
    for s in subjects:
        for k in range(n_per_subject):
            label = k % 3
            m = rng.uniform(100, 140, (3, 28, 28)).astype(np.float32)
            m[:, 3 + 8 * label: 9 + 8 * label, 4:24] += 100
            maps.append(m), labels.append(label), subs.append(s)
    return np.stack(maps), np.array(labels), np.array(subs)


def test_no_subject_is_in_both_train_and_test(monkeypatch):
    maps, labels, subjects = _separable()
    seen = []
    original = loso.train_model

    def spy(exp, m, t, **kw):
        seen.append(len(m))
        return original(exp, m, t, **kw)

    monkeypatch.setattr(loso, "train_model", spy)
    folds = loso.run_loso(Experiment(epochs=1, **TINY), maps, labels, subjects, progress=False)
    assert [f["subject"] for f in folds] == ["a", "b", "c", "d"]
    for f in folds:
        assert set(subjects[f["indices"]]) == {f["subject"]}
    assert seen == [18, 18, 18, 18]  # every other subject's 6 samples, never the test subject's
    all_indices = np.concatenate([f["indices"] for f in folds])
    assert sorted(all_indices.tolist()) == list(range(len(maps)))


def test_tiny_model_learns_a_planted_pattern():
    maps, labels, _ = _separable()
    exp = Experiment(epochs=25, **TINY)
    model = loso.train_model(exp, maps, labels)
    pred = loso.predict(exp, model, loso.prepare_inputs(exp, maps))
    assert np.mean(pred == labels) >= 0.95


def test_interrupted_fold_resumes_to_the_same_result(tmp_path):
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=6, **TINY)
    whole = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "whole", folds=["a"],
                          progress=False)[0]
    # Train the fold for 3 epochs only, keeping the epoch-3 checkpoint, then resume.
    loso._SHARED.update(maps=maps, targets=labels, subjects=subjects, threads=1)
    short = Experiment(**{**exp.to_dict(), "epochs": 3})
    ckpt = tmp_path / "resumed" / "folds" / "a.pt"
    ckpt.parent.mkdir(parents=True)
    saved = {}
    loso.train_model(short, maps[subjects != "a"], labels[subjects != "a"],
                     checkpoint=lambda p: saved.update(p), checkpoint_every=3)
    assert not saved  # the last epoch of a run is never checkpointed
    loso.train_model(exp, maps[subjects != "a"], labels[subjects != "a"],
                     checkpoint=lambda p: saved.update(p) if p["epoch"] == 3 else None, checkpoint_every=3)
    torch.save(dict(saved, oracle_best={}), ckpt)
    resumed = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "resumed", folds=["a"],
                            progress=False)[0]
    assert resumed["pred"] == whole["pred"]
    assert not ckpt.exists() and (tmp_path / "resumed" / "folds" / "a.json").is_file()


def test_finished_folds_are_reused(tmp_path):
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=1, **TINY)
    loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, folds=["a"], progress=False)
    marker = json.loads((tmp_path / "folds" / "a.json").read_text())
    marker["pred"] = [9] * len(marker["pred"])  # a run that finished earlier is not redone
    (tmp_path / "folds" / "a.json").write_text(json.dumps(marker))
    folds = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, progress=False)
    assert folds[0]["pred"][0] == 9 and len(folds) == 4


def test_oracle_epoch_protocol_is_labelled_and_reports(tmp_path):
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=3, protocol="oracle-epoch", **TINY)
    folds = loso.run_loso(exp, maps, labels, subjects, progress=False)
    assert all(1 <= f["epoch"] <= 3 for f in folds)
    summary = summarise(exp, folds, datasets=["x"] * len(maps))
    assert summary["protocol"] == "oracle-epoch"
    paths = write_report(summary, tmp_path)
    assert "oracle-epoch" in paths["markdown"].read_text()
    assert paths["png"].stat().st_size > 0


def test_au_task_uses_logits_with_pos_weight():
    targets = np.array([[1, 0], [0, 0], [0, 0], [1, 1]], np.float32)
    crit = loso.loss_function(Experiment(task="au", **TINY), targets, 2)
    assert isinstance(crit, torch.nn.BCEWithLogitsLoss)
    assert crit.pos_weight.tolist() == [1.0, 3.0]


def test_bad_experiment_settings_are_named():
    with pytest.raises(ValueError, match="protocol"):
        Experiment(protocol="best")
    with pytest.raises(ValueError, match="task"):
        Experiment(task="valence")


def test_inner_thresholds_never_see_the_test_subject(monkeypatch):
    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 255, (30, 3, 28, 28)).astype(np.float32)
    targets = (rng.random((30, 2)) < 0.4).astype(np.int64)
    subjects = np.repeat(["a", "b", "c", "d", "e", "f"], 5)
    exp = Experiment(task="au", epochs=1, inner_thresholds=True, **TINY)
    seen = []
    original = loso.train_model

    def spy(e, m, t, **kw):
        seen.append(m.shape[0])
        return original(e, m, t, **kw)

    monkeypatch.setattr(loso, "train_model", spy)
    fold = loso.run_loso(exp, maps, targets, subjects, folds=["a"], progress=False)[0]
    # inner model on 4 of the 5 training subjects (20 maps), final model on all 5 (25 maps)
    assert seen == [20, 25]
    assert len(fold["thresholds"]) == 2 and all(0 < t < 1 for t in fold["thresholds"])
