"""Where models run. `open_model(path, backend)` is the one factory: it returns a `Model`
(base.py) on ONNX Runtime (ort.py) or as a native TensorRT engine (../trt/engine.py). The ONNX
file's metadata (model_spec.py) configures the caller whichever backend runs it."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

from .base import BoundModel, Model

# 'auto': native TensorRT where the tensorrt package and an NVIDIA driver are present, else
# ONNX Runtime with its best installed providers ('onnxruntime'); the ort-* names pin providers.
BACKENDS = ("auto", "onnxruntime", "ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")
ORT_PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

__all__ = ["BACKENDS", "BoundModel", "Model", "open_model"]


def open_model(path, backend: str = "auto", threads: int = 1, batch: Optional[int] = 1,
               precision: str = "fp32", engine_cache=None) -> Model:
    """The model at `path` (a microexp ONNX file) on `backend` (one of BACKENDS). `threads`
    applies to ONNX Runtime on CPU; `precision` and `engine_cache` to native TensorRT."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    if backend in ("tensorrt", "auto"):
        from ..trt import tensorrt_present
        if backend == "tensorrt" or tensorrt_present():
            from ..trt.engine import TensorRTModel
            try:
                return TensorRTModel.from_onnx(path, precision, engine_cache, batch or 1)
            except Exception as err:
                if backend == "tensorrt":
                    raise
                # auto only: an installed but broken TensorRT falls back, loudly
                warnings.warn(f"model {path}: native TensorRT failed ({err}); running it on ONNX Runtime", stacklevel=2)
        backend = "onnxruntime"
    from .ort import OnnxModel, available_providers
    providers = ORT_PROVIDERS.get(backend)
    if providers:
        available = available_providers()
        if providers[0] not in available:
            raise ValueError(f"backend {backend!r} needs ONNX Runtime's {providers[0]}, which this "
                             f"install lacks (it has {available}); install onnxruntime-gpu on an "
                             "NVIDIA machine")
    return OnnxModel(path, threads, providers=providers, batch=batch)
