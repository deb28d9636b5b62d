import io
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from microexp.export.mtcnn import NETS, export_nets, load_nets


def _fake_wheel(path, break_one=False):
    """A zip laid out like the facenet-pytorch wheel, holding random weights for our nets."""
    torch.manual_seed(0)
    with zipfile.ZipFile(path, "w") as z:
        for name, cls in NETS.items():
            state = cls().state_dict()
            if break_one and name == "rnet":
                state.pop("dense4.weight")
            buf = io.BytesIO()
            torch.save(state, buf)
            z.writestr(f"facenet_pytorch/data/{name}.pt", buf.getvalue())
    return path


def test_conversion_round_trip_matches_pytorch(tmp_path):
    nets = load_nets(_fake_wheel(tmp_path / "facenet_pytorch-0-py3-none-any.whl"))
    paths = export_nets(nets, tmp_path / "out", "test wheel")
    for name, size in (("pnet", 37), ("rnet", 24), ("onet", 48)):
        x = np.random.default_rng(1).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
        got = ort.InferenceSession(str(paths[name])).run(None, {"input": x})
        with torch.no_grad():
            ref = [t.numpy() for t in nets[name](torch.from_numpy(x))]
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=1e-5)
    meta = ort.InferenceSession(str(paths["onet"])).get_modelmeta().custom_metadata_map
    assert "MIT" in meta["licence"]


def test_weights_that_do_not_fit_our_nets_are_refused(tmp_path):
    with pytest.raises(RuntimeError, match="dense4.weight"):
        load_nets(_fake_wheel(tmp_path / "w.whl", break_one=True))
