"""Model latency: PyTorch eager, ONNX Runtime fp32 and int8 (and TensorRT where present), at
batch 1 and 8, one thread and all threads, side by side in one run.

    python -m microexp.export.bench [--models DIR] [--repeats N] [--json]

DIR holds <name>.pt checkpoints (default: the package's training/checkpoints); each is
exported to ONNX and quantised into a temporary folder first. Without an HTNet among them an
untrained one of the edge size is added (`htnet_seed_size`). HTNets are also exported in
the authors' NCHW layout as it is (`ort-fp32-nchw` rows), beside the channel-last form the
export ships (export/htnet_tokens.py), with each graph's node count after ONNX Runtime's
optimisations.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from microexp.kernels.bench import timed  # median and p99 of repeated calls


def _ort_session(path, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_as_is(model, path: Path) -> Path:
    """A module exported as it is, without export_form's rewrite: for an HTNet, the trained
    NCHW layout with its LayerNorms spelled out, the comparison for the channel-last form."""
    import warnings

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.rand(1, 3, 28, 28),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def optimised_nodes(path: Path) -> int:
    """Nodes left in the graph after ONNX Runtime's CPU optimisations (what it dispatches)."""
    import onnx
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(path.with_suffix(".optimised.onnx"))
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return len(onnx.load(opts.optimized_model_filepath).graph.node)


def seed_size_htnet(path: Path) -> Path:
    """An untrained HTNet of the edge size (the seed's AU model, 0.58M parameters) as a
    checkpoint: when the shipped models are not HTNets, its rows keep the eager / channel-last
    / NCHW comparison measurable (weights do not change latency)."""
    import torch

    from microexp.training.checkpoint import save_checkpoint
    from microexp.training.experiment import Experiment, build_model
    torch.manual_seed(0)
    exp = Experiment(task="emotion", input="composite")
    return save_checkpoint(path, build_model(exp, 3), exp, dataset="megc",
                           labels=["negative", "positive", "surprise"], metrics={},
                           provenance="untrained, for latency only")


def run(models_dir: Path, repeats: int):
    import torch

    from microexp.edge.sample_inputs import realistic_inputs
    from microexp.training.checkpoint import load_checkpoint
    from microexp.training.models import HTNet

    from .onnx_export import export_onnx
    from .quantize import quantize_int8
    rows, nodes = [], {}
    all_threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = sorted(models_dir.glob("*.pt"))
        if not any(isinstance(load_checkpoint(c).model, HTNet) for c in checkpoints):
            checkpoints.append(seed_size_htnet(Path(tmp) / "htnet_seed_size.pt"))
        for ckpt in checkpoints:
            loaded = load_checkpoint(ckpt)
            model, meta, kind = loaded.model, loaded.metadata, loaded.kind
            fp32 = export_onnx(ckpt, Path(tmp) / f"{ckpt.stem}.onnx").onnx_path
            int8 = quantize_int8(fp32, Path(tmp) / f"{ckpt.stem}.int8.onnx", calibration_samples=64)
            onnx_files = [("ort-fp32", fp32), ("ort-int8", int8)]
            if isinstance(model, HTNet):
                nchw = export_as_is(model, Path(tmp) / f"{ckpt.stem}.nchw.onnx")
                onnx_files.append(("ort-fp32-nchw", nchw))
                nodes[ckpt.stem] = {"ort-fp32": optimised_nodes(fp32), "ort-fp32-nchw": optimised_nodes(nchw)}
            maps = realistic_inputs(meta["input_encoding"], 8) * float(meta["input_scale"])
            for batch in (1, 8):
                x = np.ascontiguousarray(maps[:batch])
                feed = {"input": x}
                if kind == "stream":
                    state = np.zeros((batch, model.hidden), np.float32)
                    feed.update(h=state, c=state)
                elif kind == "graph":  # one streaming step with the window of the frames before
                    feed.update(state=np.zeros((batch, model.state_size), np.float32))
                for threads in sorted({1, all_threads}):
                    torch.set_num_threads(threads)
                    tx = {k: torch.from_numpy(v) for k, v in feed.items()}
                    with torch.no_grad():
                        if kind == "stream":
                            p50, p99 = timed(lambda m=model, x=tx: m.step(x["input"], x["h"], x["c"]), repeats)
                        elif kind == "graph":
                            p50, p99 = timed(lambda m=model, x=tx: m.step(x["input"], x["state"]), repeats)
                        else:
                            p50, p99 = timed(lambda m=model, x=tx: m(x["input"]), repeats)
                    rows.append(dict(model=ckpt.stem, backend="pytorch-eager", batch=batch, threads=threads,
                                     p50_ms=p50, p99_ms=p99))
                    for name, path in onnx_files:
                        sess = _ort_session(path, threads)
                        p50, p99 = timed(lambda s=sess, f=feed: s.run(None, f), repeats)
                        rows.append(dict(model=ckpt.stem, backend=name, batch=batch, threads=threads, p50_ms=p50, p99_ms=p99))
    for r in rows:
        r["fps"] = r["batch"] * 1e3 / r["p50_ms"]
    try:
        from microexp.edge.trt import require_tensorrt
        require_tensorrt()
        trt_note = "available (engines are benchmarked by `microexp export --trt`)"
    except Exception as err:  # TensorRTUnavailable or anything the probe raises
        trt_note = f"skipped: {err}"
    return {"cpu": platform.processor() or platform.machine(), "cores": all_threads,
            "repeats": repeats, "tensorrt": trt_note, "results": rows, "optimised_nodes": nodes}


def print_table(report):
    print(f"{report['cores']} cores, {report['repeats']} calls per row; TensorRT: {report['tensorrt']}")
    w = max([14] + [len(r["model"]) for r in report["results"]])  # the longest model name
    head = f"{'model':{w}s} {'backend':14s} {'batch':>5s} {'threads':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'FPS':>9s}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        print(f"{r['model']:{w}s} {r['backend']:14s} {r['batch']:5d} {r['threads']:7d} "
              f"{r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['fps']:9.0f}")
    for model, counts in report.get("optimised_nodes", {}).items():
        print(f"{model}: graph nodes after ONNX Runtime's optimisations: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=str(Path(__file__).resolve().parents[1] / "training" / "checkpoints"))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    models = Path(args.models)
    if not any(models.glob("*.pt")):
        p.error(f"no .pt checkpoints in {models}")
    report = run(models, args.repeats)
    print(json.dumps(report, indent=1)) if args.json else print_table(report)


if __name__ == "__main__":
    main()
