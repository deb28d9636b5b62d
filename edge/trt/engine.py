"""Native TensorRT backend: a microexp ONNX model compiled to an engine (built once, cached by
model hash, precision, batch, GPU and TensorRT version; build.py) and run on
one CUDA stream with page-locked host buffers. The ONNX file stays the model's description:
its metadata and tensor names configure the engine's caller, as they do for ONNX Runtime.

    model = TensorRTModel.from_onnx("au_edge.onnx", precision="fp16")
    bound = model.bind()          # input/output buffers, device memory, execution context
    bound.input[0] = uvs28        # encoder values 0..255
    logits = bound()              # scale, copy in, enqueue, copy out, synchronise

Needs the `tensorrt` package and an NVIDIA driver; without them from_onnx raises
TensorRTUnavailable saying which is missing."""
from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Tuple

import numpy as np

from ..backends.base import Model
from ..model_spec import ModelSpec
from . import TensorRTUnavailable, require_tensorrt
from .build import build_engine, load_engine, onnx_interface


def default_engine_cache() -> Path:
    """Engines are per machine (GPU model, TensorRT version), so they go to a user cache, not
    beside models that may sit in a read-only site-packages."""
    root = os.environ.get("MICROEXP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microexp"
    return Path(root) / "engines"


class TensorRTModel(Model):
    """An engine for the ONNX model at `onnx_path`, with its metadata. `engine` is a deserialised
    TensorRT ICudaEngine built from that file; `driver` a CudaDriver (cuda_driver.py)."""

    def __init__(self, onnx_path, engine, driver):
        self.path = Path(onnx_path)
        props, self.input_names, self.output_names = onnx_interface(self.path)
        self.spec = ModelSpec.from_props(props, f"model {self.path}")
        expected = {"input"} | ({"h", "c"} if self.spec.state_size else set())
        if set(self.input_names) != expected or len(self.output_names) != len(self.input_names):
            raise ValueError(f"model {self.path}: inputs {self.input_names}, outputs {self.output_names}; "
                             f"a microexp model has inputs {sorted(expected)} and as many outputs")
        in_engine = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        if in_engine != set(self.input_names) | set(self.output_names):
            raise ValueError(f"model {self.path}: the engine's tensors {sorted(in_engine)} are not the "
                             f"ONNX file's {self.input_names + self.output_names}; was it built from another model?")
        self.engine, self.driver = engine, driver
        self.providers = ["TensorRT"]
        self.batch = None

    @classmethod
    def from_onnx(cls, onnx_path, precision: str = "fp32", cache_dir=None, batch: int = 1) -> "TensorRTModel":
        """Build the engine (or reuse the cached one) and open it on GPU 0."""
        from .driver import CudaDriver, CudaUnavailable
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"model {onnx_path} does not exist")
        spec = ModelSpec.from_props(onnx_interface(onnx_path)[0], f"model {onnx_path}")
        if spec.input_encoding == "region-flow":  # said before TensorRT is even looked for
            raise ValueError(f"model {onnx_path}: the graph spotter (region-flow input) runs on ONNX Runtime, "
                             "not as a native TensorRT engine; use --backend onnxruntime (or auto)")
        require_tensorrt()
        try:
            driver = CudaDriver()  # first, so TensorRT finds the primary context current
        except CudaUnavailable as err:
            raise TensorRTUnavailable(str(err)) from err
        engine_file = build_engine(onnx_path, precision, cache_dir or default_engine_cache(), batch=batch,
                                   spec=spec)
        return cls(onnx_path, load_engine(engine_file), driver)

    def bind(self, batch: int = 1) -> "BoundEngine":
        return BoundEngine(self, batch)

    def run(self, batch: np.ndarray, state=None):
        """Logits for a float32 (N, 3, 28, 28) batch of encoder values 0..255, like
        OnnxModel.run; binds buffers for this call, so keep to bind() per frame."""
        bound = self.bind(len(batch))
        try:
            bound.input[:] = batch
            if self.spec.state_size and state is not None:
                bound.load_state(*state)
            logits = bound().copy()
            return (logits, bound.read_state()) if self.spec.state_size else logits
        finally:
            bound.close()

    def close(self) -> None:
        self.engine = None


class BoundEngine:
    """BoundModel on an execution context: `input` (the caller fills it with encoder values
    0..255), a page-locked scaled copy that is sent to the device, and `output` (logits,
    page-locked). A streaming model's (h, c) stay on the device."""

    def __init__(self, model: TensorRTModel, batch: int = 1):
        self.model = model
        d = self._driver = model.driver
        d.make_current()
        self.input = np.zeros((batch, 3, 28, 28), np.float32)
        self._scaled = d.host_array(self.input.shape)
        self.output = d.host_array((batch, len(model.labels)))
        self._context = model.engine.create_execution_context()
        state_shape = (batch, model.spec.state_size)
        shapes = {"input": self.input.shape, "h": state_shape, "c": state_shape,
                  model.output_names[0]: self.output.shape}
        for name in model.output_names[1:]:
            shapes[name] = state_shape
        self._device = {name: d.alloc(int(np.prod(shape)) * 4) for name, shape in shapes.items()}
        # Freed when this object goes, even if close() is never called.
        self._finalizer = weakref.finalize(self, _release, d, list(self._device.values()), [self._scaled, self.output])
        for name, ptr in self._device.items():
            if name in model.input_names and not self._context.set_input_shape(name, shapes[name]):
                raise ValueError(f"model {model.path}: the engine does not accept {name} of shape "
                                 f"{shapes[name]} (outside its optimisation profile?)")
            self._context.set_tensor_address(name, ptr)
        # (state input, state output) pairs: the export orders outputs logits, h_out, c_out.
        self._state = [(self._device[n], self._device[o]) for n, o in zip(("h", "c"), model.output_names[1:])] \
            if model.spec.state_size else []
        self._state_bytes = batch * model.spec.state_size * 4
        self._scale = np.float32(model.spec.input_scale)
        self.reset_state()

    def __call__(self) -> np.ndarray:
        d = self._driver
        d.make_current()
        np.multiply(self.input, self._scale, out=self._scaled)
        d.to_device(self._device["input"], self._scaled)
        if not self._context.execute_async_v3(d.stream):
            raise RuntimeError(f"model {self.model.path}: TensorRT failed to enqueue the engine")
        d.to_host(self.output, self._device[self.model.output_names[0]])
        for now, new in self._state:
            d.copy_device(now, new, self._state_bytes)  # the next call continues from here
        d.synchronize()
        return self.output

    def reset_state(self):
        for now, _ in self._state:
            self._driver.zero(now, self._state_bytes)
        self._driver.synchronize()

    def load_state(self, h: np.ndarray, c: np.ndarray):
        for (now, _), value in zip(self._state, (h, c)):
            value = np.ascontiguousarray(value, np.float32)
            if value.nbytes != self._state_bytes:
                raise ValueError(f"model {self.model.path}: state of shape {value.shape}, expected "
                                 f"({self.input.shape[0]}, {self.model.spec.state_size})")
            self._driver.to_device(now, value)
        self._driver.synchronize()

    def read_state(self) -> Tuple[np.ndarray, np.ndarray]:
        out = tuple(np.empty((self.input.shape[0], self.model.spec.state_size), np.float32) for _ in self._state)
        for array, (now, _) in zip(out, self._state):
            self._driver.to_host(array, now)
        self._driver.synchronize()
        return out

    def close(self) -> None:
        """Release the device and page-locked memory now; the buffers go with it."""
        self._finalizer()
        self.input = self._scaled = self.output = None


def _release(driver, device_ptrs, host_arrays):
    for ptr in device_ptrs:
        driver.free(ptr)
    for array in host_arrays:
        driver.free_host(array)
