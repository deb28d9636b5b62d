"""Training checkpoint -> ONNX, checked: onnx.checker, shape inference, parity with PyTorch.

Classifiers (HTNet, the small CNN) export as `input` (N, 3, 28, 28) -> `logits` (N, K) with
the batch dynamic or fixed; an HTNet is exported in its channel-last form (htnet_tokens.py),
and parity is checked against the module as trained. The CNN-LSTM exports as one streaming step:
`input` (N, 3, 28, 28), `h` (N, H), `c` (N, H) -> `logits` (N, K), `h_out`, `c_out`; the graph
spotter as its step: `input` (N, 12, 4) region features, `state` (N, S) -> `logits`, `state_out`;
MicroExpSTCNN as `input` (N, 1, T, S, S) grey frames -> `logits` (N, K) (parity on random stacks and
realistic ones, edge.sample_inputs).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Union

import numpy as np

from microexp.edge.sample_inputs import realistic_inputs
from microexp.training.checkpoint import load_checkpoint

from .metadata import spec_from_checkpoint

OPSET = 17  # accepted by ONNX Runtime and by TensorRT 8.6 and later
PARITY_TOLERANCE = 1e-4  # fp32, max abs difference of logits


@dataclass
class ExportReport:
    onnx_path: Path
    metadata: Dict[str, str]
    parity: Dict[str, float] = field(default_factory=dict)  # input kind -> max abs difference
    batch: Union[str, int] = "dynamic"

    @property
    def parity_ok(self) -> bool:
        return all(v <= PARITY_TOLERANCE for v in self.parity.values())


def export_form(model):
    """What goes to the ONNX exporter for a classifier: an HTNet recomputed on channel-last
    tokens (fewer, fused nodes), any other model as it is."""
    from microexp.training.models import HTNet

    from .htnet_tokens import TokenHTNet
    return TokenHTNet(model).eval() if isinstance(model, HTNet) else model


class _Step:
    """Wraps a streaming model's step (the CNN-LSTM's, the graph spotter's) as a module."""

    @staticmethod
    def wrap(model):
        import torch

        class Step(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x, *state):
                return self.inner.step(x, *state)

        return Step(model).eval()


def export_onnx(checkpoint, out, *, batch: Union[str, int] = "dynamic", opset: int = OPSET,
                parity_samples: int = 16) -> ExportReport:
    """Export, check and stamp metadata; raises if parity exceeds PARITY_TOLERANCE."""
    import onnx
    import torch

    loaded = load_checkpoint(checkpoint)
    model, meta, kind = loaded.model, loaded.metadata, loaded.kind
    if batch != "dynamic" and (not isinstance(batch, int) or batch < 1):
        raise ValueError(f"export: batch must be 'dynamic' or a positive integer, got {batch!r}")
    n = 1 if batch == "dynamic" else batch
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    x = torch.rand(n, 3, 28, 28)
    dyn = batch == "dynamic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript needed
        if kind == "graph":
            x = torch.from_numpy(graph_inputs(n, np.random.default_rng(0)))
            axes = {k: {0: "batch"} for k in ("input", "state", "logits", "state_out")}
            torch.onnx.export(_Step.wrap(model), (x, model.initial_state(n)), str(tmp), dynamo=False,
                              opset_version=opset, input_names=["input", "state"],
                              output_names=["logits", "state_out"], dynamic_axes=axes if dyn else None)
        elif kind == "volume":
            c = model.config
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
            torch.onnx.export(model, (torch.rand(n, 1, c["frames"], c["size"], c["size"]),), str(tmp), dynamo=False,
                              opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_axes=axes if dyn else None)
        elif kind == "stream":
            h = torch.zeros(n, model.hidden)
            axes = {k: {0: "batch"} for k in ("input", "h", "c", "logits", "h_out", "c_out")}
            torch.onnx.export(_Step.wrap(model), (x, h, h.clone()), str(tmp), dynamo=False,
                              opset_version=opset, input_names=["input", "h", "c"],
                              output_names=["logits", "h_out", "c_out"],
                              dynamic_axes=axes if dyn else None)
        else:
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
            torch.onnx.export(export_form(model), (x,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes=axes if dyn else None)
    proto = onnx.load(str(tmp))
    props = spec_from_checkpoint(meta).to_props()
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name, proto.producer_version = "microexp-edge", props["producer_version"]
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.save(proto, str(tmp))
    report = ExportReport(out, props, batch=batch)
    report.parity = parity(model, kind, str(tmp), meta, n if not dyn else 4, parity_samples)
    if not report.parity_ok:
        tmp.unlink()
        raise RuntimeError(f"export: ONNX Runtime differs from PyTorch by {report.parity} "
                           f"(> {PARITY_TOLERANCE}); nothing written")
    tmp.replace(out)
    return report


def parity(model, kind: str, onnx_path: str, meta, batch: int, samples: int) -> Dict[str, float]:
    """Max abs logit difference, ONNX Runtime vs PyTorch, on random and realistic inputs."""
    import onnxruntime as ort
    import torch
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    scale = float(meta["input_scale"])
    rng = np.random.default_rng(0)
    if kind == "graph":
        return graph_parity(model, session, batch, samples, rng)
    shape = (samples, 1, model.config["frames"], model.config["size"], model.config["size"]) if kind == "volume" \
        else (samples, 3, 28, 28)
    sets = {"random": rng.uniform(0, 255, shape).astype(np.float32),
            "realistic": realistic_inputs(meta["input_encoding"], samples)}
    result = {}
    for name, maps in sets.items():
        worst = 0.0
        for i in range(0, samples - batch + 1, batch):
            x = maps[i:i + batch] * scale
            with torch.no_grad():
                if kind == "stream":
                    h = np.zeros((batch, model.hidden), np.float32)
                    ref = [t.numpy() for t in model.step(torch.from_numpy(x), torch.from_numpy(h), torch.from_numpy(h))]
                    got = session.run(None, {"input": x, "h": h, "c": h})
                else:
                    ref = [model(torch.from_numpy(x)).numpy()]
                    got = session.run(None, {"input": x})
            worst = max(worst, max(float(np.abs(a - b).max()) for a, b in zip(ref, got)))
        result[name] = worst
    return result


def graph_inputs(n: int, rng) -> np.ndarray:
    """(n, 12, 4) region features in their ranges: mean flow and magnitude of a few px, angles."""
    x = rng.normal(0, 2.0, (n, 12, 4)).astype(np.float32)
    x[..., 2] = np.abs(x[..., 2])
    x[..., 3] = rng.uniform(-np.pi, np.pi, (n, 12)).astype(np.float32)
    return x


def graph_parity(model, session, batch: int, samples: int, rng) -> Dict[str, float]:
    """The graph spotter stepped through `samples` frames from a zero state, ONNX Runtime against
    PyTorch (logits and state carried on by each side), on random features and on a still face
    that starts to move (zeros, then a growing displacement)."""
    import torch
    moving = np.zeros((samples, batch, 12, 4), np.float32)
    for t in range(samples):
        moving[t, :, :, 0] = 0.2 * t
        moving[t, :, :, 2] = 0.2 * t
    sets = {"random": np.stack([graph_inputs(batch, rng) for _ in range(samples)]), "realistic": moving}
    result = {}
    for name, frames in sets.items():
        worst = 0.0
        ref_state = model.initial_state(batch)
        got_state = ref_state.numpy().copy()
        for x in frames:
            with torch.no_grad():
                ref, ref_state = model.step(torch.from_numpy(x), ref_state)
            got, got_state = session.run(None, {"input": x, "state": got_state})
            worst = max(worst, float(np.abs(ref.numpy() - got).max()), float(np.abs(ref_state.numpy() - got_state).max()))
        result[name] = worst
    return result

