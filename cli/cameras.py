"""`microexp cameras`: the capture devices of this machine with their sizes and rates, and the
ways it has to open GStreamer sources (csi://, pipelines)."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from microexp.edge.cameras import list_cameras
    from microexp.edge.capture import backends
    cameras, ways = list_cameras(), backends()
    if args.json:
        print(json.dumps({"cameras": [{"uri": c.uri(), "name": c.name, "driver": c.driver,
                                       "formats": {k: [str(m) for m in v] for k, v in c.formats.items()}}
                                      for c in cameras], "gstreamer": ways}, indent=1))
        return 0
    if not cameras:
        print("no V4L2 capture devices (/dev/video*) that can be opened")
    for c in cameras:
        print(f"{c.uri()}  {c.name} ({c.driver})")
        for fourcc, modes in c.formats.items():
            print(f"  {fourcc}: {', '.join(str(m) for m in modes) or 'no sizes listed'}")
    have = [name for name, ok in ways.items() if ok]
    print("GStreamer sources (csi://N, pipelines) open through: "
          + (", ".join(have) if have else "nothing: pip's OpenCV has no GStreamer; see docs/jetson.md in microexp-edge's source"))
    print("choose a mode with: microexp run v4l2:///dev/videoN --size WxH --rate FPS")
    return 0
