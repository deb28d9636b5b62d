"""The `microexp` command. Subcommands whose code needs torch import it only when called, so
the runtime's own commands work on an install without torch."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="microexp", description="facial micro-expression analysis at the edge")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train and evaluate models (needs the [train] extra)", add_help=False)
    sub.add_parser("export", help="checkpoint -> ONNX / INT8 / TensorRT (needs the [train] extra)", add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "train":
        try:
            from microexp.training import cli as training_cli
        except ImportError as err:
            print(f"microexp train: needs the training extra ({err}); "
                  "pip install torch==2.13.0 && pip install 'microexp-edge[train]'", file=sys.stderr)
            return 2
        parser = training_cli.build_parser(argparse.ArgumentParser(prog="microexp train"))
        args = parser.parse_args(argv[1:])
        return training_cli.run(args, argv[1:])
    if argv[0] == "export":
        try:
            from microexp.export import cli as export_cli
        except ImportError as err:
            print(f"microexp export: needs the training extra ({err})", file=sys.stderr)
            return 2
        return export_cli.run(export_cli.build_parser(argparse.ArgumentParser(prog="microexp export")).parse_args(argv[1:]))
    parser.parse_args(argv)  # prints the usage error for an unknown command
    return 2


if __name__ == "__main__":
    sys.exit(main())
