"""`microexp export CHECKPOINT`: ONNX (checked, parity-tested, self-describing), optionally a
CPU INT8 copy and TensorRT engines.

    microexp export training/checkpoints/au_edge.pt --out models/au_edge.onnx [--batch 8] [--int8] [--trt fp16,int8] [--json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training checkpoint (.pt) from `microexp train fit`, `sequence`, `spotter`, "
                                        "`graph-spotter` or `stcnn --save-model`")
    p.add_argument("--out", help="ONNX path (default: the checkpoint's name with .onnx)")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8", action="store_true", help="also write <out>.int8.onnx (CPU static INT8)")
    p.add_argument("--trt", default="", help="comma-separated TensorRT precisions: fp32, fp16, int8")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from microexp.edge.model_spec import ModelSpec
    from microexp.edge.trt import TensorRTUnavailable
    from microexp.export.onnx_export import PARITY_TOLERANCE, export_onnx
    if args.batch == "dynamic":
        batch = "dynamic"
    else:
        try:
            batch = int(args.batch)
        except ValueError:
            raise ValueError(f"--batch must be 'dynamic' or a positive integer, got {args.batch!r}") from None
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    report = export_onnx(args.checkpoint, out, batch=batch, opset=args.opset)
    summary = {"onnx": str(report.onnx_path), "batch": report.batch, "parity_max_abs_diff": report.parity,
               "parity_tolerance": PARITY_TOLERANCE, "metadata": report.metadata}
    if args.int8:
        from microexp.export.quantize import quantize_int8
        summary["int8"] = str(quantize_int8(out, out.with_suffix(".int8.onnx")))
    if args.trt:
        from microexp.edge.trt.build import build_engine
        spec = ModelSpec.from_props(report.metadata, str(out))
        summary["tensorrt"] = {}
        for precision in [p.strip() for p in args.trt.split(",") if p.strip()]:
            try:
                summary["tensorrt"][precision] = str(build_engine(out, precision, spec=spec))
            except TensorRTUnavailable as err:
                summary["tensorrt"][precision] = f"failed: {err}"
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"onnx: {summary['onnx']} (batch {summary['batch']})")
        print("parity, max |ORT - PyTorch| on logits: " +
              ", ".join(f"{k} {v:.2e}" for k, v in report.parity.items()) + f" (tolerance {PARITY_TOLERANCE})")
        if "int8" in summary:
            print(f"int8: {summary['int8']}")
        for precision, result in summary.get("tensorrt", {}).items():
            print(f"tensorrt {precision}: {result}")
    failed = any(str(v).startswith("failed") for v in summary.get("tensorrt", {}).values())
    return 1 if failed else 0
