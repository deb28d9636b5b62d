"""TensorRT engines from our ONNX files (FP32, FP16, INT8 with a calibrator fed by realistic
encoded inputs), cached by model hash, precision, batch, GPU model and TensorRT version. Needs an NVIDIA GPU and the
`tensorrt` package (the [trt] extra); without them every entry point raises TensorRTUnavailable
with the reason."""
from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .onnx_export import realistic_inputs

PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTUnavailable(RuntimeError):
    pass


def _require():
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


@functools.lru_cache(maxsize=1)
def gpu_name() -> str:
    """The GPU's name from the CUDA driver (nvidia-smi is missing on some Jetson images)."""
    from microexp.edge.cuda_driver import CudaDriver, CudaUnavailable
    try:
        return CudaDriver().device_name
    except (CudaUnavailable, RuntimeError) as err:
        raise TensorRTUnavailable(f"no NVIDIA GPU visible ({err})") from err


def engine_path(onnx_path, precision: str, cache_dir=None, batch: int = 8) -> Path:
    """Cache key: ONNX content hash, precision, the batch the profile is tuned for, GPU model,
    TensorRT version."""
    trt = _require()
    onnx_path = Path(onnx_path)
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name()).strip("-")
    cache = Path(cache_dir) if cache_dir else onnx_path.parent / "engines"
    return cache / f"{onnx_path.stem}-{digest}-{precision}-b{batch}-{gpu}-trt{trt.__version__}.engine"


def build_engine(onnx_path, precision: str = "fp16", cache_dir=None, batch: int = 8,
                 calibration_samples: int = 256, encoding: Optional[str] = None) -> Path:
    if precision not in PRECISIONS:
        raise ValueError(f"build_engine: precision must be one of {PRECISIONS}, got {precision!r}")
    trt = _require()
    path = engine_path(onnx_path, precision, cache_dir, batch)
    if path.is_file():
        return path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"build_engine: TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        shape = list(inp.shape)
        lo, opt, hi = ([1] + shape[1:], [batch] + shape[1:], [max(batch, 32)] + shape[1:])
        profile.set_shape(inp.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calibration_feeds(onnx_path, calibration_samples, encoding),
                                             path.with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"build_engine: TensorRT failed to build {onnx_path} ({precision})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    return path


def calibration_feeds(onnx_path, samples: int, encoding: Optional[str] = None) -> Dict[str, np.ndarray]:
    """What INT8 calibration feeds each input, as the model sees it at run time: realistic
    encoded maps times the model's input_scale (its metadata), zero (h, c) for a streaming
    model (a sequence's first step)."""
    import onnx
    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    scale = float(json.loads(meta.get("input_scale", "1")))
    maps = realistic_inputs(encoding or meta.get("input_encoding", "uvs28"), samples) * np.float32(scale)
    feeds = {"input": maps}
    state = int(json.loads(meta.get("state_size", "0")))
    for name in ("h", "c") if state else ():
        feeds[name] = np.zeros((samples, state), np.float32)
    return feeds


def _calibrator(trt, feeds: Dict[str, np.ndarray], cache: Path):
    """Entropy calibration over `feeds`, one sample at a time, copied to the device through the
    CUDA driver (no torch or pycuda needed)."""
    from microexp.edge.cuda_driver import CudaDriver

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.i = 0
            self.count = len(feeds["input"])
            self.driver = CudaDriver()
            self.host = {name: np.empty((1,) + v.shape[1:], np.float32) for name, v in feeds.items()}
            self.device = {name: self.driver.alloc(h.nbytes) for name, h in self.host.items()}

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.i >= self.count:
                return None
            for name, host in self.host.items():
                host[:] = feeds[name][self.i:self.i + 1]
                self.driver.to_device(self.device[name], host)
            self.driver.synchronize()
            self.i += 1
            return [self.device[name] for name in names]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data):
            cache.write_bytes(bytes(data))

    return Calibrator()


def check_engine_version(path, installed: str) -> None:
    """Refuse, by the version in its cache name (engine_path), an engine built by another
    TensorRT version: deserialising one fails or misbehaves."""
    m = re.search(r"-trt([0-9.]+)\.engine$", Path(path).name)
    if m and m.group(1) != installed:
        raise ValueError(f"load_engine: {Path(path).name} was built by TensorRT {m.group(1)}, this is "
                         f"{installed}; rebuild it with build_engine")


def load_engine(path):
    """Deserialise an engine; one built by another TensorRT version is refused by name."""
    trt = _require()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_engine: {path} does not exist")
    check_engine_version(path, trt.__version__)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise ValueError(f"load_engine: TensorRT could not deserialise {path} (corrupt, or built "
                         "for another TensorRT version or GPU)")
    return engine
