"""The `microexp` command: one module per subcommand, registered in COMMANDS below.

Each command module has `add_arguments(parser)` and `run(args) -> int` (its exit status) and
imports what it works with inside `run`, so that `microexp --help` and the runtime's commands
stay quick and work without the training extra. A command whose extra is not installed is
still listed, and says which install line it needs. Library code raises typed errors; this
module turns them into a one-line message and an exit status:
  2  bad input (a missing or unreadable file, a value out of range, a model that is not ours)
  1  a live source that went away (the rows so far are kept)
  130 Ctrl-C
Set MICROEXP_TRACEBACK=1 to see the traceback instead."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

TRAIN_EXTRA = "pip install torch==2.13.0 && pip install 'microexp-edge[train]'"
SERVE_EXTRA = "pip install 'microexp-edge[serve]'"


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # microexp.cli.<module>
    help: str
    needs: Tuple[str, ...] = ()  # importable packages the command's work needs
    install: str = ""  # the line that installs them


COMMANDS = (
    Command("run", "run", "analyse a video, folder of frames or camera"),
    Command("batch", "batch", "many videos or frame folders, each into its own folder, on a process pool or Ray, resumable"),
    Command("bench", "bench", "per-frame latency beside the seed-style baseline"),
    Command("serve", "serve", "the live analysis as a web page (kiosks), video uploads and a JSON API",
            ("starlette", "uvicorn", "websockets"), SERVE_EXTRA),
    Command("cameras", "cameras", "capture devices with their sizes and rates, and how GStreamer sources open"),
    Command("train", "train", "train and evaluate models", ("torch",), TRAIN_EXTRA),
    Command("export", "export", "checkpoint -> ONNX / INT8 / TensorRT", ("torch",), TRAIN_EXTRA),
    Command("synth", "synth", "synthetic micro-expression clips with ground truth"),
    Command("spot-eval", "spot_eval", "spotting score (MEGC interval metric) on a synthetic set"),
    Command("au-eval", "au_eval", "AU decisions at the planted apexes of a synthetic set"),
    Command("flow-report", "flow_report", "end-point error of each flow mode on a synthetic set"),
    Command("flow-shift", "flow_shift", "how far a model's outputs move between two flows on a synthetic set"),
    Command("fit-gate", "fit_gate", "fit the action gate on generated calibration sets"),
    Command("eval-outputs", "eval_outputs", "what the outputs say on still faces, talking video and generated clips"),
)


def _version() -> str:
    from microexp import __version__
    return __version__


def missing(command: Command) -> Optional[str]:
    """The first package the command needs that is not installed, else None."""
    return next((n for n in command.needs if importlib.util.find_spec(n) is None), None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microexp", description="facial micro-expression analysis at the edge")
    parser.add_argument("--version", action="version", version=f"microexp-edge {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        absent = missing(command)
        # A stand-in where the command's packages are missing: main() takes any arguments for it
        # and says what to install; its help says so too.
        description = command.help if not absent else \
            f"{command.help}. Needs {absent}, which is not installed: {command.install}"
        p = sub.add_parser(command.name, help=command.help, description=description)
        if not absent:
            importlib.import_module(f"microexp.cli.{command.module}").add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def _input_errors() -> tuple:
    from microexp.edge.distributed import RayUnavailable
    from microexp.edge.trt import TensorRTUnavailable
    return ValueError, OSError, TensorRTUnavailable, RayUnavailable


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command: Command = args._command
    absent = missing(command)
    if unknown and not absent:
        parser.parse_args(argv)  # exits with argparse's message about the unknown arguments
    if absent:
        print(f"microexp {command.name}: needs {absent}, which is not installed; {command.install}",
              file=sys.stderr)
        return 2
    raw = list(sys.argv[1:] if argv is None else argv)
    args.argv = raw[raw.index(command.name) + 1:]  # the command's own arguments, as typed
    from microexp.edge.sources import SourceLost
    try:
        return importlib.import_module(f"microexp.cli.{command.module}").run(args)
    except KeyboardInterrupt as err:
        how = "terminated (SIGTERM)" if type(err).__name__ == "Terminated" else "interrupted"
        print(f"\nmicroexp {command.name}: {how}", file=sys.stderr)
        return 130
    except SourceLost as err:
        if os.environ.get("MICROEXP_TRACEBACK"):
            raise
        print(f"microexp {command.name}: {err}", file=sys.stderr)
        return 1
    except _input_errors() as err:
        if os.environ.get("MICROEXP_TRACEBACK"):
            raise
        print(f"microexp {command.name}: {err}", file=sys.stderr)
        return 2
