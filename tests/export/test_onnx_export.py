import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from microexp.edge.model_spec import REQUIRED, ModelSpec, ModelSpecError
from microexp.edge.sample_inputs import realistic_inputs
from microexp.edge.trt import TensorRTUnavailable, require_tensorrt
from microexp.edge.trt.build import build_engine, calibration_feeds, check_engine_version, load_engine
from microexp.export.onnx_export import PARITY_TOLERANCE, export_onnx
from microexp.export.quantize import quantize_int8
from microexp.training.checkpoint import save_checkpoint, save_stream_checkpoint
from microexp.training.experiment import Experiment, build_model
from microexp.training.models import CnnLstm


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    exp = Experiment(task="au", model="htnet", model_args=dict(dim=16, heads=2, num_hierarchies=2, block_repeats=1),
                     input="whole")
    au = save_checkpoint(d / "au.pt", build_model(exp, 3).eval(), exp, dataset="samm-au",
                         labels=["AU04", "AU07", "AU12"], metrics={}, provenance="test", thresholds=[0.4, 0.5, 0.6])
    emo_exp = Experiment(model="cnn", model_args=dict(width=8))
    emo = save_checkpoint(d / "emo.pt", build_model(emo_exp, 3).eval(), emo_exp, dataset="megc",
                          labels=["negative", "positive", "surprise"], metrics={}, provenance="test")
    stream = save_stream_checkpoint(d / "stream.pt", CnnLstm(num_outputs=4, width=8, hidden=16).eval(),
                                    labels=["none", "negative", "positive", "surprise"], metrics={},
                                    provenance="test", spec={})
    return {"au": au, "emo": emo, "stream": stream}


def _meta(path):
    """An independent reader: ONNX Runtime's own view of the metadata."""
    return ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map


def test_metadata_describes_the_model(checkpoints, tmp_path):
    report = export_onnx(checkpoints["au"], tmp_path / "au.onnx")
    meta = _meta(report.onnx_path)
    assert set(REQUIRED) <= set(meta)
    assert json.loads(meta["labels"]) == ["AU04", "AU07", "AU12"]
    assert json.loads(meta["thresholds"]) == [0.4, 0.5, 0.6]
    assert meta["task"] == "au" and meta["input_encoding"] == "hsv28" and meta["output_kind"] == "logits"
    assert meta["flow"] == "farneback" and "Farneback" in meta["flow_method"]
    emo = _meta(export_onnx(checkpoints["emo"], tmp_path / "emo.onnx").onnx_path)
    assert emo["input_encoding"] == "uvs28-regions" and json.loads(emo["input_channels"]) == ["u", "v", "strain"]
    assert emo["flow"] == "megc2019-composite"
    # What the writer wrote, the one reader reads back whole.
    spec = ModelSpec.from_props(meta, "au.onnx")
    assert spec.labels == ("AU04", "AU07", "AU12") and spec.thresholds == (0.4, 0.5, 0.6)
    assert spec.to_props() == dict(meta)


def test_parity_on_random_and_realistic_inputs(checkpoints, tmp_path):
    for name in ("au", "emo"):
        report = export_onnx(checkpoints[name], tmp_path / f"{name}.onnx")
        assert set(report.parity) == {"random", "realistic"}
        assert report.parity_ok and max(report.parity.values()) <= PARITY_TOLERANCE


def test_dynamic_and_fixed_batch(checkpoints, tmp_path):
    dyn = ort.InferenceSession(str(export_onnx(checkpoints["emo"], tmp_path / "d.onnx").onnx_path))
    assert dyn.run(None, {"input": np.zeros((3, 3, 28, 28), np.float32)})[0].shape == (3, 3)
    fixed = ort.InferenceSession(str(export_onnx(checkpoints["emo"], tmp_path / "f.onnx", batch=8).onnx_path))
    assert fixed.get_inputs()[0].shape == [8, 3, 28, 28]
    with pytest.raises(ValueError, match="batch"):
        export_onnx(checkpoints["emo"], tmp_path / "x.onnx", batch=0)


def test_streaming_steps_equal_the_full_pytorch_sequence(checkpoints, tmp_path):
    from microexp.training.checkpoint import load_checkpoint
    loaded = load_checkpoint(checkpoints["stream"])
    model, kind = loaded.model, loaded.kind
    assert kind == "stream"
    path = export_onnx(checkpoints["stream"], tmp_path / "s.onnx").onnx_path
    assert json.loads(_meta(path)["state_size"]) == 16
    sess = ort.InferenceSession(str(path))
    seq = np.random.default_rng(0).uniform(0, 1, (2, 7, 3, 28, 28)).astype(np.float32)
    with torch.no_grad():
        full = model(torch.from_numpy(seq)).numpy()
    h = c = np.zeros((2, 16), np.float32)
    steps = []
    for t in range(7):
        logits, h, c = sess.run(None, {"input": seq[:, t], "h": h, "c": c})
        steps.append(logits)
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-4)


def test_int8_copy_runs_and_keeps_the_metadata(checkpoints, tmp_path):
    fp32 = export_onnx(checkpoints["emo"], tmp_path / "e.onnx").onnx_path
    int8 = quantize_int8(fp32, tmp_path / "e.int8.onnx", calibration_samples=16)
    meta = _meta(int8)
    assert json.loads(meta["quantization"])["kind"] == "int8-static-qdq"
    assert meta["labels"] == _meta(fp32)["labels"]
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 28, 28)).astype(np.float32)
    a = ort.InferenceSession(str(fp32)).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(int8)).run(None, {"input": x})[0]
    assert b.shape == a.shape and np.isfinite(b).all()


def test_int8_quantises_only_the_weight_products(checkpoints, tmp_path):
    """Int8 weights feed only Conv, Gemm and MatMul; layer norms keep float parameters."""
    import onnx
    fp32 = export_onnx(checkpoints["au"], tmp_path / "a.onnx").onnx_path
    graph = onnx.load(str(quantize_int8(fp32, tmp_path / "a.int8.onnx", calibration_samples=8))).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    readers = {n.op_type for n in graph.node if weights & set(n.input)}
    assert readers == {"Conv", "Gemm", "MatMul"} or readers == {"Conv", "Gemm"}, readers
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    norms = [n for n in graph.node if n.op_type == "LayerNormalization"]
    assert norms and all(set(n.input[1:]) <= floats for n in norms)


def test_missing_and_corrupt_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        export_onnx(tmp_path / "nope.pt", tmp_path / "x.onnx")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.pt"):
        export_onnx(bad, tmp_path / "x.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="corrupt.onnx is not a readable ONNX model"):
        quantize_int8(corrupt, tmp_path / "c.int8.onnx")
    with pytest.raises(ModelSpecError, match="foreign.onnx.*lacks"):
        ModelSpec.from_props({"task": "au"}, "foreign.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _tensorrt_available():
    try:
        require_tensorrt()
        return True, ""
    except TensorRTUnavailable as err:
        return False, str(err)


TRT, TRT_WHY = _tensorrt_available()


@pytest.mark.skipif(TRT, reason="this machine has TensorRT; the no-GPU message is not reachable")
def test_tensorrt_fails_with_a_clear_message_without_gpu(checkpoints, tmp_path):
    path = export_onnx(checkpoints["emo"], tmp_path / "e.onnx").onnx_path
    with pytest.raises(TensorRTUnavailable, match="TensorRT|GPU"):
        build_engine(path, "fp16")
    with pytest.raises(TensorRTUnavailable):
        load_engine(tmp_path / "x.engine")


def test_int8_calibration_feeds_what_the_model_sees_at_run_time():
    # The runtime scales encoder values 0..255 by the model's input_scale before the model; so
    # must calibration, and a streaming model needs its (h, c) fed too.
    models = Path(__file__).resolve().parents[2] / "edge" / "models"
    feeds = calibration_feeds(models / "au_edge.onnx", 4)
    assert list(feeds) == ["input"] and feeds["input"].shape == (4, 3, 28, 28)
    assert 0.2 < feeds["input"].max() <= 1.0
    np.testing.assert_allclose(feeds["input"], realistic_inputs("hsv28", 4) / 255, rtol=1e-6)
    stream = calibration_feeds(models / "spotter.onnx", 4)
    assert list(stream) == ["input", "h", "c"] and stream["h"].shape == (4, 64) and not stream["c"].any()


def test_an_engine_of_another_tensorrt_version_is_refused_by_name():
    # The check load_engine makes before deserialising, reachable without a GPU.
    check_engine_version("emotion_edge-ab12-fp16-NVIDIA-H100-trt10.3.0.engine", "10.3.0")
    check_engine_version("hand-built.engine", "10.3.0")  # no version in the name: TensorRT decides
    with pytest.raises(ValueError, match="built by TensorRT 8.6.1, this is 10.3.0"):
        check_engine_version("emotion_edge-ab12-fp16-NVIDIA-H100-trt8.6.1.engine", "10.3.0")


@pytest.mark.trt
@pytest.mark.skipif(not TRT, reason=f"TensorRT unavailable: {TRT_WHY}")
def test_tensorrt_engines_and_version_check(checkpoints, tmp_path):
    import tensorrt as trt
    path = export_onnx(checkpoints["emo"], tmp_path / "e.onnx").onnx_path
    for precision in ("fp32", "fp16", "int8"):
        engine = build_engine(path, precision, cache_dir=tmp_path / "engines")
        assert engine.is_file() and load_engine(engine) is not None
    foreign = engine.with_name(engine.name.replace(f"trt{trt.__version__}", "trt0.0.1"))
    foreign.write_bytes(engine.read_bytes())
    with pytest.raises(ValueError, match="0.0.1"):
        load_engine(foreign)
