"""`microexp eval-outputs`: what the runtime's outputs say where the answer is known: still real
faces, real talking video, generated clips of faces the calibration did not use, and the AU
classifier's honest figures (microexp.training.output_eval)."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--still", nargs="*", default=[], metavar="PHOTO",
                   help="face photos, each held still for 2 s at 100 fps with sensor noise and sub-pixel drift")
    p.add_argument("--talking", nargs="*", default=[], metavar="VIDEO", help="real videos of talking faces")
    p.add_argument("--generated", nargs="*", default=[], metavar="SET",
                   help="sets written by `microexp synth` from faces the calibration did not use")
    p.add_argument("--fps", type=float, help="frame rate of generated sets that do not state theirs (default 200)")
    p.add_argument("--all-aus", action="store_true", help="score every AU the model outputs, not only the reported ones")
    p.add_argument("--au-model", help="AU ONNX model (default: the shipped one)")
    p.add_argument("--action-gate", help="action gate JSON (default: the shipped one; 'none': the raw outputs, "
                                         "as the runtime was before the gate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from microexp.training.output_eval import eval_outputs, print_table
    if not (args.still or args.talking or args.generated):
        raise ValueError("give at least one of --still, --talking, --generated")
    config = {"all_aus": args.all_aus}
    if args.au_model:
        config["au_model"] = args.au_model
    if args.action_gate:
        config["action_gate"] = None if args.action_gate == "none" else args.action_gate
    report = eval_outputs(args.still, args.talking, args.generated, args.fps, config, args.seed)
    print(json.dumps(report, indent=1)) if args.json else print_table(report)
    return 0
