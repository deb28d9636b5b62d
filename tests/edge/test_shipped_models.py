"""The ONNX models the package ships describe themselves and run on ONNX Runtime alone."""
import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

MODELS = Path(__file__).resolve().parents[2] / "edge" / "models"
REQUIRED = {"task", "labels", "input_encoding", "input_channels", "input_scale", "flow_method",
            "output_kind", "producer", "producer_version"}


@pytest.mark.parametrize("name", ["au_edge", "au_edge.int8", "emotion_edge", "emotion_edge.int8",
                                  "cnn_lstm", "cnn_lstm.int8"])
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
