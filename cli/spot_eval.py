"""`microexp spot-eval SET`: the MEGC spotting protocol on the runtime's events (every face's): a set generated
by `microexp synth`, or a long-video set (CAS(ME)^2, SAMM Long Videos) in its distributed layout;
IoU >= 0.5, counts per video then pooled, micro- and macro-expressions separately and together."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from microexp.cli.run import add_spotter_arguments, spotter_overrides
from microexp.edge.config import SPOT_SCORES
from microexp.edge.flow import METHODS

LAYOUTS = ("auto", "synth", "casme-sq", "samm-lv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("set", help="a folder written by `microexp synth`, or a CAS(ME)^2 / SAMM Long Videos folder")
    p.add_argument("--layout", default="auto", choices=LAYOUTS,
                   help="the set's layout (default: synth where samm.csv is, CAS(ME)^2 where rawvideo/ or "
                        "rawpic/ is, else SAMM Long Videos)")
    p.add_argument("--flow", default="farneback", choices=METHODS)
    p.add_argument("--reference", default="fixed", choices=("fixed", "lag", "refresh"))
    p.add_argument("--fps", type=float, help="the videos' frame rate, if not the set's (synth: set.json; "
                                             "CAS(ME)^2 30; SAMM Long Videos 200)")
    add_spotter_arguments(p)
    p.add_argument("--spot-score", default="motion_local", choices=SPOT_SCORES,
                   help="a motion score, or learned (the spotter model's 1 - p(none))")
    p.add_argument("--spotter-model", help="streaming spotting ONNX (default with --spot-score learned: the "
                                           "shipped learned spotter)")
    p.add_argument("--spot-k", type=float, help="the interval detector's k (default: the runtime's)")
    p.add_argument("--spot-threshold", type=float,
                   help="fixed detector threshold (default: the spotter model's for 'learned')")
    p.add_argument("--per-video", action="store_true", help="also print each video's truth, predictions and counts")


def run(args) -> int:
    from microexp.training.datasets.long_videos import read_long_videos, resolve_layout
    from microexp.training.spot_protocol import spotting_report, synth_videos, with_fps
    config = {"spot_score": args.spot_score, **spotter_overrides(args)}
    if args.spot_k is not None:
        config["spot_k"] = args.spot_k
    if args.spot_threshold is not None:
        config["spot_threshold"] = args.spot_threshold
    root = Path(args.set)
    layout = args.layout
    if layout == "auto":
        layout = "synth" if (root / "samm.csv").is_file() else resolve_layout(root)
    videos = synth_videos(root) if layout == "synth" else read_long_videos(root, layout)
    report = spotting_report(with_fps(videos, args.fps), args.flow, args.reference, **config)
    report = {"set": str(root), "layout": layout, **report}
    for note in report["notes"]:  # e.g. a spotter trained at another frame rate than the set's
        print(f"microexp spot-eval: note: {note}", file=sys.stderr)
    if not args.per_video:
        report.pop("videos")
    print(json.dumps(report))
    return 0
