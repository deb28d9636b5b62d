"""`microexp au-eval SET`: the runtime's AU decisions at the planted apexes of a generated set."""
from __future__ import annotations

import argparse
import json

from microexp.edge.flow import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("set", help="a folder written by `microexp synth`")
    p.add_argument("--au-model", help="AU ONNX model (default: the shipped one)")
    p.add_argument("--flow", default="farneback", choices=METHODS)
    p.add_argument("--fps", type=float, default=200.0)


def run(args) -> int:
    from microexp.training.synth_eval import au_eval
    print(json.dumps(au_eval(args.set, args.au_model, args.flow, args.fps)))
    return 0
