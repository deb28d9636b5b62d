"""Our kernels' outputs on fixed inputs, for comparing two CPUs (.ci/aarch64 runs it on this
machine and in an emulated arm64 root, then `--compare`): the kernels are the reference across
CPUs, so outputs must be byte-identical, except encode_hsv28, whose HSV->BGR step follows the
width of OpenCV's vector path on each CPU (docs/kernels.md), and is compared within 1 level.

    python -m tests.kernels.cross_cpu --write out.npz
    python -m tests.kernels.cross_cpu --compare a.npz b.npz
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

# Kernels whose arithmetic may follow the CPU (the grey levels they may differ by).
# Largest difference allowed; 0: byte-identical. region_flow's angle and magnitude come from libm's
# atan2 and hypot in double, which may round differently across CPUs before the float32 cast.
CPU_DEPENDENT = {"encode_hsv28": 1, "region_flow": 1e-6}


def outputs() -> dict:
    from microexp import kernels as K

    from .corpus import flow_field, texture
    rng = np.random.default_rng(2026)
    out = {}
    for channels in (1, 3, 4):
        img = texture(rng, 97, 131, channels, "face_like" if channels < 4 else "random")
        out[f"resize_linear_{channels}"] = K.resize_linear(img, (224, 224))
        out[f"resize_linear_shrink_{channels}"] = K.resize_linear(img, (45, 33))
        out[f"resize_area_{channels}"] = K.resize_area(img, (28, 28))
        tpl = np.ascontiguousarray(img[20:60, 30:80])
        out[f"match_exact_{channels}"] = np.array(K.match_template(img, tpl, "exact", subpixel=True))
        out[f"match_pyramid_{channels}"] = np.array(K.TemplateMatcher(tpl).match(img, subpixel=True))
    gray = texture(rng, 160, 160, 1, "face_like")
    moved = np.roll(gray, (1, 2), axis=(0, 1))
    out["farneback"] = K.FarnebackFlow()(gray, moved)
    for i, flow in enumerate(flow_field(rng, 224, 224, kind) for kind in ("smooth", "large", "subpixel")):
        out[f"encode_uvs28_{i}"] = K.encode_uvs28(flow)
        out[f"encode_hsv28_{i}"] = K.encode_hsv28(flow)
        out[f"region_motion_{i}"] = np.array(list(K.region_motion(flow, nonrigid_grid=8).values()))
        boxes = np.array([[37, 44, 67, 64], [102, 52, 122, 72], [54, 80, 90, 100], [92, 189, 132, 213]], np.int32)
        out[f"region_flow_{i}"] = K.region_flow(flow, boxes)
    return out


def compare(a: dict, b: dict) -> list:
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only on one side")
            continue
        x, y = a[name], b[name]
        slack = next((v for k, v in CPU_DEPENDENT.items() if name.startswith(k)), 0)
        if x.shape != y.shape:
            problems.append(f"{name}: shapes {x.shape} and {y.shape}")
        elif slack == 0 and x.tobytes() != y.tobytes():
            problems.append(f"{name}: not byte-identical (max difference {np.abs(x.astype(float) - y).max():g})")
        elif slack and np.abs(x.astype(float) - y).max() > slack:
            problems.append(f"{name}: differs by {np.abs(x.astype(float) - y).max():g} (> {slack})")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="kernel outputs for comparing CPUs")
    ap.add_argument("--write", help="write this machine's outputs here (.npz)")
    ap.add_argument("--compare", nargs=2, metavar="NPZ")
    args = ap.parse_args(argv)
    if args.write:
        np.savez(args.write, **outputs())
        return 0
    if args.compare:
        a, b = (dict(np.load(p)) for p in args.compare)
        problems = compare(a, b)
        for line in problems:
            print(line)
        identical = sum(k in b and a[k].tobytes() == b[k].tobytes() for k in a)
        print(f"{len(a)} outputs compared, {identical} byte-identical: "
              f"{'all as expected' if not problems else f'{len(problems)} differ'}")
        return 1 if problems else 0
    ap.error("--write or --compare")


if __name__ == "__main__":
    sys.exit(main())
