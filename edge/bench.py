"""`microexp bench`: per-stage and end-to-end per-frame latency of the runtime beside a
seed-style baseline, in one run, on SAMM-like 2040x1088 frames with a ~400 px face.

Baseline per frame (what the seed project does, in OpenCV-Python): cv2.matchTemplate at full
resolution on the BGR search region + minMaxLoc, crop, cv2.resize to 224, Farneback 224 (seed
parameters), the NumPy/OpenCV HSV chain, and the seed's AU model (an HTNet of 0.58M
parameters) in PyTorch eager when the CLI finds torch installed (`baseline_model`; else the
shipped AU model on ONNX Runtime). Ours: Pipeline.process with the native
kernels (pyramid matching, encode_hsv28 into the model's buffer) and ONNX Runtime, in
reference mode (Farneback with the seed parameters, native kernel, 224 px crop) and in a fast
mode (by default the native Farneback fast preset on a 152 px crop, tracked at half
resolution). Emotion model off in all
columns, so that they do the same work. Detection happens once, on the reference frame,
outside the timings.

Fidelity: the frames carry a planted facial motion (mouth corners up and out, brows up);
on the frames where it is at least half its peak, the Pearson correlation of each column's
28x28 HSV map with reference mode's is printed (median and 10th percentile over frames).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import cv2
import numpy as np

from .config import MODELS

# In the checkout and in the installed package alike: <root>/training/faces next to edge/.
PHOTO = Path(__file__).resolve().parents[1] / "training" / "faces" / "astronaut.png"


def planted_profile(n: int) -> np.ndarray:
    """Strength 0..1 of the planted motion per frame: a raised cosine over the middle 40%."""
    t = np.arange(n, dtype=np.float64)
    start, stop = 0.3 * n, 0.7 * n
    inside = (t >= start) & (t <= stop)
    return np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * (t - start) / max(stop - start, 1)), 0.0)


def samm_like_frames(n: int, seed: int = 0):
    """2040x1088 BGR frames, a ~400 px face, sub-pixel drift, sensor noise, and a planted
    facial motion (planted_profile): mouth corners pulled up and out, brows raised, 3 px at peak."""
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
    # Displacement field of the planted motion at full strength, on the face region only
    # (points on the canvas: mouth corners and brows, found by the detector on this canvas).
    rx1, ry1, rx2, ry2 = 760, 260, 1260, 800
    yy, xx = np.mgrid[ry1:ry2, rx1:rx2].astype(np.float32)
    du, dv = np.zeros_like(xx), np.zeros_like(yy)
    for cx, cy, ux, uy in ((909, 630, -2.0, -2.2), (1106, 637, 2.0, -2.2), (918, 400, 0, -3.0), (1111, 410, 0, -3.0)):
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 30.0 ** 2))
        du += ux * g
        dv += uy * g
    strength = planted_profile(n)
    frames = []
    for i in range(n):
        base = canvas
        if strength[i] > 0:
            base = canvas.copy()
            a = np.float32(strength[i])
            base[ry1:ry2, rx1:rx2] = cv2.remap(canvas, xx - a * du, yy - a * dv, cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_REFLECT)
        m = np.float32([[1, 0, 0.4 * np.sin(i / 7)], [0, 1, 0.3 * np.cos(i / 9)]])
        f = cv2.warpAffine(base, m, (2040, 1088), borderMode=cv2.BORDER_REFLECT)
        noise = rng.normal(0, 2, f.shape)
        frames.append(np.clip(f + noise, 0, 255).astype(np.uint8))
    return frames


def _stats(samples):
    a = np.asarray(samples)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def run_ours(frames, flow: str, threads: int, crop: int = 224, track_level: int = 0,
             backend: str = "auto", trt_precision: str = "fp32"):
    """Per-stage latency statistics, the first face box, every frame's 28x28 HSV map, every
    frame's tracked box, and where the AU model ran."""
    from .pipeline import Pipeline, PipelineConfig
    pipe = Pipeline(PipelineConfig(flow=flow, crop_size=crop, emotion_model=None, threads=threads, fps=200,
                                   track_level=track_level, backend=backend, trt_precision=trt_precision))
    first = pipe.process(frames[0])
    if not first.success:
        raise RuntimeError("bench: no face found in the synthetic frame")
    stages, maps, boxes = {}, [], []
    for f in frames[1:]:
        r = pipe.process(f)
        maps.append(pipe._hsv.copy())
        boxes.append(r.box)
        for k, v in r.latency_ms.items():
            stages.setdefault(k, []).append(v)
    ran_on = ", ".join(pipe.au_model.providers)
    return {k: _stats(v) for k, v in stages.items()}, first.box, np.stack(maps), boxes, ran_on


def fidelity(maps, reference, strength):
    """Pearson r of each frame's map with the reference's, on frames of clear planted motion."""
    rs = []
    for a, b, s in zip(maps, reference, strength):
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        if s >= 0.5 and a.std() > 0 and b.std() > 0:
            rs.append(float(np.corrcoef(a, b)[0, 1]))
    if not rs:
        return {"frames": 0}
    return {"frames": len(rs), "median_r": float(np.median(rs)), "p10_r": float(np.percentile(rs, 10)),
            "min_r": float(min(rs))}


def onnxruntime_baseline(threads: int):
    """(name, infer) of the baseline's AU model when no PyTorch one is given: the shipped AU
    model on ONNX Runtime."""
    from .backends import open_model
    model = open_model(MODELS / "au_edge.onnx", "ort-cpu", threads, batch=None)
    return "onnxruntime (torch not installed)", model.run


def run_baseline(frames, box, threads: int, baseline_model=None):
    """`baseline_model`: (name, infer) where infer takes a float32 (1, 3, 28, 28) batch of
    values 0..255; default onnxruntime_baseline."""
    from microexp.kernels import reference as seed
    cv2.setNumThreads(threads)
    x1, y1, x2, y2 = box
    template = frames[0][y1:y2, x1:x2].copy()
    ref = cv2.cvtColor(cv2.resize(template, (224, 224)), cv2.COLOR_BGR2GRAY)
    model_name, infer = baseline_model or onnxruntime_baseline(threads)
    stages = {k: [] for k in ("align", "flow", "encode", "au_model", "total")}
    maps = []
    for f in frames[1:]:
        t0 = time.perf_counter()
        crop, box, _ = seed.crop_with_template(f, template, box)
        t1 = time.perf_counter()
        flow = cv2.calcOpticalFlowFarneback(ref, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), None,
                                            0.5, 3, 15, 3, 5, 1.2, 0)
        t2 = time.perf_counter()
        hsv = seed.hsv28(flow)
        x = hsv.transpose(2, 0, 1)[None].astype(np.float32)
        t3 = time.perf_counter()
        maps.append(hsv)
        infer(x)
        t4 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            stages[k].append(v * 1e3)
    return {k: _stats(v) for k, v in stages.items()}, model_name, np.stack(maps)


def nonrigid_cost(crop: int, repeats: int = 400) -> dict:
    """What the action gate's input adds to the motion stage: region_motion on a crop-sized flow
    with and without the affine residual on 8 x 8 blocks, interleaved, p50 of each (ms)."""
    from microexp import kernels
    rng = np.random.default_rng(0)
    flow = cv2.GaussianBlur(rng.normal(0, 1, (crop, crop, 2)).astype(np.float32), (0, 0), 5)
    plain, gated = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        kernels.region_motion(flow, nonfinite="zero")
        t1 = time.perf_counter()
        kernels.region_motion(flow, nonfinite="zero", nonrigid_grid=8)
        t2 = time.perf_counter()
        plain.append((t1 - t0) * 1e3)
        gated.append((t2 - t1) * 1e3)
    return {"region_motion_p50_ms": float(np.median(plain)), "with_nonrigid_p50_ms": float(np.median(gated)),
            "added_p50_ms": float(np.median(gated) - np.median(plain))}


def run(frames_n: int, threads: int, fast_flow: str, fast_crop: int, fast_track_level: int = 0,
        backend: str = "auto", trt_precision: str = "fp32", baseline_model=None):
    frames = samm_like_frames(frames_n)
    strength = planted_profile(frames_n)[1:]
    ours, box, ref_maps, ref_boxes, ran_on = run_ours(frames, "farneback", threads, backend=backend,
                                                      trt_precision=trt_precision)
    fast, _, fast_maps, fast_boxes, _ = run_ours(frames, fast_flow, threads, fast_crop, fast_track_level,
                                                 backend, trt_precision)
    base, model_name, base_maps = run_baseline(frames, box, threads, baseline_model)
    fast_name = f"ours_{fast_flow}@{fast_crop}" + (f"/track{fast_track_level}" if fast_track_level else "")
    return {"frames": frames_n - 1, "threads": threads, "cpu": platform.processor() or platform.machine(),
            "frame_size": [2040, 1088], "face_box": list(box), "baseline_model": model_name,
            "backend": backend, "au_model_ran_on": ran_on,
            "baseline": base, "ours_reference": ours, fast_name: fast,
            "speedup_total_p50_reference": base["total"]["p50"] / ours["total"]["p50"],
            "speedup_total_p50_fast": base["total"]["p50"] / fast["total"]["p50"],
            "fidelity_vs_reference": {"baseline": fidelity(base_maps, ref_maps, strength),
                                      fast_name: fidelity(fast_maps, ref_maps, strength)},
            # How often the fast column's tracking placed the face where reference mode did.
            "same_face_box_as_reference": {fast_name: sum(a == b for a, b in zip(fast_boxes, ref_boxes)),
                                           "frames": len(ref_boxes)},
            # The action gate's cost: its own stage ('action' rows above) and what its input adds
            # to the motion stage, measured apart on crop-sized flows.
            "action_gate_input_cost": {"reference": nonrigid_cost(224), fast_name: nonrigid_cost(fast_crop)}}


def print_table(report):
    cols = [k for k in report if k.startswith("ours_") or k == "baseline"]
    print(f"{report['frames']} frames of {report['frame_size'][0]}x{report['frame_size'][1]}, face "
          f"{report['face_box'][2] - report['face_box'][0]} px, {report['threads']} thread(s); "
          f"baseline model: {report['baseline_model']}; our AU model on {report['au_model_ran_on']} "
          f"(--backend {report['backend']})")
    w = max(30, max(len(c) for c in cols) + 2)  # column width: the longest name and a gap
    head = f"{'stage':10s}" + "".join(f"{c:>{w}s}" for c in cols)
    print(head + "\n" + "-" * len(head))
    print(f"{'':10s}" + "".join(f"{'p50 / p90 / p99 ms':>{w}s}" for _ in cols))
    for stage in ("align", "flow", "motion", "action", "encode", "au_model", "total"):
        cells = []
        for c in cols:
            s = report[c].get(stage)
            cells.append(f"{s['p50']:8.2f} /{s['p90']:7.2f} /{s['p99']:7.2f}" if s else "")
        print(f"{stage:10s}" + "".join(f"{x:>{w}s}" for x in cells))
    fps = "".join(f"{1e3 / report[c]['total']['p50']:{w}.1f}" for c in cols)
    print(f"{'FPS (p50)':10s}" + fps)
    for k in report:
        if k.startswith("speedup"):
            print(f"{k}: {report[k]:.1f}x")
    for name, fid in report["fidelity_vs_reference"].items():
        if fid["frames"]:
            print(f"28x28 HSV maps of {name} vs reference mode, {fid['frames']} frames of planted motion: "
                  f"Pearson r median {fid['median_r']:.4f}, p10 {fid['p10_r']:.4f}, min {fid['min_r']:.4f}")
    same = dict(report["same_face_box_as_reference"])
    total = same.pop("frames")
    for name, count in same.items():
        print(f"face box of {name} equal to reference mode's on {count} of {total} frames")
    for name, cost in report.get("action_gate_input_cost", {}).items():
        print(f"action gate input ({name} crop): region_motion {cost['region_motion_p50_ms']:.3f} ms, with the "
              f"non-rigid score {cost['with_nonrigid_p50_ms']:.3f} ms (+{cost['added_p50_ms']:.3f})")
