"""Model backends behind one small interface: `open_model(path, backend)` gives a model with the
metadata below, `run(batch) -> logits` and `bind() -> bound model` (the per-frame path).

Backends: ONNX Runtime with the execution providers that are installed (TensorRT, CUDA, CPU, in
that order of preference) or with one chosen; native TensorRT engines built from the same ONNX
file (tensorrt_engine.py). The ONNX file's metadata_props configure the caller (labels, input
encoding and scale, thresholds, streaming state) whichever backend runs it."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

REQUIRED = ("task", "labels", "input_encoding", "input_scale", "output_kind")
# 'auto': native TensorRT where the tensorrt package and an NVIDIA driver are present, else
# ONNX Runtime with its best installed providers ('onnxruntime'); the ort-* names pin providers.
BACKENDS = ("auto", "onnxruntime", "ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")
ORT_PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_providers() -> List[str]:
    import onnxruntime as ort
    preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    present = set(ort.get_available_providers())
    return [p for p in preferred if p in present]


def open_model(path, backend: str = "auto", threads: int = 1, batch: Optional[int] = 1,
               precision: str = "fp32", engine_cache=None):
    """The model at `path` (a microexp ONNX file) on `backend` (one of BACKENDS). `threads`
    applies to ONNX Runtime on CPU; `precision` and `engine_cache` to native TensorRT."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    if backend in ("tensorrt", "auto"):
        from .tensorrt_engine import TensorRTModel, tensorrt_present
        if backend == "tensorrt":
            return TensorRTModel.from_onnx(path, precision, engine_cache, batch or 1)
        if tensorrt_present():
            try:
                return TensorRTModel.from_onnx(path, precision, engine_cache, batch or 1)
            except Exception as err:  # auto only: an installed but broken TensorRT falls back, loudly
                warnings.warn(f"model {path}: native TensorRT failed ({err}); running it on ONNX Runtime")
        backend = "onnxruntime"
    providers = ORT_PROVIDERS.get(backend)
    if providers:
        available = available_providers()
        if providers[0] not in available:
            raise ValueError(f"backend {backend!r} needs ONNX Runtime's {providers[0]}, which this "
                             f"install lacks (it has {available}); install onnxruntime-gpu on an "
                             "NVIDIA machine")
    return OnnxModel(path, threads, providers=providers, batch=batch)


class ModelInfo:
    """What a microexp model says about itself, read from its ONNX metadata_props."""
    path: Path

    def _read_metadata(self, props: Mapping[str, str]):
        missing = [k for k in REQUIRED if k not in props]
        if missing:
            raise ValueError(f"model {self.path}: not a microexp model (metadata lacks {missing})")
        self.meta: Dict[str, object] = dict(props)

        def decoded(key, convert, default=None):
            """A JSON metadata value; a malformed one is an error naming the file and the key."""
            if key not in props:
                return default
            try:
                return convert(json.loads(props[key]))
            except (ValueError, TypeError) as err:
                raise ValueError(f"model {self.path}: metadata '{key}' is malformed: {props[key]!r}") from err

        self.task = props["task"]
        self.labels: List[str] = decoded("labels", list)
        self.encoding = props["input_encoding"]
        self.scale = decoded("input_scale", float)
        self.flow_method = props.get("flow_method", "")
        self.thresholds = decoded("thresholds", lambda v: np.asarray(v, np.float32))
        self.state_size = decoded("state_size", int, 0)
        self.spot_threshold = decoded("spot_threshold", float)


class OnnxModel(ModelInfo):
    def __init__(self, path, threads: int = 1, providers: Optional[List[str]] = None,
                 batch: Optional[int] = None):
        """`batch`: fix a dynamic batch dimension to this size, which lets ONNX Runtime fold
        the graph's shape arithmetic away (the exported HTNets halve their node count); the
        model then accepts only batches of that size."""
        import onnxruntime as ort
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model {self.path} does not exist")

        def open_session(batch_dim: Optional[str] = None):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            if batch_dim:
                opts.add_free_dimension_override_by_name(batch_dim, int(batch))
            try:
                return ort.InferenceSession(str(self.path), opts, providers=providers or available_providers())
            except Exception as err:
                raise ValueError(f"model {self.path}: ONNX Runtime cannot load it: {err}") from err

        self.session = open_session()
        batch_dim = self.session.get_inputs()[0].shape[0]
        if batch is not None and isinstance(batch_dim, str):
            self.session = open_session(batch_dim)
        self.batch = batch
        self._read_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.providers = self.session.get_providers()

    def bind(self, batch: int = 1) -> "BoundModel":
        """This model tied to its own input and output buffers (see BoundModel)."""
        return BoundModel(self, batch)

    def run(self, batch: np.ndarray, state=None):
        """Logits for a float32 (N, 3, 28, 28) batch of encoder values 0..255 (scaled here);
        streaming models take and return (h, c)."""
        if self.batch is not None and len(batch) != self.batch:
            raise ValueError(f"model {self.path}: opened with a fixed batch dimension of {self.batch}, "
                             f"got a batch of {len(batch)}")
        x = np.ascontiguousarray(batch, np.float32) * np.float32(self.scale)
        if self.state_size:
            h, c = state if state is not None else (np.zeros((len(x), self.state_size), np.float32),) * 2
            logits, h, c = self.session.run(None, {"input": x, "h": h, "c": c})
            return logits, (h, c)
        return self.session.run(None, {"input": x})[0]


class BoundModel:
    """A model bound (ONNX Runtime IOBinding) to an input buffer the caller fills with encoder
    values 0..255 and an output buffer of logits: `__call__` scales the input in place and
    runs, allocating nothing; the per-frame path of the runtime. A streaming model's (h, c)
    live in bound buffers too: each call continues the sequence, `reset_state()` starts a
    new one."""

    def __init__(self, model: OnnxModel, batch: int = 1):
        self.model = model
        self.input = np.zeros((batch, 3, 28, 28), np.float32)
        self.output = np.zeros((batch, len(model.labels)), np.float32)
        inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
        self._binding = model.session.io_binding()
        self._binding.bind_cpu_input(inputs[0].name, self.input)
        self._bind_output(outputs[0].name, self.output)
        # Streaming: inputs h, c and outputs h_out, c_out, in the export's order.
        shape = (batch, model.state_size)
        self.state = tuple(np.zeros(shape, np.float32) for _ in range(2)) if model.state_size else ()
        self._state_out = tuple(np.zeros(shape, np.float32) for _ in self.state)
        for i, (now, new) in enumerate(zip(self.state, self._state_out)):
            self._binding.bind_cpu_input(inputs[1 + i].name, now)
            self._bind_output(outputs[1 + i].name, new)
        self._scale = np.float32(model.scale)

    def _bind_output(self, name: str, buffer: np.ndarray):
        self._binding.bind_output(name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)

    def __call__(self) -> np.ndarray:
        np.multiply(self.input, self._scale, out=self.input)
        self.model.session.run_with_iobinding(self._binding)
        for now, new in zip(self.state, self._state_out):
            np.copyto(now, new)  # the next call continues from here
        return self.output

    def reset_state(self):
        for now in self.state:
            now.fill(0.0)
