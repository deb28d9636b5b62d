"""LOSO folds as tasks: on a process pool and on a local Ray instance (tests/conftest.py) the
folds and ensemble members give the sequential run's results; a sweep chooses each fold's
configuration on inner folds that never hold the test subject."""
import json

import pytest

torch = pytest.importorskip("torch")

from microexp.training import fitting, loso, sweep
from microexp.training.experiment import Experiment

from .test_loso import TINY, _separable

KEYS = ("subject", "indices", "pred", "true", "probs", "epoch", "members")


def same(a, b):
    assert [{k: f.get(k) for k in KEYS} for f in a] == [{k: f.get(k) for k in KEYS} for f in b]


def test_folds_and_members_as_tasks_give_the_sequential_results(tmp_path, ray_address):
    maps, labels, subjects = _separable(subjects=("a", "b", "c"))
    exp = Experiment(epochs=2, ensemble=2, **TINY)
    sequential = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "seq", workers=1, progress=False,
                                threads=1)  # the tasks' threads: 2 cores / 2 workers
    pooled = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "pool", workers=2, progress=False)
    on_ray = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "ray", workers=2, progress=False,
                           ray_address=ray_address)
    same(sequential, pooled)
    same(sequential, on_ray)
    assert sorted(p.name for p in (tmp_path / "ray" / "folds").iterdir()) == ["a.json", "b.json", "c.json"]


def test_the_grid_is_parsed_and_checked():
    assert sweep.parse_grid("lr=1e-3,5e-4; epochs=2,3") == [
        {"lr": 1e-3, "epochs": 2}, {"lr": 1e-3, "epochs": 3}, {"lr": 5e-4, "epochs": 2}, {"lr": 5e-4, "epochs": 3}]
    assert sweep.parse_grid("flip=true,false") == [{"flip": True}, {"flip": False}]
    for bad, message in (("lr", "expected name=value"), ("nope=1", "not a setting a sweep may choose"),
                         ("epochs=two", "not an integer"), ("model_args=1", "not a setting a sweep may choose"),
                         ("protocol=oracle-epoch,honest", "not a setting a sweep may choose"),
                         ("task=emotion,au", "not a setting"), ("lr=1e-3;lr=1e-2", "given twice"),
                         ("lr=1e-3,0.001", "lists a value twice")):
        with pytest.raises(ValueError, match=message):
            sweep.parse_grid(bad)
    with pytest.raises(ValueError, match="oracle-epoch"):
        sweep.check_grid(Experiment(protocol="oracle-epoch"), [{"lr": 1.0}], "out")


def test_a_run_folder_resumes_only_the_same_sweep(tmp_path):
    maps, labels, subjects = _separable(subjects=("a", "b", "c"))
    exp = Experiment(epochs=1, **TINY)
    loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "s", progress=False, sweep=[{"lr": 1e-3}],
                  folds=["a"])
    with pytest.raises(ValueError, match="swept over another grid"):
        loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "s", progress=False, sweep=[{"lr": 1e-2}])
    loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "plain", progress=False, folds=["a"])
    with pytest.raises(ValueError, match="trained without a sweep"):
        loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "plain", progress=False, sweep=[{"lr": 1e-3}])


def test_a_sweep_chooses_on_inner_folds_only(tmp_path, monkeypatch):
    maps, labels, subjects = _separable()  # subjects a, b, c, d
    trained_on = []
    original = fitting.train_model

    def spy(exp, m, t, **kw):
        trained_on.append(sorted(set(kw["subjects"].tolist())))
        return original(exp, m, t, **kw)

    monkeypatch.setattr(fitting, "train_model", spy)
    # A rate of 1e-9 learns nothing, so its inner UF1 is chance: every fold must choose 3e-3.
    grid = sweep.parse_grid("lr=1e-9,3e-3")
    exp = Experiment(epochs=25, **{**TINY, "lr": 1.0})
    folds = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, progress=False, sweep=grid)
    for fold in folds:
        assert fold["config"] == {"lr": 3e-3}
        assert fold["inner_scores"][1] > fold["inner_scores"][0]
    # 4 outer folds x 2 configurations x 3 inner folds, each on the two subjects that are neither
    # the outer nor the inner one, then one outer training on three subjects per fold.
    assert sorted(len(s) for s in trained_on) == [2] * 24 + [3] * 4
    for outer in "abcd":
        inner = sorted(p.name for p in (tmp_path / "sweep" / outer).iterdir())
        assert inner == sorted(f"c{j}.{t}.json" for j in (0, 1) for t in set("abcd") - {outer})
    # The outer fold's result is the fold run with the chosen settings on its own.
    plain = loso.run_loso(Experiment(epochs=25, **{**TINY, "lr": 3e-3}), maps, labels, subjects, progress=False)
    assert [f["pred"] for f in folds] == [f["pred"] for f in plain]
    # Resumed: nothing is trained again.
    trained_on.clear()
    again = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, progress=False, sweep=grid)
    assert trained_on == [] and [f["pred"] for f in again] == [f["pred"] for f in folds]


def test_a_sweep_on_ray_chooses_as_the_local_run_does(tmp_path, ray_address):
    maps, labels, subjects = _separable(subjects=("a", "b", "c"))
    grid = sweep.parse_grid("lr=1e-9,3e-3")
    exp = Experiment(epochs=10, **TINY)
    local = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "l", progress=False, sweep=grid, threads=1)
    on_ray = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path / "r", progress=False, sweep=grid,
                           workers=2, ray_address=ray_address)
    same(local, on_ray)
    assert [(f["config"], f["inner_scores"]) for f in local] == [(f["config"], f["inner_scores"]) for f in on_ray]


def test_train_loso_with_a_sweep_on_ray_from_the_cli(tmp_path, capsys, ray_address):
    from microexp.cli import main

    from .fixtures import make_megc
    data = make_megc(tmp_path / "megc")
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--preset", "cnn", "--epochs", "1", "--workers", "2", "--json", "--ray", ray_address,
                 "--sweep", "lr=5e-4,1e-3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds"] == 4 and summary["sweep"]["grid"] == [{"lr": 5e-4}, {"lr": 1e-3}]
    assert set(summary["sweep"]["chosen"]) == {"006", "sub01", "s1", "s2"}
    assert all(c in summary["sweep"]["grid"] for c in summary["sweep"]["chosen"].values())
    assert all(len(scores) == 2 for scores in summary["sweep"]["inner_scores"].values())
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(tmp_path / "bad"),
                 "--sweep", "nope=1"]) == 2
    assert "not a setting a sweep may choose" in capsys.readouterr().err
