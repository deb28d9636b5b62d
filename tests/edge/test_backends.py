"""Backend choice and the native TensorRT backend.

Without an NVIDIA GPU the TensorRT backend's own logic (tensor binding, input scaling, streaming
state kept on the device, buffer release, the pipeline running on it) is checked against a
simulated engine: `SimulatedEngine` follows the TensorRT calls the backend makes and computes
with ONNX Runtime on CPU, and `SimulatedDriver` keeps "device" memory in host buffers. The
real engines and CUDA calls run in the `trt`-marked tests, which skip without a GPU."""
import ctypes
import gc

import numpy as np
import pytest

from microexp.edge import trt
from microexp.edge.backends import BoundModel, Model, open_model
from microexp.edge.backends.ort import OnnxModel, OrtBoundModel, available_providers
from microexp.edge.pipeline import MODELS, Pipeline, PipelineConfig
from microexp.edge.sample_inputs import realistic_inputs
from microexp.edge.sources import FrameSource
from microexp.edge.trt import TensorRTUnavailable, tensorrt_present
from microexp.edge.trt.driver import CudaDriver, CudaUnavailable
from microexp.edge.trt.engine import BoundEngine, TensorRTModel

from .clip import make_clip

AU, EMOTION, SPOTTER = MODELS / "au_edge.onnx", MODELS / "emotion_edge.onnx", MODELS / "spotter.onnx"


class SimulatedDriver:
    """CudaDriver's calls on host memory: a "device pointer" is the address of a host buffer."""

    def __init__(self):
        self.stream = 7
        self.live = {}  # address -> buffer
        self.host_live = 0
        self.calls = []

    def make_current(self):
        pass

    def alloc(self, nbytes):
        buf = np.full(nbytes, 0x3F, np.uint8)  # garbage (0.75 as float32), as fresh device memory may hold
        self.live[buf.ctypes.data] = buf
        return buf.ctypes.data

    def free(self, ptr):
        del self.live[ptr]

    def host_array(self, shape, dtype=np.float32):
        self.host_live += 1
        return np.zeros(shape, dtype)

    def free_host(self, array):
        self.host_live -= 1

    def to_device(self, dst, src):
        assert dst in self.live and src.flags.c_contiguous
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def to_host(self, dst, src):
        assert src in self.live
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def copy_device(self, dst, src, nbytes):
        ctypes.memmove(dst, src, nbytes)

    def zero(self, ptr, nbytes):
        ctypes.memset(ptr, 0, nbytes)

    def synchronize(self):
        self.calls.append("synchronize")


def device_view(ptr, shape):
    count = int(np.prod(shape))
    return np.frombuffer((ctypes.c_float * count).from_address(ptr), np.float32).reshape(shape)


class SimulatedEngine:
    """The ICudaEngine / IExecutionContext calls the backend uses, computed by ONNX Runtime."""

    def __init__(self, onnx_path):
        import onnxruntime as ort
        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.names = [t.name for t in self.session.get_inputs() + self.session.get_outputs()]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def create_execution_context(self):
        return SimulatedContext(self.session)


class SimulatedContext:
    def __init__(self, session):
        self.session, self.shapes, self.addresses = session, {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        assert stream == 7
        feeds = {t.name: device_view(self.addresses[t.name], self.shapes[t.name]).copy()
                 for t in self.session.get_inputs()}
        for out, value in zip(self.session.get_outputs(), self.session.run(None, feeds)):
            device_view(self.addresses[out.name], value.shape)[:] = value
        return True


def simulated(path, driver=None):
    return TensorRTModel(path, SimulatedEngine(path), driver or SimulatedDriver())


def test_ort_backends_pin_their_providers_and_name_what_is_missing():
    assert open_model(AU, "ort-cpu").providers == ["CPUExecutionProvider"]
    assert isinstance(open_model(AU, "onnxruntime"), OnnxModel)
    with pytest.raises(ValueError, match="backend must be one of"):
        open_model(AU, "cuda")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        open_model(MODELS / "missing.onnx", "ort-cpu")
    if "CUDAExecutionProvider" not in available_providers():
        with pytest.raises(ValueError, match="CUDAExecutionProvider.*onnxruntime-gpu"):
            open_model(AU, "ort-cuda")
    with pytest.raises(ValueError, match="PipelineConfig: backend"):
        PipelineConfig(backend="gpu")


@pytest.mark.skipif(tensorrt_present(), reason="TensorRT and a driver are here; the no-GPU message is not reachable")
def test_tensorrt_backend_without_a_gpu_says_what_is_missing():
    with pytest.raises(TensorRTUnavailable, match="tensorrt|GPU|libcuda"):
        open_model(AU, "tensorrt")
    with pytest.raises(TensorRTUnavailable):
        Pipeline(PipelineConfig(backend="tensorrt", emotion_model=None))
    # auto runs on ONNX Runtime here, without a warning: nothing of TensorRT is installed.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(open_model(AU, "auto"), OnnxModel)


def test_cuda_driver_without_the_driver_library_is_a_clear_error():
    with pytest.raises(CudaUnavailable, match="NVIDIA GPU and driver.*libcuda-absent"):
        CudaDriver(library="libcuda-absent.so.1")


def test_auto_falls_back_to_onnxruntime_loudly_when_tensorrt_fails(monkeypatch):
    monkeypatch.setattr(trt, "tensorrt_present", lambda: True)

    def broken(*args, **kwargs):
        raise RuntimeError("engine build ran out of workspace")
    monkeypatch.setattr(TensorRTModel, "from_onnx", broken)
    with pytest.warns(UserWarning, match="native TensorRT failed.*workspace.*ONNX Runtime"):
        model = open_model(AU, "auto")
    assert isinstance(model, OnnxModel)
    with pytest.raises(RuntimeError, match="workspace"):  # asked for by name: no fallback
        open_model(AU, "tensorrt")


@pytest.mark.parametrize("path", [AU, EMOTION], ids=["au", "emotion"])
def test_bound_engine_computes_what_onnxruntime_computes(path):
    maps = realistic_inputs(OnnxModel(path).spec.input_encoding, 5)
    engine, ort = simulated(path).bind(), OnnxModel(path, batch=1).bind()
    assert engine.input.shape == ort.input.shape and engine.output.shape == ort.output.shape
    for x in maps:
        engine.input[0] = x
        ort.input[0] = x
        np.testing.assert_allclose(engine(), ort(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(engine(), ort(), rtol=0, atol=1e-6)  # a second call: same answer
    # Neither backend scales the caller's buffer: it still holds the encoder values written.
    np.testing.assert_array_equal(engine.input[0], maps[-1])
    np.testing.assert_array_equal(ort.input[0], maps[-1])


def test_every_backend_implements_the_written_contract():
    ort_model, engine_model = OnnxModel(AU, batch=1), simulated(AU)
    for model in (ort_model, engine_model):
        assert isinstance(model, Model) and isinstance(model.bind(), BoundModel)
        assert model.labels == model.spec.labels and model.task == "au"
    assert isinstance(ort_model.bind(), OrtBoundModel)


def test_streaming_state_stays_on_the_device_and_restarts():
    model = simulated(SPOTTER)
    engine, ort = model.bind(), OnnxModel(SPOTTER, batch=1).bind()
    maps = realistic_inputs("uvs28", 6, seed=3)

    def sequence(bound):
        out = []
        for x in maps:
            bound.input[0] = x
            out.append(bound().copy())
        return np.stack(out)

    first = sequence(engine)
    np.testing.assert_allclose(first, sequence(ort), atol=1e-5)
    assert not np.allclose(first[0], first[-1])  # the state moved the scores on
    h, c = engine.read_state()
    np.testing.assert_allclose(h, ort.state[0], atol=1e-5)
    np.testing.assert_allclose(c, ort.state[1], atol=1e-5)
    engine.reset_state()
    np.testing.assert_allclose(sequence(engine), first, atol=1e-6)
    # run() with an explicit state, as OnnxModel.run takes it.
    logits, (h2, c2) = model.run(maps[:1], state=(h, c))
    ref_logits, (rh, rc) = OnnxModel(SPOTTER).run(maps[:1], state=(h, c))
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(h2, rh, atol=1e-5)
    with pytest.raises(ValueError, match="state of shape"):
        engine.load_state(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))


def test_an_engine_of_another_model_is_refused():
    with pytest.raises(ValueError, match="engine's tensors .* are not the ONNX file's"):
        TensorRTModel(AU, SimulatedEngine(SPOTTER), SimulatedDriver())


def test_bound_engine_releases_device_and_host_memory():
    driver = SimulatedDriver()
    model = simulated(SPOTTER, driver)
    bound = model.bind()
    assert len(driver.live) == 6 and driver.host_live == 2  # input, logits, h, c, h_out, c_out
    bound.close()
    assert not driver.live and driver.host_live == 0
    model.bind()  # dropped at once: released when collected
    gc.collect()
    assert not driver.live and driver.host_live == 0
    model.run(np.zeros((3, 3, 28, 28), np.float32))  # run() binds for one call and releases
    assert not driver.live


def test_pipeline_on_the_tensorrt_backend_gives_the_onnxruntime_rows(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip", frames=30)
    frames = [f.image for f in FrameSource(clip, fps=100)]
    monkeypatch.setattr(TensorRTModel, "from_onnx",
                        classmethod(lambda cls, path, *args: simulated(path)))
    rows, pipes = {}, {}
    for backend in ("tensorrt", "ort-cpu"):
        pipes[backend] = Pipeline(PipelineConfig(backend=backend, spotter_model=str(SPOTTER)))
        rows[backend] = [pipes[backend].process(f) for f in frames]
    assert isinstance(pipes["tensorrt"]._au, BoundEngine) and isinstance(pipes["tensorrt"]._spot, BoundEngine)
    assert isinstance(pipes["ort-cpu"]._au, OrtBoundModel)
    for trt_row, ort_row in zip(rows["tensorrt"], rows["ort-cpu"]):
        assert trt_row.success and trt_row.box == ort_row.box
        for key in ("au", "emotion", "spotting"):
            got, want = getattr(trt_row, key), getattr(ort_row, key)
            assert got.keys() == want.keys() and got
            np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-5)
    assert rows["tensorrt"][20].au != rows["tensorrt"][0].au  # the planted motion reached the model


def _real_tensorrt():
    if not tensorrt_present():
        return False, "the tensorrt package or an NVIDIA driver is missing"
    try:
        CudaDriver()
        return True, ""
    except (CudaUnavailable, RuntimeError) as err:
        return False, str(err)


REAL, REAL_WHY = _real_tensorrt()


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.skipif(not REAL, reason=f"native TensorRT unavailable: {REAL_WHY}")
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_real_engines_match_onnxruntime(tmp_path, precision, tolerance):
    for path in (AU, EMOTION, SPOTTER):
        model = TensorRTModel.from_onnx(path, precision, tmp_path / "engines")
        assert isinstance(model.bind(), BoundEngine)
        engine, ort = model.bind(), OnnxModel(path, batch=1, providers=["CPUExecutionProvider"]).bind()
        for x in realistic_inputs(model.spec.input_encoding, 8):
            engine.input[0] = x
            ort.input[0] = x
            np.testing.assert_allclose(engine(), ort(), atol=tolerance)
        # Cached: the second open reuses the engine file.
        before = sorted((tmp_path / "engines").glob("*.engine"))
        TensorRTModel.from_onnx(path, precision, tmp_path / "engines")
        assert sorted((tmp_path / "engines").glob("*.engine")) == before


@pytest.mark.skipif(tensorrt_present(), reason="TensorRT and a driver are here; the no-GPU message is not reachable")
def test_cli_names_the_missing_tensorrt_instead_of_crashing(tmp_path, capsys):
    from microexp.cli import main
    clip = make_clip(tmp_path / "clip", frames=3)
    assert main(["run", str(clip), "--out", str(tmp_path / "out"), "--backend", "tensorrt"]) == 2
    assert "microexp run:" in capsys.readouterr().err
    assert main(["bench", "--frames", "3", "--backend", "tensorrt"]) == 2
    assert "microexp bench:" in capsys.readouterr().err
