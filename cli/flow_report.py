"""`microexp flow-report SET`: end-point error of each flow mode against a generated set's known motion."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("set", help="a folder written by `microexp synth`")


def run(args) -> int:
    from microexp.training.synth_eval import flow_report
    print(json.dumps(flow_report(args.set)))
    return 0
