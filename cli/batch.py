"""`microexp batch INPUT... --out DIR`: many videos or frame folders, each analysed as `microexp
run` would into its own folder, resumable, on a process pool or Ray (microexp.edge.batch)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from microexp.cli.run import add_spotter_arguments, spotter_overrides
from microexp.edge.config import PipelineConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, frame folders, glob patterns ('data/**/*.mp4'), @list.txt, or a data set's root")
    p.add_argument("--out", required=True, help="output folder: a folder per input, manifest.json, summary.csv")
    p.add_argument("--workers", type=int, default=1,
                   help="inputs analysed at once (processes, or a local Ray instance's CPUs; default 1)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the inputs as Ray tasks: on a local Ray instance started for the run, or on the "
                        "cluster at ADDRESS (host:6379 or auto; ray://host:10001 also needs pip install 'ray[client]'); "
                        "pip install 'microexp-edge[ray]'")
    p.add_argument("--split", type=float, metavar="SECONDS",
                   help="run inputs longer than this as time ranges on several workers, merged into exactly one "
                        "sequential run's rows and events (what it saves depends on stretches without a face)")
    p.add_argument("--overlap", type=float, metavar="SECONDS",
                   help="how much earlier each range starts (default: forget_s + idle_after_ms + "
                        "idle_max_interval_ms, 31.5 s, the least in which a range can take over)")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--flow", default="farneback")
    add_spotter_arguments(p)


def run(args) -> int:
    from microexp.edge.batch import DONE, expand_inputs, run_batch
    from microexp.edge.ranges import least_overlap_s
    for name, value, least in (("--workers", args.workers, 1), ("--split", args.split, None),
                               ("--overlap", args.overlap, 0)):
        if value is not None and (value <= 0 if least is None else value < least):
            print(f"microexp batch: {name} must be {'positive' if least is None else f'at least {least}'}, got {value}",
                  file=sys.stderr)
            return 2
    if args.overlap is not None and args.split is None:
        print("microexp batch: --overlap goes with --split", file=sys.stderr)
        return 2
    config = PipelineConfig(flow=args.flow, **spotter_overrides(args))
    if args.overlap is not None and args.overlap < least_overlap_s(config):
        print(f"microexp batch: --overlap {args.overlap} s is shorter than {least_overlap_s(config)} s: no range can "
              "take over from the one before, so each split input is computed again in one piece", file=sys.stderr)
    inputs = expand_inputs(args.inputs)
    print(f"microexp batch: {len(inputs)} inputs into {args.out}", file=sys.stderr)

    def done(uri, entry):
        print(f"{entry['state']}: {uri}" + (f" ({entry['error']})" if entry.get("error") else ""), file=sys.stderr)

    manifest = run_batch(inputs, Path(args.out), config, args.workers, args.format, done,
                         ray_address=args.ray, split_s=args.split, overlap_s=args.overlap)
    states = [manifest[u]["state"] for u in inputs]
    print(json.dumps({"inputs": len(inputs), "done": states.count(DONE), "failed": len(states) - states.count(DONE),
                      "summary": str(Path(args.out) / "summary.csv")}))
    return 0 if all(s == DONE for s in states) else 1
