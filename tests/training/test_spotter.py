"""The learned spotter's training on runtime-encoded sequences: targets, mirroring, the loss,
windows, the detector on scores, the threshold choice, learning, and the CLI end to end."""
import json
import math

import cv2
import numpy as np
import pytest
import torch

from microexp import kernels
from microexp.training.models import CnnLstm
from microexp.training.runtime_sequences import (
    EXPRESSION,
    IGNORE,
    RuntimeSequence,
    frame_targets,
    mirror,
    sample_windows,
)
from microexp.training.spotter import (
    THRESHOLDS,
    choose_threshold,
    expression_scores,
    spot_from_scores,
    spotting_loss,
    train_runtime_spotter,
)


def test_frame_targets_follow_the_sheet_and_unknown_emotions_count_as_expression():
    y = frame_targets(20, [(2, 4, "Happiness"), (8, 9, "Contempt"), (12, 13, "Other"), (18, 25, "Surprise")])
    assert y[:2].tolist() == [0, 0] and y[2:5].tolist() == [2, 2, 2] and y[5] == 0
    assert y[8:10].tolist() == [1, 1]  # MEGC2019 counts contempt as negative
    assert y[12:14].tolist() == [EXPRESSION] * 2
    assert y[18:].tolist() == [3, 3]  # clipped to the clip


def test_mirror_equals_encoding_the_mirrored_flow():
    rng = np.random.default_rng(0)
    flow = cv2.GaussianBlur(rng.normal(0, 1, (224, 224, 2)).astype(np.float32), (0, 0), 5)
    flow[..., 0] += 0.3  # not symmetric in u: negating it must matter
    mirrored = np.ascontiguousarray(flow[:, ::-1] * [-1, 1]).astype(np.float32)
    a = kernels.encode_uvs28(flow, scale=255.0)
    b = kernels.encode_uvs28(mirrored, scale=255.0)
    assert np.abs(mirror(a) - b).max() < 1e-2
    assert np.abs(a - b).max() > 10  # the check has something to see
    assert np.allclose(mirror(mirror(a)), a, atol=1e-4)


def test_loss_weights_known_classes_and_scores_unknown_ones_against_none_only():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]])
    targets = torch.tensor([0, EXPRESSION, IGNORE])
    weight = torch.tensor([0.5, 2.0, 2.0, 4.0])
    p = torch.softmax(logits, 1)
    expected = (-math.log(p[0, 0]) * 0.5 - math.log(1 - p[1, 0]) * weight[1:].mean()) / 2
    assert spotting_loss(logits, targets, weight).item() == pytest.approx(float(expected), rel=1e-6)


def test_windows_start_at_clip_starts_and_pad_short_clips_with_ignored_frames():
    long = RuntimeSequence("a/long", np.full((50, 3, 28, 28), 7, np.float32), np.arange(50) % 2)
    short = RuntimeSequence("a/short", np.ones((10, 3, 28, 28), np.float32), np.ones(10, np.int64))
    x, y = sample_windows([long, short], 40, 20, np.random.default_rng(0), flip=False)
    assert x.shape == (40, 20, 3, 28, 28) and y.shape == (40, 20)
    padded = y[:, -1] == IGNORE
    assert padded.any() and (x[padded, 10:] == 0).all() and (y[padded, :10] == 1).all()
    assert (y[~padded, 0] == 0).sum() > 0  # some windows start at the clip's first frame


def _bump_sequences(n=6, length=80, seed=0):
    """Noise maps (as the runtime's calm frames look: full-range noise) with a planted blob
    on the event frames."""
    rng = np.random.default_rng(seed)
    seqs = []
    for i in range(n):
        maps = rng.uniform(0, 255, (length, 3, 28, 28)).astype(np.float32)
        y = np.zeros(length, np.int64)
        onset = int(rng.integers(10, length - 30))
        y[onset:onset + 15] = 1 + i % 3
        maps[onset:onset + 15, :, 8:20, 8:20] = 255.0
        seqs.append(RuntimeSequence(f"s/{i}", maps, y))
    return seqs


def test_detector_on_scores_and_threshold_choice():
    seqs = _bump_sequences(2)
    perfect = [((s.targets > 0) * 0.9 + 0.05).astype(float) for s in seqs]
    r = spot_from_scores(seqs, perfect, fps=100.0, threshold=0.5)
    assert (r["tp"], r["n_true"], r["n_pred"]) == (2, 2, 2)
    assert spot_from_scores(seqs, perfect, fps=100.0, threshold=0.97)["n_pred"] == 0
    best, scores, grid = choose_threshold(seqs, perfect, fps=100.0, grid=(0.3, 0.5, 0.9, 0.97))
    assert best == 0.5 and scores["f1"] == 1.0 and grid[0.97]["f1"] == 0.0  # ties: the middle one
    assert choose_threshold(seqs, perfect, fps=100.0, grid=(0.5, 0.9, 0.97))[0] == 0.5  # of two: the lower


def test_training_learns_to_score_event_frames_above_calm_ones():
    seqs = _bump_sequences()
    torch.manual_seed(0)
    model = CnnLstm(num_outputs=4, width=8, hidden=16)
    before = expression_scores(model, seqs[:2])
    # (0.96-0.99 with seeds 0-3 at these settings)
    model = train_runtime_spotter(seqs, model=model, steps=60, window=40, batch_size=6, lr=1e-2)
    after = expression_scores(model, seqs[:2])

    def contrast(scores):
        return np.mean([s[q.targets > 0].mean() - s[q.targets == 0].mean() for s, q in zip(scores, seqs)])
    assert abs(contrast(before)) < 0.1 and contrast(after) > 0.6


def test_cli_trains_on_a_generated_set_and_the_runtime_takes_its_threshold(tmp_path, capsys):
    from microexp.cli import main
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    from microexp.export.onnx_export import export_onnx
    data = tmp_path / "set"
    assert main(["synth", "--out", str(data), "--clips", "1", "--frames", "60", "--events", "1",
                      "--size", "256x256", "--seed", "4"]) == 0
    capsys.readouterr()
    out = tmp_path / "spotter.pt"
    assert main(["train", "spotter", "--data", str(data), "--dev", str(data), "--out", str(out), "--steps", "2",
                 "--window", "30", "--batch-size", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 1 and summary["frames"] == 60
    assert summary["threshold"] in THRESHOLDS
    card = (tmp_path / "spotter.md").read_text()
    assert "microexp train spotter" in card and "no licensed data set" in card
    report = export_onnx(out, tmp_path / "spotter.onnx")
    assert report.parity_ok and json.loads(report.metadata["spot_threshold"]) == summary["threshold"]
    assert "runtime encode_uvs28" in report.metadata["flow_method"] and report.metadata["flow"] == "farneback"
    pipe = Pipeline(PipelineConfig(au_model=None, emotion_model=None, spotter_model=str(tmp_path / "spotter.onnx"),
                                   spot_score="learned"))
    assert pipe.spot_threshold == summary["threshold"] and pipe.spotter.threshold() == summary["threshold"]
    # A threshold in the config wins over the model's; a motion score keeps baseline + k * MAD.
    pipe = Pipeline(PipelineConfig(au_model=None, emotion_model=None, spotter_model=str(tmp_path / "spotter.onnx"),
                                   spot_score="learned", spot_threshold=0.42))
    assert pipe.spotter.threshold() == 0.42
    pipe = Pipeline(PipelineConfig(au_model=None, emotion_model=None, spotter_model=str(tmp_path / "spotter.onnx")))
    assert pipe.spot_threshold is None and pipe.spotter.threshold() == float("inf")  # no baseline yet


def test_cli_refuses_a_warm_start_that_is_not_a_streaming_model(tmp_path, capsys):
    from microexp.cli import main
    from microexp.training.checkpoint import save_checkpoint
    from microexp.training.experiment import Experiment, build_model
    exp = Experiment(task="emotion", model="cnn", model_args=dict(width=4), epochs=1)
    classifier = tmp_path / "classifier.pt"
    save_checkpoint(classifier, build_model(exp, 3), exp, dataset="megc",
                    labels=["negative", "positive", "surprise"], metrics={}, provenance="test")
    assert main(["train", "spotter", "--data", str(tmp_path), "--out", str(tmp_path / "x.pt"),
                 "--init", str(classifier)]) == 2
    assert "microexp train: --init " in capsys.readouterr().err
    # The library says it with a typed error, not by exiting.
    from microexp.training.spotter import SpotterSettings, train_spotter
    with pytest.raises(ValueError, match="classifier.pt is not a streaming CNN-LSTM"):
        train_spotter(SpotterSettings(data=[str(tmp_path)], out=str(tmp_path / "x.pt"), init=str(classifier)), "test")


def test_cli_names_a_folder_that_is_not_a_generated_set(tmp_path, capsys):
    from microexp.cli import main
    assert main(["train", "spotter", "--data", str(tmp_path), "--out", str(tmp_path / "x.pt")]) == 2
    assert f"{tmp_path}: no samm.csv" in capsys.readouterr().err
    (tmp_path / "samm.csv").write_text("Subject;Filename;Onset Frame;Apex Frame;Offset Frame;Action Units\n")
    assert main(["train", "spotter", "--data", str(tmp_path), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no SUBJECT/CLIP folders" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
