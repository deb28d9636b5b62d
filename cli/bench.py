"""`microexp bench`: per-stage and end-to-end per-frame latency of the runtime beside the
seed-style baseline, in one run (microexp.edge.bench has the measurement)."""
from __future__ import annotations

import argparse
import importlib.util
import json

from microexp.edge.backends import BACKENDS
from microexp.edge.flow import FAST_CROP, FAST_TRACK_LEVEL
from microexp.edge.trt import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fast-flow", default="farneback-fast", help="the flow of the fast-mode column")
    p.add_argument("--fast-crop", type=int, default=FAST_CROP, help="the aligned crop size of the fast-mode column")
    p.add_argument("--fast-track-level", type=int, default=FAST_TRACK_LEVEL, choices=range(5), metavar="{0..4}",
                   help="pyramid level the fast column's tracking stops at (0 full resolution, 1 half)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="where our columns' AU model runs (see microexp run --backend)")
    p.add_argument("--trt-precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--json", action="store_true")


def pytorch_baseline(threads: int, outputs: int):
    """(name, infer): the seed's AU model, an HTNet of its size in PyTorch eager, when the training
    extra is installed; None otherwise. Its weights do not change its latency, and the
    baseline's AU outputs are not compared, so it is built fresh with `outputs` outputs."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    from microexp.training.models import HTNet
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HTNet(num_classes=outputs, dim=64, heads=4, num_hierarchies=2, block_repeats=(2, 2)).eval()

    def infer(x):
        with torch.no_grad():
            return model(torch.from_numpy(x / 255.0).float()).numpy()
    return "pytorch-eager HTNet (seed size)", infer


def run(args) -> int:
    from microexp.edge import bench
    from microexp.edge.backends import open_model
    from microexp.edge.config import PipelineConfig
    if args.frames < 3:
        raise ValueError("--frames must be at least 3")
    if args.fast_crop < 28:
        raise ValueError("--fast-crop must be at least 28")
    outputs = len(open_model(PipelineConfig().au_model, "ort-cpu").labels)
    report = bench.run(args.frames, args.threads, args.fast_flow, args.fast_crop, args.fast_track_level,
                       args.backend, args.trt_precision, pytorch_baseline(args.threads, outputs))
    print(json.dumps(report, indent=1)) if args.json else bench.print_table(report)
    return 0
