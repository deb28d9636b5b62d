"""`microexp fit-gate SET... --out action_gate.json`: the action gate fitted on generated
calibration sets (microexp.training.action_fit)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from microexp.edge.flow import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sets", nargs="+", help="sets written by `microexp synth`: some with planted events, "
                                          "some still (--events 0 --no-blinks)")
    p.add_argument("--out", required=True, help="the gate's JSON file")
    p.add_argument("--fps", type=float, help="frame rate of the sets (default: each set's own, from its set.json)")
    p.add_argument("--flow", default="farneback", choices=METHODS)
    p.add_argument("--still-rate", type=float, default=0.005,
                   help="share of still-clip frames allowed at or above the chosen threshold (default 0.005)")


def run(args) -> int:
    from microexp.training.action_fit import fit_gate_from_sets
    command = "microexp fit-gate " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[2:]))
    report = fit_gate_from_sets(args.sets, args.out, args.fps, command, args.still_rate, flow=args.flow)
    print(json.dumps(report, indent=1))
    return 0
