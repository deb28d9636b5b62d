"""`microexp batch INPUT... --out DIR`: many videos or frame folders, each analysed as `microexp
run` would into its own folder, resumable, on a process pool or Ray (microexp.edge.batch)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from microexp.edge.config import PipelineConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, frame folders, glob patterns ('data/**/*.mp4'), @list.txt, or a data set's root")
    p.add_argument("--out", required=True, help="output folder: a folder per input, manifest.json, summary.csv")
    p.add_argument("--workers", type=int, default=1,
                   help="inputs analysed at once (processes, or a local Ray instance's CPUs; default 1)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the inputs as Ray tasks: on a local Ray instance started for the run, or on the "
                        "cluster at ADDRESS (ray://host:10001, host:6379 or auto); pip install 'microexp-edge[ray]'")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--flow", default="farneback")


def run(args) -> int:
    from microexp.edge.batch import DONE, expand_inputs, run_batch
    inputs = expand_inputs(args.inputs)
    if args.workers < 1:
        print(f"microexp batch: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    print(f"microexp batch: {len(inputs)} inputs into {args.out}", file=sys.stderr)

    def done(uri, entry):
        print(f"{entry['state']}: {uri}" + (f" ({entry['error']})" if entry.get("error") else ""), file=sys.stderr)

    manifest = run_batch(inputs, Path(args.out), PipelineConfig(flow=args.flow), args.workers, args.format, done,
                         ray_address=args.ray)
    states = [manifest[u]["state"] for u in inputs]
    print(json.dumps({"inputs": len(inputs), "done": states.count(DONE), "failed": len(states) - states.count(DONE),
                      "summary": str(Path(args.out) / "summary.csv")}))
    return 0 if all(s == DONE for s in states) else 1
