"""Native TensorRT: the CUDA driver calls (driver.py), engines built from our ONNX files and
cached (build.py), and the backend that runs them (engine.py). Needs an NVIDIA GPU and the
`tensorrt` package (the [trt] extra); without them every entry point raises
TensorRTUnavailable saying which is missing. Importing this package imports neither."""
from __future__ import annotations

import importlib.util

PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTUnavailable(RuntimeError):
    """The tensorrt package or an NVIDIA driver is missing."""


def tensorrt_present() -> bool:
    """Whether the native backend can be tried: the package is importable and a driver exists."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import ctypes
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def require_tensorrt():
    """The tensorrt module, or TensorRTUnavailable naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise TensorRTUnavailable("TensorRT paths need the tensorrt package "
                                  "(pip install 'microexp-edge[trt]') and an NVIDIA GPU") from err
    try:
        import ctypes
        ctypes.CDLL("libcuda.so.1")
    except OSError as err:
        raise TensorRTUnavailable("TensorRT paths need an NVIDIA GPU and driver (libcuda.so.1 not found)") from err
    return trt
