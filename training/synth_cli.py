"""`microexp synth`, `microexp spot-eval`, `microexp au-eval`, `microexp flow-report`: generate
sets, score the runtime."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

PHOTOS = Path(__file__).parent / "faces"


def load_photos(paths, landmarks_json=None):
    """[(photo, landmarks)] with landmarks from our MTCNN unless given."""
    from microexp.edge.detect import FaceDetector
    given = json.loads(Path(landmarks_json).read_text()) if landmarks_json else {}
    detector = None
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is None:
            raise ValueError(f"synth: cannot read photo {p}")
        if str(p) in given or Path(p).name in given:
            lm = np.asarray(given.get(str(p), given.get(Path(p).name)), np.float64)
        else:
            detector = detector or FaceDetector()
            faces = detector.detect(img)
            if not faces:
                raise ValueError(f"synth: no face found in {p}; pass its landmarks with --landmarks")
            lm = faces[0].landmarks
        out.append((img, lm))
    return out


def main(command: str, argv=None) -> int:
    if command == "synth":
        from .synth import generate
        p = argparse.ArgumentParser(prog="microexp synth", description="synthetic micro-expression clips in the SAMM layout")
        p.add_argument("--out", required=True)
        p.add_argument("--photos", nargs="*", help="face photos, one subject each (default: the shipped public-domain photo)")
        p.add_argument("--landmarks", help="JSON {photo: [[x, y] x 5]} instead of detecting them")
        p.add_argument("--clips", type=int, default=2, help="clips per photo")
        p.add_argument("--frames", type=int, default=200)
        p.add_argument("--fps", type=float, default=200.0)
        p.add_argument("--events", type=int, default=2, help="events per clip")
        p.add_argument("--size", help="WxH of the frames (default: the photo's size)")
        p.add_argument("--macro", action="store_true", help="macro-expressions (0.6-2 s) instead of micro")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--video", action="store_true", help="also write each clip as SUBJECT/CLIP.mp4")
        a = p.parse_args(argv)
        photos = a.photos or sorted(str(x) for x in PHOTOS.glob("*.png"))
        size = tuple(int(v) for v in a.size.lower().split("x")) if a.size else None
        root = generate(load_photos(photos, a.landmarks), Path(a.out), a.clips, a.frames, a.fps, a.events,
                        a.seed, size, micro=not a.macro, video=a.video)
        print(json.dumps({"out": str(root), "sheet": str(root / "samm.csv"), "subjects": len(photos),
                          "clips": len(photos) * a.clips}))
        return 0
    from .synth_eval import au_eval, flow_report, spot_eval
    p = argparse.ArgumentParser(prog=f"microexp {command}")
    p.add_argument("set", help="a folder written by `microexp synth`")
    if command == "spot-eval":
        p.add_argument("--flow", default="farneback")
        p.add_argument("--reference", default="fixed")
        p.add_argument("--fps", type=float, default=200.0)
        p.add_argument("--spot-score", default="motion_local",
                       choices=("motion", "motion_upper", "motion_lower", "motion_local", "learned"),
                       help="motion, motion_upper, motion_lower, motion_local, or learned (the spotter model's "
                            "1 - p(none))")
        p.add_argument("--spotter-model", help="streaming spotting ONNX (default with --spot-score learned: the "
                                               "shipped learned spotter)")
        p.add_argument("--spot-k", type=float, help="the interval detector's k (default: the runtime's)")
        p.add_argument("--spot-threshold", type=float,
                       help="fixed detector threshold (default: the spotter model's for 'learned')")
        a = p.parse_args(argv)
        config = {"spot_score": a.spot_score}
        if a.spot_score == "learned" or a.spotter_model:
            from microexp.edge.pipeline import DEFAULT_SPOTTER
            config["spotter_model"] = a.spotter_model or str(DEFAULT_SPOTTER)
        if a.spot_k is not None:
            config["spot_k"] = a.spot_k
        if a.spot_threshold is not None:
            config["spot_threshold"] = a.spot_threshold
        report = spot_eval(a.set, a.flow, a.fps, a.reference, **config)
        print(json.dumps({k: v for k, v in report.items() if k != "clips"}))
        return 0
    if command == "au-eval":
        p.add_argument("--au-model", help="AU ONNX model (default: the shipped one)")
        p.add_argument("--flow", default="farneback")
        p.add_argument("--fps", type=float, default=200.0)
        a = p.parse_args(argv)
        print(json.dumps(au_eval(a.set, a.au_model, a.flow, a.fps)))
        return 0
    a = p.parse_args(argv)
    print(json.dumps(flow_report(a.set)))
    return 0
