"""`microexp flow-shift SET --model X.onnx`: how far a model's outputs move between the runtime's
flow and another (by default TV-L1) on the clips of a generated set."""
from __future__ import annotations

import argparse
import json

from microexp.edge.flow import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("set", help="a folder written by `microexp synth`")
    p.add_argument("--model", required=True, help="an AU or emotion ONNX model")
    p.add_argument("--against", default="tvl1", choices=METHODS, help="the other flow (default: tvl1)")
    p.add_argument("--flow", default="farneback", choices=METHODS, help="the runtime's flow (default: farneback)")
    p.add_argument("--fps", type=float, default=200.0)


def run(args) -> int:
    from microexp.training.synth_eval import flow_shift
    print(json.dumps(flow_shift(args.set, args.model, args.against, args.flow, args.fps), indent=1))
    return 0
