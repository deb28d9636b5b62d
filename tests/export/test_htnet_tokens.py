import collections
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from microexp.export.htnet_tokens import TokenHTNet
from microexp.export.onnx_export import export_form
from microexp.training.models import CnnLstm, HTNet

CONFIGS = {
    "edge": dict(dim=64, heads=4, num_hierarchies=2, block_repeats=(2, 2)),
    "three-levels": dict(dim=16, heads=3, num_hierarchies=3, block_repeats=(1, 1, 2)),
    "one-level": dict(dim=8, heads=2, num_hierarchies=1, block_repeats=1),
    "patch-14": dict(patch_size=14, dim=8, heads=2, num_hierarchies=2, block_repeats=1),
}


def _trained_looking(config, seed=0):
    """An HTNet with every parameter randomised, gains and biases included, so that no
    term of the rewrite can hide behind a default of one or zero."""
    torch.manual_seed(seed)
    net = HTNet(num_classes=5, **config).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * (0.5 if p.dim() > 1 else 0.3) + (1.0 if p.dim() == 4 and p.shape[0] == 1 else 0.0))
    return net


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_token_form_equals_the_trained_module(name):
    net = _trained_looking(CONFIGS[name])
    x = torch.rand(3, 3, 28, 28)
    with torch.no_grad():
        want, got = net(x), TokenHTNet(net)(x)
    assert got.shape == want.shape == (3, 5)
    assert torch.allclose(got, want, atol=2e-5, rtol=1e-5), (got - want).abs().max()


def test_token_form_sees_every_block_position_and_sample():
    """Permuting the input must move the output as the trained module's does: a wrong block
    or patch order in the rewrite would agree on a constant map, not on a structured one."""
    net = _trained_looking(CONFIGS["three-levels"], seed=1)
    x = torch.zeros(2, 3, 28, 28)
    x[0, :, :7, :7] = 1.0  # only the top-left patch lit
    x[1, :, 21:, 14:21] = 1.0  # only one bottom patch lit
    with torch.no_grad():
        want, got = net(x), TokenHTNet(net)(x)
    assert not torch.allclose(want[0], want[1])
    assert torch.allclose(got, want, atol=2e-5, rtol=1e-5)


def test_only_htnets_are_rewritten():
    with pytest.raises(TypeError, match="expected an HTNet"):
        TokenHTNet(CnnLstm(num_outputs=2, width=4, hidden=4))
    other = torch.nn.Linear(2, 2)
    assert export_form(other) is other
    assert isinstance(export_form(_trained_looking(CONFIGS["one-level"])), TokenHTNet)


def test_export_has_fused_layer_norms_and_matches_onnx_runtime(tmp_path):
    net = _trained_looking(CONFIGS["edge"])
    path = tmp_path / "tokens.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as export_onnx uses it
        torch.onnx.export(TokenHTNet(net), (torch.rand(1, 3, 28, 28),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    # 2 levels x 2 layers x 2 norms, the aggregation's and the head's: 10 LayerNormalization
    # nodes, and none of the spelled-out form (ReduceMean, Pow, Sqrt) left.
    assert ops["LayerNormalization"] == 10
    assert ops["ReduceMean"] <= 1 and ops["Pow"] == 0 and ops["Sqrt"] == 0
    x = np.random.default_rng(0).random((4, 3, 28, 28), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4


def test_token_form_leaves_onnx_runtime_fewer_nodes(tmp_path):
    """What the export benchmark reports: the channel-last graph is smaller after ONNX
    Runtime's own fusions than the module exported as trained."""
    from microexp.export.bench import export_as_is, optimised_nodes
    net = _trained_looking(CONFIGS["edge"])
    nchw = optimised_nodes(export_as_is(net, tmp_path / "nchw.onnx"))
    tokens = optimised_nodes(export_as_is(TokenHTNet(net), tmp_path / "tokens.onnx"))
    assert tokens < 0.7 * nchw, (tokens, nchw)
