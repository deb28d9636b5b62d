"""`microexp bench`: per-stage and end-to-end per-frame latency of the runtime beside a
seed-style baseline, in one run, on SAMM-like 2040x1088 frames with a ~400 px face.

Baseline per frame (what the seed project does, in OpenCV-Python): cv2.matchTemplate at full
resolution on the BGR search region + minMaxLoc, crop, cv2.resize to 224, Farneback 224 (seed
parameters), the NumPy/OpenCV HSV chain, and the AU model in PyTorch eager when torch is
installed (else the same ONNX model on ONNX Runtime). Ours: Pipeline.process with the native
kernels (pyramid matching, encode_hsv28 into the model's buffer) and ONNX Runtime, with the
reference flow (Farneback) and with a fast flow mode. Emotion model off in both, so that the
two do the same work. Detection happens once, on the reference frame, outside the timings.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

# In the checkout and in the installed package alike: <root>/training/faces next to edge/.
PHOTO = Path(__file__).resolve().parents[1] / "training" / "faces" / "astronaut.png"


def samm_like_frames(n: int, seed: int = 0):
    """2040x1088 BGR frames, a ~400 px face, sub-pixel drift, sensor noise and a mouth motion."""
    rng = np.random.default_rng(seed)
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        raise FileNotFoundError(f"bench: the sample photo {PHOTO} is missing")
    scale = 4.5  # the photo's face box is about 88 px wide
    face = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((1088, 2040, 3), 96, np.uint8)
    fx, fy = 220 * scale, 115 * scale  # face centre in the scaled photo
    x0, y0 = int(fx - 1020), int(fy - 544)
    src = face[max(0, y0):y0 + 1088, max(0, x0):x0 + 2040]
    canvas[:src.shape[0], :src.shape[1]] = src
    frames = []
    for i in range(n):
        m = np.float32([[1, 0, 0.4 * np.sin(i / 7)], [0, 1, 0.3 * np.cos(i / 9)]])
        f = cv2.warpAffine(canvas, m, (2040, 1088), borderMode=cv2.BORDER_REFLECT)
        noise = rng.normal(0, 2, f.shape)
        frames.append(np.clip(f + noise, 0, 255).astype(np.uint8))
    return frames


def _stats(samples):
    a = np.asarray(samples)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def run_ours(frames, flow: str, threads: int):
    from .pipeline import Pipeline, PipelineConfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = Pipeline(PipelineConfig(flow=flow, emotion_model=None, threads=threads, fps=200))
    first = pipe.process(frames[0])
    if not first.success:
        raise RuntimeError("bench: no face found in the synthetic frame")
    stages = {}
    for f in frames[1:]:
        r = pipe.process(f)
        for k, v in r.latency_ms.items():
            stages.setdefault(k, []).append(v)
    return {k: _stats(v) for k, v in stages.items()}, first.box


def run_baseline(frames, box, threads: int):
    from microexp.kernels import reference as seed

    from .backends import OnnxModel
    from .pipeline import MODELS
    cv2.setNumThreads(threads)
    x1, y1, x2, y2 = box
    template = frames[0][y1:y2, x1:x2].copy()
    ref = cv2.cvtColor(cv2.resize(template, (224, 224)), cv2.COLOR_BGR2GRAY)
    try:
        import torch

        from microexp.training.checkpoint import load_checkpoint
        torch.set_num_threads(threads)
        ckpt = Path(__file__).resolve().parents[1] / "training" / "checkpoints" / "au_edge.pt"
        model, _, _ = load_checkpoint(ckpt)
        model_name = "pytorch-eager"

        def infer(x):
            with torch.no_grad():
                return model(torch.from_numpy(x / 255.0).float()).numpy()
    except (ImportError, FileNotFoundError):
        ort_model = OnnxModel(MODELS / "au_edge.onnx", threads)
        model_name = "onnxruntime (torch not installed)"

        def infer(x):
            return ort_model.run(x)
    stages = {k: [] for k in ("align", "flow", "encode", "au_model", "total")}
    for f in frames[1:]:
        t0 = time.perf_counter()
        crop, box, _ = seed.crop_with_template(f, template, box)
        t1 = time.perf_counter()
        flow = cv2.calcOpticalFlowFarneback(ref, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), None,
                                            0.5, 3, 15, 3, 5, 1.2, 0)
        t2 = time.perf_counter()
        x = seed.hsv28(flow).transpose(2, 0, 1)[None].astype(np.float32)
        t3 = time.perf_counter()
        infer(x)
        t4 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            stages[k].append(v * 1e3)
    return {k: _stats(v) for k, v in stages.items()}, model_name


def run(frames_n: int, threads: int, fast_flow: str):
    frames = samm_like_frames(frames_n)
    ours, box = run_ours(frames, "farneback", threads)
    fast, _ = run_ours(frames, fast_flow, threads)
    base, model_name = run_baseline(frames, box, threads)
    return {"frames": frames_n - 1, "threads": threads, "cpu": platform.processor() or platform.machine(),
            "frame_size": [2040, 1088], "face_box": list(box), "baseline_model": model_name,
            "baseline": base, "ours_farneback": ours, f"ours_{fast_flow}": fast,
            "speedup_total_p50": base["total"]["p50"] / ours["total"]["p50"],
            f"speedup_total_p50_{fast_flow}": base["total"]["p50"] / fast["total"]["p50"]}


def print_table(report):
    cols = [k for k in report if k.startswith("ours_") or k == "baseline"]
    print(f"{report['frames']} frames of {report['frame_size'][0]}x{report['frame_size'][1]}, face "
          f"{report['face_box'][2] - report['face_box'][0]} px, {report['threads']} thread(s); "
          f"baseline model: {report['baseline_model']}")
    head = f"{'stage':10s}" + "".join(f"{c:>30s}" for c in cols)
    print(head + "\n" + "-" * len(head))
    print(f"{'':10s}" + "".join(f"{'p50 / p90 / p99 ms':>30s}" for _ in cols))
    for stage in ("align", "flow", "motion", "encode", "au_model", "total"):
        cells = []
        for c in cols:
            s = report[c].get(stage)
            cells.append(f"{s['p50']:8.2f} /{s['p90']:7.2f} /{s['p99']:7.2f}" if s else "")
        print(f"{stage:10s}" + "".join(f"{x:>30s}" for x in cells))
    fps = "".join(f"{1e3 / report[c]['total']['p50']:30.1f}" for c in cols)
    print(f"{'FPS (p50)':10s}" + fps)
    for k in report:
        if k.startswith("speedup"):
            print(f"{k}: {report[k]:.1f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="microexp bench", description="per-frame latency, ours beside the seed-style baseline")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fast-flow", default="dis-medium", help="the fast flow mode shown beside Farneback")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.frames < 3:
        p.error("--frames must be at least 3")
    report = run(args.frames, args.threads, args.fast_flow)
    print(json.dumps(report, indent=1)) if args.json else print_table(report)
    return 0
