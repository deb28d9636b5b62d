import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from microexp.training import fitting, inputs, loso
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
    original = fitting.train_model

    def spy(exp, m, t, **kw):
        seen.append(len(m))
        return original(exp, m, t, **kw)

    monkeypatch.setattr(fitting, "train_model", spy)
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
    model = fitting.train_model(exp, maps, labels)
    pred = fitting.predict(exp, model, inputs.prepare_inputs(exp, maps))
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
    fitting.train_model(short, maps[subjects != "a"], labels[subjects != "a"],
                     checkpoint=lambda p: saved.update(p), checkpoint_every=3)
    assert not saved  # the last epoch of a run is never checkpointed
    fitting.train_model(exp, maps[subjects != "a"], labels[subjects != "a"],
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


def test_oracle_run_also_reports_every_fixed_epoch_and_its_last_matches_an_honest_run(tmp_path):
    maps, labels, subjects = _separable()
    oracle_exp = Experiment(epochs=3, protocol="oracle-epoch", **TINY)
    honest_exp = dataclasses.replace(oracle_exp, protocol="honest")
    oracle = loso.run_loso(oracle_exp, maps, labels, subjects, progress=False)
    honest = loso.run_loso(honest_exp, maps, labels, subjects, progress=False)
    for o, h in zip(oracle, honest):
        assert len(o["pred_by_epoch"]) == 3
        assert o["pred"] == o["pred_by_epoch"][o["epoch"] - 1]  # the oracle pick is one of them
        assert o["pred_by_epoch"][-1] == h["pred"]  # the scoring never changes the training
    datasets = ["x"] * len(maps)
    summary = summarise(oracle_exp, oracle, datasets=datasets)
    rows = summary["fixed_epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and [r["honest"] for r in rows] == [False, False, True]
    assert rows[-1]["full"] == summarise(honest_exp, honest, datasets=datasets)["full"]
    assert "3 (honest)" in write_report(summary, tmp_path)["markdown"].read_text()
    assert "fixed_epochs" not in summarise(honest_exp, honest, datasets=datasets)


def test_au_task_uses_logits_with_pos_weight():
    targets = np.array([[1, 0], [0, 0], [0, 0], [1, 1]], np.float32)
    crit = fitting.loss_function(Experiment(task="au", **TINY), targets, 2)
    assert isinstance(crit, torch.nn.BCEWithLogitsLoss)
    assert crit.pos_weight.tolist() == [1.0, 3.0]
    capped = fitting.loss_function(Experiment(task="au", pos_weight_cap=2, **TINY), targets, 2)
    assert capped.pos_weight.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="pos_weight_cap"):
        Experiment(task="emotion", pos_weight_cap=2)
    with pytest.raises(ValueError, match="pos_weight_cap"):
        Experiment(task="au", pos_weight_cap=0.5)


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
    original = fitting.train_model

    def spy(e, m, t, **kw):
        seen.append(m.shape[0])
        return original(e, m, t, **kw)

    monkeypatch.setattr(fitting, "train_model", spy)
    fold = loso.run_loso(exp, maps, targets, subjects, folds=["a"], progress=False)[0]
    # inner model on 4 of the 5 training subjects (20 maps), final model on all 5 (25 maps)
    assert seen == [20, 25]
    assert len(fold["thresholds"]) == 2 and all(0 < t < 1 for t in fold["thresholds"])


def test_ensemble_settings_that_cannot_hold_are_refused():
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        Experiment(ensemble=0)
    with pytest.raises(ValueError, match="honest protocol only"):
        Experiment(ensemble=2, protocol="oracle-epoch")
    with pytest.raises(ValueError, match="inner_thresholds"):
        Experiment(task="au", ensemble=2, inner_thresholds=True)
    with pytest.raises(ValueError, match="HSV-encoded"):
        Experiment(task="au", tta_flip=True)
    maps, labels, subjects = _separable()
    with pytest.raises(ValueError, match="scores one model per fold"):
        loso.run_loso(Experiment(epochs=1, ensemble=2, **TINY), maps, labels, subjects,
                      progress=False, fold_extra=lambda *args: {})


def test_ensemble_members_are_the_single_seed_runs_and_their_mean_decides(tmp_path):
    maps, labels, subjects = _separable()
    flip = dict(TINY, flip=True)
    single = {s: loso.run_loso(Experiment(epochs=2, seed=s, **flip), maps, labels, subjects,
                               folds=["b"], progress=False)[0] for s in (3, 4)}
    exp = Experiment(epochs=2, seed=3, ensemble=2, tta_flip=True, **flip)
    fold = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, folds=["b"], progress=False)[0]
    members = fold["members"]
    assert [m["seed"] for m in members] == [3, 4]
    for m in members:  # each member is exactly the model a one-seed run trains
        assert np.argmax(m["probs"], 1).tolist() == single[m["seed"]]["pred"]
        np.testing.assert_allclose(np.sum(m["probs"], 1), 1.0, rtol=1e-5)
    # flip averaging uses the mirrored maps (u negated, columns reversed), not the same maps again
    assert not np.allclose(members[0]["probs"], members[0]["probs_flipped"])
    by_hand = np.mean([(np.asarray(m["probs"]) + np.asarray(m["probs_flipped"])) / 2 for m in members], axis=0)
    np.testing.assert_allclose(fold["probs"], by_hand, rtol=1e-6)
    assert fold["pred"] == by_hand.argmax(1).tolist()
    # the members' own files are gone once the fold is written whole
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["b.json"]


def test_flip_averaged_probabilities_are_those_of_the_mirrored_maps():
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=2, tta_flip=True, **TINY)
    fold = loso.run_loso(exp, maps, labels, subjects, folds=["c"], progress=False)[0]
    model = fitting.train_model(exp, maps[subjects != "c"], labels[subjects != "c"])
    from microexp.training.regions import flip_maps
    mirrored = fitting.probabilities(exp, model, flip_maps(maps[subjects == "c"]))
    np.testing.assert_allclose(fold["members"][0]["probs_flipped"], mirrored, rtol=1e-5)


def test_an_interrupted_ensemble_keeps_its_finished_members(tmp_path):
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=1, ensemble=2, **TINY)
    first = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, folds=["a"], progress=False)[0]
    # As if the run stopped after member 0: its file is there, the fold's is not. Member 0's
    # probabilities are planted so that reuse (not retraining) is visible in the result.
    planted = dict(first["members"][0], probs=[[0.0, 0.0, 1.0]] * len(first["pred"]))
    (tmp_path / "folds" / "a.m0.json").write_text(json.dumps(planted))
    (tmp_path / "folds" / "a.json").unlink()
    again = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, folds=["a"], progress=False)[0]
    assert again["members"][0]["probs"] == planted["probs"]
    assert again["members"][1]["probs"] == first["members"][1]["probs"]
    np.testing.assert_allclose(again["probs"], (np.asarray(planted["probs"]) +
                                                np.asarray(first["members"][1]["probs"])) / 2)


def test_summary_ablations_read_each_member_off_the_same_folds(tmp_path):
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=2, ensemble=2, tta_flip=True, **dict(TINY, flip=True))
    folds = loso.run_loso(exp, maps, labels, subjects, progress=False)
    summary = summarise(exp, folds, datasets=["x"] * len(maps))
    alone = loso.run_loso(Experiment(epochs=2, seed=1, **dict(TINY, flip=True)), maps, labels,
                          subjects, progress=False)
    assert summary["ablations"]["members"][1]["full"] == summarise(exp, alone)["full"]
    assert {"members_flip_averaged", "ensemble_without_flip"} <= set(summary["ablations"])
    text = write_report(summary, tmp_path)["markdown"].read_text()
    assert "model seed 1 alone" in text and "ensemble without flip averaging" in text


def test_per_sample_landmarks_place_the_regions_and_mirror_with_the_maps(monkeypatch):
    from microexp.training import regions
    rng = np.random.default_rng(3)
    maps = rng.uniform(0, 255, (4, 3, 28, 28)).astype(np.float32)
    landmarks = rng.uniform(7, 21, (4, 5, 2))
    exp = Experiment(epochs=1, flip=True, landmarks="mtcnn", **dict(TINY, input="composite"))
    x = inputs.prepare_inputs(exp, maps, landmarks=landmarks).numpy()
    np.testing.assert_allclose(x, regions.compose_batch(maps, landmarks) * exp.scale, rtol=1e-6)
    # With a training flip, a mirrored map is composed at the mirrored landmarks.
    gen = np.random.default_rng(0)
    chosen = np.random.default_rng(0).random(4) < 0.5
    assert chosen.any() and not chosen.all()
    x = inputs.prepare_inputs(exp, maps, gen, landmarks).numpy()
    want = np.where(chosen[:, None, None, None],
                    regions.compose_batch(regions.flip_maps(maps), regions.flip_landmarks(landmarks)),
                    regions.compose_batch(maps, landmarks)) * exp.scale
    np.testing.assert_allclose(x, want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"landmarks must be \(N, 5, 2\)"):
        loso.run_loso(exp, maps, np.zeros(4, np.int64), np.array(list("abcd")), landmarks=landmarks[:2],
                      progress=False)
    with pytest.raises(ValueError, match="MEGC composite"):
        Experiment(task="au", input="whole", landmarks="mtcnn")


def test_landmark_jitter_moves_each_training_composite_within_its_range():
    from microexp.training import regions
    from microexp.training.datasets.megc import FALLBACK_LANDMARKS_28
    rng = np.random.default_rng(5)
    maps = rng.uniform(0, 255, (6, 3, 28, 28)).astype(np.float32)
    exp = Experiment(epochs=1, landmark_jitter=2, **dict(TINY, input="composite"))
    x = inputs.prepare_inputs(exp, maps, np.random.default_rng(9)).numpy()
    offsets = np.random.default_rng(9).integers(-2, 3, size=(6, 5, 2))
    assert np.abs(offsets).max() == 2 and len({o.tobytes() for o in offsets}) == 6
    want = regions.compose_batch(maps, FALLBACK_LANDMARKS_28[None] + offsets) * exp.scale
    np.testing.assert_allclose(x, want, rtol=1e-6)
    assert not np.allclose(x, regions.compose_batch(maps) * exp.scale)
    # Jitter is training-only: test inputs (no rng) sit at the fixed points.
    np.testing.assert_allclose(inputs.prepare_inputs(exp, maps).numpy(),
                               regions.compose_batch(maps) * exp.scale, rtol=1e-6)


def test_probe_landmarks_score_each_model_on_composites_built_there(tmp_path):
    from microexp.training.datasets.megc import FALLBACK_LANDMARKS_28
    maps, labels, subjects = _separable()
    composite = dict(TINY, input="composite")
    moved = (FALLBACK_LANDMARKS_28 + [[-3, 0], [0, -2], [0, 0], [-3, -3], [0, -2]]).tolist()
    exp = Experiment(epochs=2, ensemble=2, probe_landmarks=moved, **composite)
    folds = loso.run_loso(exp, maps, labels, subjects, progress=False)
    plain = loso.run_loso(Experiment(epochs=2, ensemble=2, **composite), maps, labels, subjects, progress=False)
    for f, g in zip(folds, plain):  # the probe never changes the run's own result
        assert f["pred"] == g["pred"] and f["probs"] == g["probs"]
    model = fitting.train_model(dataclasses.replace(exp, seed=1), maps[subjects != "d"], labels[subjects != "d"])
    test = maps[subjects == "d"]
    want = fitting.probabilities(exp, model, test, np.repeat(np.asarray(moved)[None], len(test), 0))
    np.testing.assert_allclose(folds[-1]["members"][1]["probs_probe"], want, rtol=1e-5)
    assert not np.allclose(want, folds[-1]["members"][1]["probs"])
    summary = summarise(exp, folds, datasets=["x"] * len(maps))
    at_probe = [dict(f, pred=np.argmax(f["members"][0]["probs_probe"], 1).tolist()) for f in folds]
    assert summary["ablations"]["members_at_probe_landmarks"][0]["full"] == summarise(exp, at_probe)["full"]
    both = [dict(f, pred=np.argmax(np.mean([m["probs_probe"] for m in f["members"]], 0), 1).tolist())
            for f in folds]
    assert summary["ablations"]["ensemble_at_probe_landmarks"]["full"] == summarise(exp, both)["full"]
    text = write_report(summary, tmp_path)["markdown"].read_text()
    assert "test composites at" in text


def test_jitter_and_probe_settings_that_cannot_hold_are_refused():
    with pytest.raises(ValueError, match="landmark_jitter must be >= 0"):
        Experiment(landmark_jitter=-1)
    with pytest.raises(ValueError, match="input 'composite'"):
        Experiment(input="whole", landmark_jitter=2)
    with pytest.raises(ValueError, match="5 finite"):
        Experiment(probe_landmarks=[[1, 2]] * 4)
    with pytest.raises(ValueError, match="5 finite"):
        Experiment(probe_landmarks=[[1, 2], [1], [1, 2], [1, 2], [1, 2]])
    with pytest.raises(ValueError, match="honest protocol only"):
        Experiment(probe_landmarks=[[10, 10]] * 5, protocol="oracle-epoch")


def test_metrics_for_one_model_reads_old_runs_and_refuses_other_models():
    from microexp.training.report import metrics_for_one_model
    maps, labels, subjects = _separable()
    exp = Experiment(epochs=1, **TINY)
    summary = summarise(exp, loso.run_loso(exp, maps, labels, subjects, progress=False))
    old = json.loads(json.dumps(summary))
    for key in ("landmark_jitter", "probe_landmarks", "pos_weight_cap", "ensemble"):
        del old["experiment"][key]  # written before these settings existed
    assert metrics_for_one_model(old, exp)["full"] == summary["full"]
    with pytest.raises(ValueError, match="other settings"):
        metrics_for_one_model(summary, dataclasses.replace(exp, lr=1e-2))
    with pytest.raises(ValueError, match="no model with seed 3"):
        metrics_for_one_model(summary, dataclasses.replace(exp, seed=3))


def test_metrics_for_one_model_quote_the_probe_figure_of_a_one_model_run():
    from microexp.training.datasets.megc import FALLBACK_LANDMARKS_28
    from microexp.training.report import metrics_for_one_model
    maps, labels, subjects = _separable()
    moved = (FALLBACK_LANDMARKS_28 + 2).tolist()
    exp = Experiment(epochs=1, probe_landmarks=moved, **dict(TINY, input="composite"))
    summary = json.loads(json.dumps(summarise(exp, loso.run_loso(exp, maps, labels, subjects, progress=False))))
    brief = metrics_for_one_model(summary, exp)
    assert brief["full"] == summary["full"]
    assert brief["at_probe_landmarks"]["full"] == summary["ablations"]["members_at_probe_landmarks"][0]["full"]
    assert brief["at_probe_landmarks"]["points"] == moved
