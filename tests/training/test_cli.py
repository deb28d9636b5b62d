import json

import pytest

pytest.importorskip("torch")

from microexp.cli import main

from .fixtures import make_megc, make_samm_au


def test_train_loso_and_fit_on_a_composite_fixture(tmp_path, capsys):
    data = make_megc(tmp_path / "megc")
    out = tmp_path / "run"
    args = ["train", "loso", "--set", "megc", "--data", str(data), "--out", str(out),
            "--preset", "cnn", "--epochs", "2", "--workers", "1", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol"] == "honest" and summary["folds"] == 4
    assert set(summary["per_dataset"]) == {"samm", "casme2", "smic"}
    assert (out / "summary.md").is_file() and (out / "summary.png").is_file()
    ckpt = tmp_path / "model.pt"
    fit = ["train", "fit", "--set", "megc", "--data", str(data), "--out", str(ckpt), "--preset", "cnn",
           "--metrics", str(out / "summary.json")]
    capsys.readouterr()
    assert main(fit + ["--epochs", "1"]) == 2  # a card never quotes another model's run
    assert "other settings than this one" in capsys.readouterr().err
    assert main(fit + ["--epochs", "2"]) == 0
    card = ckpt.with_suffix(".md").read_text()
    assert "negative, positive, surprise" in card and "uvs28-regions" in card
    assert f"'uf1': {summary['full']['uf1']}" in card

    from microexp.training.checkpoint import load_checkpoint
    meta = load_checkpoint(ckpt).metadata
    assert meta["labels"] == ["negative", "positive", "surprise"] and meta["output_kind"] == "logits"


def test_fit_card_quotes_its_own_seed_from_an_ensemble_run(tmp_path, capsys):
    data = make_megc(tmp_path / "megc")
    out = tmp_path / "run"
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(out), "--preset", "cnn",
                 "--epochs", "1", "--workers", "1", "--ensemble", "2", "--json",
                 "--probe-landmarks", "8,10,21,10,15,17,7,19,20,20"]) == 0
    summary = json.loads(capsys.readouterr().out)
    member = summary["ablations"]["members"][1]
    ckpt = tmp_path / "model.pt"
    assert main(["train", "fit", "--set", "megc", "--data", str(data), "--out", str(ckpt), "--preset", "cnn",
                 "--epochs", "1", "--seed", "1", "--metrics", str(out / "summary.json")]) == 0
    card = ckpt.with_suffix(".md").read_text()
    assert f"'uf1': {member['full']['uf1']}" in card and "member seed 1 alone" in card
    probed = summary["ablations"]["members_at_probe_landmarks"][1]["full"]
    assert "at_probe_landmarks: {'points': [[8.0, 10.0]" in card and f"'uf1': {probed['uf1']}" in card
    capsys.readouterr()
    assert main(["train", "fit", "--set", "megc", "--data", str(data), "--out", str(ckpt), "--preset", "cnn",
                 "--epochs", "1", "--seed", "5", "--metrics", str(out / "summary.json")]) == 2
    assert "no model with seed 5" in capsys.readouterr().err


def test_train_split_on_an_au_fixture(tmp_path, capsys):
    data = make_samm_au(tmp_path / "au")
    assert main(["train", "split", "--set", "samm-au", "--data", str(data), "--out", str(tmp_path / "s"),
                 "--test-subjects", "sub006", "--preset", "cnn", "--input", "whole", "--epochs", "2",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "au" and "AU04" in summary["au"]["f1"]


def test_unknown_subject_and_corrupt_checkpoint_are_named(tmp_path, capsys):
    data = make_samm_au(tmp_path / "au")
    assert main(["train", "split", "--set", "samm-au", "--data", str(data), "--out", str(tmp_path / "s"),
                 "--test-subjects", "sub999", "--preset", "cnn", "--epochs", "1"]) == 2
    assert "sub999" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    from microexp.training.checkpoint import load_checkpoint
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)


def test_au_fit_stores_thresholds_chosen_on_an_inner_split(tmp_path):
    data = make_samm_au(tmp_path / "au")
    ckpt = tmp_path / "au.pt"
    assert main(["train", "fit", "--set", "samm-au", "--data", str(data), "--out", str(ckpt),
                 "--preset", "cnn", "--input", "whole", "--epochs", "1", "--inner-thresholds"]) == 0
    from microexp.training.checkpoint import load_checkpoint
    loaded = load_checkpoint(ckpt)
    exp, meta = loaded.experiment, loaded.metadata
    assert meta["task"] == "au" and meta["input_encoding"] == "hsv28"
    assert len(meta["thresholds"]) == len(meta["labels"]) and exp.inner_thresholds
    assert "thresholds" in ckpt.with_suffix(".md").read_text()


def test_loso_int8_eval_scores_the_exported_models_too(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    data = make_megc(tmp_path / "megc")
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--preset", "cnn", "--epochs", "2", "--workers", "1", "--int8-eval", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ort_fp32"]["full"] == summary["full"]  # ONNX Runtime fp32 agrees with PyTorch
    assert 0 <= summary["ort_int8"]["full"]["uf1"] <= 1


def test_loso_ensemble_with_mtcnn_landmarks_from_the_cli(tmp_path, capsys):
    data = make_megc(tmp_path / "megc", subjects=("006", "s1", "s2"), per_subject=3)
    out = tmp_path / "run"
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(out),
                 "--preset", "cnn", "--epochs", "1", "--workers", "1", "--ensemble", "2",
                 "--tta-flip", "--flip", "--landmarks", "mtcnn", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["experiment"]["ensemble"] == 2 and summary["experiment"]["landmarks"] == "mtcnn"
    assert summary["landmarks_found"] == 0  # the fixture's apex faces are noise
    assert "MTCNN found a face on 0 of 9 apex faces" in captured.err
    assert [m["seed"] for m in summary["ablations"]["members"]] == [0, 1]
    assert "ensemble without flip averaging" in (out / "summary.md").read_text()


def test_loso_landmark_jitter_and_probe_from_the_cli(tmp_path, capsys):
    data = make_megc(tmp_path / "megc", subjects=("s0", "s1", "s2"), per_subject=3)
    out = tmp_path / "run"
    points = "8,10,21,10,15,17,7,19,20,20"
    assert main(["train", "loso", "--set", "megc", "--data", str(data), "--out", str(out),
                 "--preset", "cnn", "--epochs", "1", "--workers", "1", "--landmark-jitter", "3",
                 "--probe-landmarks", points, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["experiment"]["landmark_jitter"] == 3
    assert summary["experiment"]["probe_landmarks"] == [[8, 10], [21, 10], [15, 17], [7, 19], [20, 20]]
    assert 0 <= summary["ablations"]["members_at_probe_landmarks"][0]["full"]["uf1"] <= 1
    assert "test composites at" in (out / "summary.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--set", "samm-au", "--landmarks", "mtcnn"], "landmarks 'mtcnn' place the MEGC composite"),
    (["--set", "samm-au", "--tta-flip"], "HSV-encoded AU maps do not mirror"),
    (["--set", "samm-au", "--input", "whole", "--flip"], "does not mirror by a channel operation"),
    (["--set", "megc", "--preset", "linear", "--ensemble", "3"], "the linear model does not take ensemble"),
    (["--set", "megc", "--ensemble", "2", "--int8-eval"], "not with --ensemble"),
    (["--set", "megc", "--ensemble", "0"], "ensemble must be >= 1"),
    (["--set", "samm-au", "--input", "whole", "--landmark-jitter", "2"], "input 'composite'"),
    (["--set", "megc", "--pos-weight-cap", "10"], "pos_weight_cap bounds the AU loss"),
    (["--set", "megc", "--probe-landmarks", "1,2,3"], "expected 10 comma-separated numbers"),
    (["--set", "megc", "--probe-landmarks", "1,2,3,4,5,6,7,8,9,x"], "expected 10 comma-separated"),
])
def test_loso_settings_that_cannot_hold_are_named_before_any_work(tmp_path, capsys, extra, message):
    assert main(["train", "loso", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microexp train: ") and message in err and "Traceback" not in err
