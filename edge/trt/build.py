"""TensorRT engines from our ONNX files (FP32, FP16, INT8 with a calibrator fed by realistic
encoded inputs), cached by model hash, precision, batch, GPU model and TensorRT version."""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..model_spec import ModelSpec
from ..sample_inputs import realistic_inputs
from . import PRECISIONS, TensorRTUnavailable, require_tensorrt


def onnx_interface(path: Path) -> Tuple[dict, List[str], List[str]]:
    """(metadata_props, input names, output names) of an ONNX file, in graph order."""
    import onnx
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ValueError(f"model {path}: not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    return props, inputs, [o.name for o in model.graph.output]


@functools.lru_cache(maxsize=1)
def gpu_name() -> str:
    """The GPU's name from the CUDA driver (nvidia-smi is missing on some Jetson images)."""
    from .driver import CudaDriver, CudaUnavailable
    try:
        return CudaDriver().device_name
    except (CudaUnavailable, RuntimeError) as err:
        raise TensorRTUnavailable(f"no NVIDIA GPU visible ({err})") from err


def engine_path(onnx_path, precision: str, cache_dir=None, batch: int = 8) -> Path:
    """Cache key: ONNX content hash, precision, the batch the profile is tuned for, GPU model,
    TensorRT version."""
    trt = require_tensorrt()
    onnx_path = Path(onnx_path)
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name()).strip("-")
    cache = Path(cache_dir) if cache_dir else onnx_path.parent / "engines"
    return cache / f"{onnx_path.stem}-{digest}-{precision}-b{batch}-{gpu}-trt{trt.__version__}.engine"


def build_engine(onnx_path, precision: str = "fp16", cache_dir=None, batch: int = 8,
                 calibration_samples: int = 256, spec: Optional[ModelSpec] = None) -> Path:
    if precision not in PRECISIONS:
        raise ValueError(f"build_engine: precision must be one of {PRECISIONS}, got {precision!r}")
    trt = require_tensorrt()
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
        config.int8_calibrator = _calibrator(trt, calibration_feeds(onnx_path, calibration_samples, spec),
                                             path.with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"build_engine: TensorRT failed to build {onnx_path} ({precision})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    return path


def calibration_feeds(onnx_path, samples: int, spec: Optional[ModelSpec] = None) -> Dict[str, np.ndarray]:
    """What INT8 calibration feeds each input, as the model sees it at run time: realistic
    encoded maps times the model's input_scale, zero (h, c) for a streaming model (a
    sequence's first step). `spec`: the model's, read from the file when not given."""
    if spec is None:
        spec = ModelSpec.from_props(onnx_interface(Path(onnx_path))[0], str(onnx_path))
    maps = realistic_inputs(spec.input_encoding, samples) * np.float32(spec.input_scale)
    feeds = {"input": maps}
    for name in ("h", "c") if spec.state_size else ():
        feeds[name] = np.zeros((samples, spec.state_size), np.float32)
    return feeds


def _calibrator(trt, feeds: Dict[str, np.ndarray], cache: Path):
    """Entropy calibration over `feeds`, one sample at a time, copied to the device through the
    CUDA driver (no torch or pycuda needed)."""
    from .driver import CudaDriver

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
    trt = require_tensorrt()
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
