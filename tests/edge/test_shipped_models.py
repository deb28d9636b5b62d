"""The ONNX models the package ships describe themselves and run on ONNX Runtime alone."""
import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

MODELS = Path(__file__).resolve().parents[2] / "edge" / "models"
REQUIRED = {"task", "labels", "input_encoding", "input_channels", "input_scale", "flow", "flow_method",
            "output_kind", "producer", "producer_version"}


@pytest.mark.parametrize("name", ["au_edge", "au_edge.int8", "emotion_edge", "emotion_edge.int8",
                                  "cnn_lstm", "cnn_lstm.int8", "spotter"])
def test_shipped_model_metadata_and_run(name):
    sess = ort.InferenceSession(str(MODELS / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert REQUIRED <= set(meta)
    labels = json.loads(meta["labels"])
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 28, 28)).astype(np.float32) * float(meta["input_scale"])
    feed = {"input": x}
    if "state_size" in meta:
        state = np.zeros((2, int(meta["state_size"])), np.float32)
        feed.update(h=state, c=state)
    outputs = sess.run(None, feed)
    assert outputs[0].shape == (2, len(labels)) and np.isfinite(outputs[0]).all()
    if meta["task"] == "au":
        assert len(json.loads(meta["thresholds"])) == len(labels)
        assert meta["input_encoding"] == "hsv28"
    if name == "spotter":  # the learned spotter carries the detector threshold chosen with it
        assert 0 < json.loads(meta["spot_threshold"]) < 1 and labels[0] == "none"


@pytest.mark.parametrize("name", ["au_edge", "emotion_edge.int8"])
def test_bound_model_runs_in_place_and_equals_run(name):
    from microexp.edge.backends.ort import OnnxModel
    model = OnnxModel(MODELS / f"{name}.onnx")
    bound = model.bind(batch=2)
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, 28, 28)).astype(np.float32)
    expected = model.run(x)
    out_buffer = bound.output
    for _ in range(2):  # the buffers are reused call after call
        bound.input[:] = x
        logits = bound()
        assert logits is out_buffer
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_bound_streaming_model_carries_its_state_like_run():
    """The bound CNN-LSTM step continues its sequence call after call (h, c in bound
    buffers) and equals OnnxModel.run fed its own returned state; reset_state restarts it."""
    from microexp.edge.backends.ort import OnnxModel
    model = OnnxModel(MODELS / "cnn_lstm.onnx", batch=1)
    bound = model.bind()
    frames = np.random.default_rng(3).uniform(0, 255, (5, 1, 3, 28, 28)).astype(np.float32)
    state, expected = None, []
    for x in frames:
        logits, state = model.run(x, state)
        expected.append(logits)
    for _ in range(2):
        for x, want in zip(frames, expected):
            bound.input[:] = x
            np.testing.assert_allclose(bound(), want, rtol=1e-5, atol=1e-5)
        assert np.abs(bound.state[0]).max() > 0
        bound.reset_state()
        assert not bound.state[0].any() and not bound.state[1].any()


def test_fixed_batch_gives_the_same_logits_and_refuses_other_batches():
    from microexp.edge.backends.ort import OnnxModel
    x = np.random.default_rng(2).uniform(0, 255, (2, 3, 28, 28)).astype(np.float32)
    dynamic = OnnxModel(MODELS / "au_edge.onnx")
    fixed = OnnxModel(MODELS / "au_edge.onnx", batch=1)
    np.testing.assert_allclose(fixed.run(x[:1]), dynamic.run(x[:1]), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        fixed.run(x)
    with pytest.raises(ValueError, match=r"au_edge.onnx: opened with a fixed batch dimension of 1, got a batch of 2"):
        fixed.run(x)


def test_malformed_metadata_is_named_with_its_key(tmp_path):
    import onnx

    from microexp.edge.backends.ort import OnnxModel
    proto = onnx.load(str(MODELS / "spotter.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "spot_threshold":
            prop.value = "0.8 or so"
    bad = tmp_path / "bad_meta.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ValueError, match="bad_meta.onnx: metadata 'spot_threshold' is malformed"):
        OnnxModel(bad)
    assert OnnxModel(MODELS / "spotter.onnx").spec.spot_threshold == 0.8
