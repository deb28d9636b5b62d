"""`microexp synth --out DIR`: synthetic micro-expression clips in the SAMM layout, with ground
truth (microexp.training.synth)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--photos", nargs="*", help="face photos, one subject each (default: the shipped public-domain photo)")
    p.add_argument("--landmarks", help="JSON {photo: [[x, y] x 5]} instead of detecting them")
    p.add_argument("--clips", type=int, default=2, help="clips per photo")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--fps", type=float, default=200.0)
    p.add_argument("--events", type=int, default=2, help="events per clip")
    p.add_argument("--size", help="WxH of the frames (default: the photo's size)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--macro", action="store_true", help="macro-expressions (0.6-2 s) instead of micro")
    kind.add_argument("--mixed", action="store_true",
                      help="long-video style: micro- (150-500 ms) and larger macro-expressions (0.5-4 s), 1-3 s apart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--video", action="store_true", help="also write each clip as SUBJECT/CLIP.mp4")
    p.add_argument("--no-blinks", action="store_true", help="no blinks (with --events 0: still faces)")


def parse_size(text):
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be WxH in pixels, e.g. 640x480, got {text!r}") from None
    return w, h


def run(args) -> int:
    from microexp.training.synth import PHOTOS, generate, load_photos
    photos = args.photos or sorted(str(x) for x in PHOTOS.glob("*.png"))
    root = generate(load_photos(photos, args.landmarks), Path(args.out), args.clips, args.frames, args.fps,
                    args.events, args.seed, parse_size(args.size), video=args.video,
                    kind="mixed" if args.mixed else "macro" if args.macro else "micro",
                    blinks=not args.no_blinks)
    print(json.dumps({"out": str(root), "sheet": str(root / "samm.csv"), "subjects": len(photos),
                      "clips": len(photos) * args.clips}))
    return 0
