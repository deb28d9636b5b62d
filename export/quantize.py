"""CPU INT8: static quantisation with ONNX Runtime (QDQ, per-channel weights), calibrated on
realistic encoded inputs (what the runtime feeds the model), metadata carried over.

Only the weight-carrying products (Conv, Gemm, MatMul) are quantised: that is where int8
saves work; layer norms, softmax and activations stay float, which keeps the logits closer
to fp32 than quantising every op, at the same speed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from microexp.edge.model_spec import ModelSpec
from microexp.edge.sample_inputs import realistic_inputs

QUANTISED_OPS = ("Conv", "Gemm", "MatMul")


def quantize_int8(fp32_path, out_path, calibration_samples: int = 128, seed: int = 0) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise FileNotFoundError(f"quantize: {fp32_path} does not exist")
    try:
        model = onnx.load(str(fp32_path))
    except Exception as err:  # DecodeError and friends: say which file
        raise ValueError(f"quantize: {fp32_path} is not a readable ONNX model: {err}") from err
    props = {p.key: p.value for p in model.metadata_props}
    spec = ModelSpec.from_props(props, f"quantize: {fp32_path}")
    maps = realistic_inputs(spec.input_encoding, calibration_samples, seed) * spec.input_scale
    names = [i.name for i in model.graph.input]
    state = spec.state_size

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(maps):
                return None
            x = maps[self.i:self.i + 1]
            self.i += 1
            feed = {"input": x}
            if state:  # every other input is a state (h, c; or the graph spotter's window): a sequence's start
                feed.update({k: np.zeros((1, state), np.float32) for k in names if k != "input"})
            return {k: v for k, v in feed.items() if k in names}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    pre = out_path.with_suffix(".pre.onnx")
    tmp = out_path.with_suffix(".onnx.tmp")
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTISED_OPS))
        q = onnx.load(str(tmp))
        del q.metadata_props[:]
        for k, v in {**props, "quantization": json.dumps(
                {"kind": "int8-static-qdq", "calibration": f"{calibration_samples} realistic encoded maps",
                 "seed": seed})}.items():
            q.metadata_props.add(key=k, value=v)
        onnx.save(q, str(tmp))
        tmp.replace(out_path)
    finally:
        for p in (pre, tmp):
            if p.exists():
                p.unlink()
    return out_path
