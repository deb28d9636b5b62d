"""The AU-aware graph spotter: its graph from AU co-occurrence, streaming equal to the whole
sequence, mirror augmentation, training and export, and the runtime stepping it."""
import json

import numpy as np
import pytest
import torch

from microexp.edge.face_regions import NAMES
from microexp.training import au_graph
from microexp.training.graph_spotter import RegionSequence, expression_scores, mirror, sample_windows
from microexp.training.models.graph_spotter import CLASSES, RECEPTIVE, RegionGraphSpotter, normalised_adjacency


def _features(rng, frames):
    x = rng.normal(0, 1.5, (frames, 12, 4)).astype(np.float32)
    x[..., 2] = np.abs(x[..., 2])
    x[..., 3] = rng.uniform(-np.pi, np.pi, (frames, 12))
    return x


def test_cooccurrence_counts_events_per_region_pair():
    # Three events: AU12 alone; AU4+AU12; AU1+AU2 (1 is an inner-brow AU, 2 an outer-brow one).
    w = au_graph.cooccurrence([[12], [4, 12], [1, 2]])
    i = {n: k for k, n in enumerate(NAMES)}
    # mouth corners: active in 2 events, glabella in 1; together in 1 -> (1/2 + 1/1) / 2
    assert w[i["mouth_left"], i["glabella"]] == pytest.approx(0.75)
    assert w[i["mouth_left"], i["mouth_right"]] == pytest.approx(1.0)  # sides ignored
    # inner brows: AU4 (event 2) and AU1 (event 3), outer brows AU2 (event 3): P(outer|inner) = 1/2
    assert w[i["brow_left_inner"], i["brow_right_outer"]] == pytest.approx((0.5 + 1.0) / 2)
    assert w[i["chin"], i["mouth_left"]] == 0.0 and w[i["chin"], i["chin"]] == 1.0  # never active: self-loop only
    assert np.allclose(w, w.T)


def test_the_shipped_graph_is_samms_and_loads(tmp_path):
    from microexp.training.graph_spotter import DEFAULT_GRAPH
    data = json.loads(DEFAULT_GRAPH.read_text())
    assert data["source"] == "samm.csv" and data["events"] == 159 and data["regions"] == list(NAMES)
    w = au_graph.load(DEFAULT_GRAPH)
    a = normalised_adjacency(w)
    assert np.allclose(a, a.T) and np.all(np.isfinite(a))
    bad = dict(data, weights=np.eye(11).tolist())
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="bad.json: weights must be a symmetric"):
        au_graph.load(tmp_path / "bad.json")


def test_stepping_from_a_zero_state_equals_the_whole_sequence():
    torch.manual_seed(0)
    model = RegionGraphSpotter(np.eye(12) + 0.2).eval()
    x = torch.from_numpy(_features(np.random.default_rng(1), RECEPTIVE + 40))
    with torch.no_grad():
        whole = model.forward_padded(x[None])[0]
        state, stepped = model.initial_state(1), []
        for t in range(len(x)):
            logits, state = model.step(x[t:t + 1], state)
            stepped.append(logits[0])
    assert torch.allclose(whole, torch.stack(stepped), atol=1e-5)
    # The view is RECEPTIVE frames: a change further back does not reach the newest output.
    y = x.clone()
    y[:40] += 5.0  # frames 0-39; the last output sees frames 40 on
    with torch.no_grad():
        assert torch.allclose(model.forward_padded(y[None])[0, -1], whole[-1], atol=1e-5)
        assert not torch.allclose(model.forward_padded(y[None])[0, 39], whole[39], atol=1e-3)


def test_mirror_swaps_sides_and_reflects_directions():
    x = np.zeros((1, 12, 4), np.float32)
    left = NAMES.index("mouth_left")
    x[0, left] = (1.0, -1.0, np.sqrt(2), -np.pi / 4)  # up and to the image's right
    m = mirror(x)
    right = NAMES.index("mouth_right")
    assert m[0, left].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert m[0, right, :3] == pytest.approx([-1.0, -1.0, np.sqrt(2)])
    assert m[0, right, 3] == pytest.approx(-3 * np.pi / 4)  # atan2(-1, -1)
    assert np.allclose(mirror(mirror(_features(np.random.default_rng(2), 5))), _features(np.random.default_rng(2), 5),
                       atol=1e-5)


def test_windows_carry_zero_history_at_a_clip_start():
    seq = RegionSequence("s/c", _features(np.random.default_rng(3), 30) + 10.0, np.ones(30, np.int64))
    x, y = sample_windows([seq], 4, 40, np.random.default_rng(0), flip=False)
    hist = RECEPTIVE - 1
    assert x.shape == (4, hist + 40, 12, 4)
    assert np.all(x[:, :hist] == 0) and np.allclose(x[:, hist:hist + 30], seq.features)
    assert np.all(y[:, :30] == 1) and np.all(y[:, 30:] == -1)  # past the clip's end: ignored


def test_training_learns_a_planted_event_and_exports_a_streaming_model(tmp_path):
    """A toy task: frames inside an 'event' move the mouth regions. A short training tells them
    apart; the exported ONNX, stepped frame by frame, gives PyTorch's logits."""
    from microexp.edge.backends import open_model
    from microexp.export.onnx_export import export_onnx
    from microexp.training.graph_spotter import save_graph_checkpoint, train_graph_spotter
    rng = np.random.default_rng(0)
    seqs = []
    for k in range(6):
        f = rng.normal(0, 0.1, (200, 12, 4)).astype(np.float32)
        y = np.zeros(200, np.int64)
        for start, length, cls in ((30, 60, 1), (130, 10, 2)):  # a long strong one, a short weak one
            y[start:start + length] = cls
            f[start:start + length, 9:11, 1] -= 3.0 if cls == 1 else 1.5
            f[start:start + length, 9:11, 2] += 3.0 if cls == 1 else 1.5
        seqs.append(RegionSequence(f"s/{k}", f, y))
    model = train_graph_spotter(seqs, au_graph.load(au_graph_path()), steps=80, window=64, batch_size=8, lr=5e-3)
    score = expression_scores(model, seqs[:1])[0]
    assert score[seqs[0].targets > 0].mean() - score[seqs[0].targets == 0].mean() > 0.5
    meta = {"task": "spotting", "labels": list(CLASSES), "input_encoding": "region-flow",
            "input_channels": ["mean_u", "mean_v", "main_magnitude", "main_angle"], "input_scale": 1.0,
            "flow": "farneback", "flow_method": "test", "output_kind": "logits",
            "state": {"size": model.state_size}, "spot_threshold": 0.5, "licence": "test"}
    ckpt = save_graph_checkpoint(tmp_path / "graph.pt", model, meta)
    report = export_onnx(ckpt, tmp_path / "graph.onnx")
    assert report.parity_ok and set(report.parity) == {"random", "realistic"}
    onnx_model = open_model(tmp_path / "graph.onnx", "onnxruntime")
    bound = onnx_model.bind()
    assert bound.input.shape == (1, 12, 4) and len(bound.state) == 1 and bound.state[0].shape == (1, model.state_size)
    with torch.no_grad():
        ref = model.forward_padded(torch.from_numpy(seqs[0].features[None]))[0].numpy()
    got = []
    for frame in seqs[0].features:
        bound.input[0] = frame
        got.append(bound().copy()[0])
    assert np.abs(np.asarray(got) - ref).max() < 1e-4


def au_graph_path():
    from microexp.training.graph_spotter import DEFAULT_GRAPH
    return DEFAULT_GRAPH


def test_the_trainer_reads_the_sets_frame_rate_and_checks_them_first(tmp_path):
    from microexp.training.graph_spotter import GraphSpotterSettings, set_rate, train
    for name, fps in (("a", 30), ("b", 30), ("c", 50)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "set.json").write_text(json.dumps({"fps": fps}))
    assert set_rate([tmp_path / "a", tmp_path / "b"]) == 30.0
    with pytest.raises(ValueError, match="different frame rates"):
        set_rate([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(ValueError, match="no set.json to read its frame rate from; pass --fps"):
        set_rate([tmp_path])
    # A development set that is not one is named before any clip is encoded.
    (tmp_path / "a" / "samm.csv").write_text("Subject;Filename\n")
    with pytest.raises(FileNotFoundError, match="absent: no samm.csv"):
        train(GraphSpotterSettings(data=[str(tmp_path / "a")], out=str(tmp_path / "x.pt"), dev=str(tmp_path / "absent")),
              "test")
