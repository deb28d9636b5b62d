"""`microexp spot-eval SET`: the runtime's spotting on a generated set, MEGC interval metric."""
from __future__ import annotations

import argparse
import json

from microexp.edge.config import SPOT_SCORES
from microexp.edge.flow import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("set", help="a folder written by `microexp synth`")
    p.add_argument("--flow", default="farneback", choices=METHODS)
    p.add_argument("--reference", default="fixed", choices=("fixed", "lag", "refresh"))
    p.add_argument("--fps", type=float, default=200.0)
    p.add_argument("--spot-score", default="motion_local", choices=SPOT_SCORES,
                   help="a motion score, or learned (the spotter model's 1 - p(none))")
    p.add_argument("--spotter-model", help="streaming spotting ONNX (default with --spot-score learned: the "
                                           "shipped learned spotter)")
    p.add_argument("--spot-k", type=float, help="the interval detector's k (default: the runtime's)")
    p.add_argument("--spot-threshold", type=float,
                   help="fixed detector threshold (default: the spotter model's for 'learned')")


def run(args) -> int:
    from microexp.training.synth_eval import spot_eval
    config = {"spot_score": args.spot_score}
    if args.spotter_model:
        config["spotter_model"] = args.spotter_model
    if args.spot_k is not None:
        config["spot_k"] = args.spot_k
    if args.spot_threshold is not None:
        config["spot_threshold"] = args.spot_threshold
    report = spot_eval(args.set, args.flow, args.fps, args.reference, **config)
    print(json.dumps({k: v for k, v in report.items() if k != "clips"}))
    return 0
