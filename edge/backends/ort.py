"""The ONNX Runtime backend: a microexp ONNX file in an InferenceSession with the execution
providers that are installed (TensorRT, CUDA, CPU, in that order of preference) or the ones
chosen, and bound to fixed buffers for the per-frame path (IOBinding)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..model_spec import ModelSpec
from .base import Model

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def available_providers() -> List[str]:
    import onnxruntime as ort
    present = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in present]


class OnnxModel(Model):
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
        self.spec = ModelSpec.from_props(self.session.get_modelmeta().custom_metadata_map, f"model {self.path}")
        self.providers = self.session.get_providers()

    def bind(self, batch: int = 1) -> "OrtBoundModel":
        return OrtBoundModel(self, batch)

    def run(self, batch: np.ndarray, state=None):
        if self.batch is not None and len(batch) != self.batch:
            raise ValueError(f"model {self.path}: opened with a fixed batch dimension of {self.batch}, "
                             f"got a batch of {len(batch)}")
        x = np.ascontiguousarray(batch, np.float32) * np.float32(self.spec.input_scale)
        if self.spec.state_size:
            names = [i.name for i in self.session.get_inputs()[1:]]  # h, c; or the graph spotter's state
            state = state if state is not None else \
                (np.zeros((len(x), self.spec.state_size), np.float32),) * len(names)
            logits, *state = self.session.run(None, {"input": x, **dict(zip(names, state))})
            return logits, tuple(state)
        return self.session.run(None, {"input": x})[0]

    def close(self) -> None:
        self.session = None


def input_shape(session) -> tuple:
    """One sample's input shape as the ONNX file states it: (3, 28, 28) for a map, (12, 4) for
    region features; a file whose dimensions are not all fixed is taken to read a 28x28 map."""
    dims = session.get_inputs()[0].shape[1:]
    return tuple(dims) if dims and all(isinstance(d, int) for d in dims) else (3, 28, 28)


class OrtBoundModel:
    """BoundModel on ONNX Runtime's IOBinding: the session reads a scaled copy of `input` and
    writes `output` and the next (h, c) into bound buffers."""

    def __init__(self, model: OnnxModel, batch: int = 1):
        self.model = model
        spec = model.spec
        self.input = np.zeros((batch,) + input_shape(model.session), np.float32)
        self._scaled = np.zeros_like(self.input)
        self.output = np.zeros((batch, len(spec.labels)), np.float32)
        inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
        self._binding = model.session.io_binding()
        self._binding.bind_cpu_input(inputs[0].name, self._scaled)
        self._bind_output(outputs[0].name, self.output)
        # Streaming: state inputs (h, c; or one `state`) and their outputs, in the export's order.
        shape = (batch, spec.state_size)
        self.state = tuple(np.zeros(shape, np.float32) for _ in inputs[1:]) if spec.state_size else ()
        self._state_out = tuple(np.zeros(shape, np.float32) for _ in self.state)
        for i, (now, new) in enumerate(zip(self.state, self._state_out)):
            self._binding.bind_cpu_input(inputs[1 + i].name, now)
            self._bind_output(outputs[1 + i].name, new)
        self._scale = np.float32(spec.input_scale)

    def _bind_output(self, name: str, buffer: np.ndarray):
        self._binding.bind_output(name, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)

    def __call__(self) -> np.ndarray:
        np.multiply(self.input, self._scale, out=self._scaled)
        self.model.session.run_with_iobinding(self._binding)
        for now, new in zip(self.state, self._state_out):
            np.copyto(now, new)  # the next call continues from here
        return self.output

    def reset_state(self) -> None:
        for now in self.state:
            now.fill(0.0)

    def read_state(self) -> Tuple[np.ndarray, ...]:
        """A copy of the streaming state (h, c); () for a model without one."""
        return tuple(now.copy() for now in self.state)

    def load_state(self, *state: np.ndarray) -> None:
        """Continue from a state read_state() gave (another sequence's, kept meanwhile)."""
        for now, value in zip(self.state, state):
            np.copyto(now, value)

    def close(self) -> None:
        self._binding = None
