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

Idle and acquisition (`idle_and_acquisition`): per-frame cost with nobody in view (a static
scene with sensor noise, a busy one with an object crossing) against the old behaviour
(full-frame detection on every frame), and the delay until a person stepping in is tracked.

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


def _background(face_canvas: np.ndarray) -> np.ndarray:
    """The SAMM-like canvas without its person: the face region filled with the wall colour."""
    empty = face_canvas.copy()
    empty[:, 600:1500] = 96
    return empty


def _timed_stream(pipe, frames, fps: float):
    """Per-frame latency (ms) and results of a stream timestamped at `fps`."""
    times, results = [], []
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        results.append(pipe.process(f, i, i / fps))
        times.append((time.perf_counter() - t0) * 1e3)
    return times, results


def idle_and_acquisition(threads: int, fps: float = 30.0, seconds: float = 6.0) -> dict:
    """What a device costs while nobody is in view, and how soon a person who steps in is tracked,
    on 2040x1088 frames at `fps`: a static scene with sensor noise, a busy scene (a bright object
    crossing, no face), and the old behaviour (full-frame detection on every frame) beside them."""
    from .pipeline import Pipeline, PipelineConfig
    rng = np.random.default_rng(1)
    with_face = samm_like_frames(1)[0]
    empty = _background(with_face)
    n = int(seconds * fps)

    def noisy(img):
        return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)

    def static():
        return (noisy(empty) for _ in range(n))

    def busy():
        for i in range(n):
            f = empty.copy()
            x = int(100 + 1800 * i / n)
            f[400:700, x:x + 120] = 230  # something moving through the picture that is not a face
            yield noisy(f)

    def config(**kw):
        return PipelineConfig(emotion_model=None, threads=threads, fps=fps, **kw)
    old = dict(idle_min_face=12, idle_interval_ms=0, idle_max_interval_ms=0)
    report = {"fps": fps, "frames": n}
    for name, frames, kw in (("idle_static", static, {}), ("idle_busy", busy, {}),
                             ("idle_static_full_detection_every_frame", static, old)):
        pipe = Pipeline(config(**kw))
        times, results = _timed_stream(pipe, frames(), fps)
        # The first second holds the first full look and the looks on every frame that follow a
        # face's absence for idle_after_ms; after it, the steady idle state.
        steady = times[int(fps):]
        report[name] = {**_stats(times), "mean_after_first_second": float(np.mean(steady)),
                        "detections": sum("detect" in r.latency_ms for r in results)}
    # Acquisition: the person steps into view at several moments just after a look that found no
    # one (the worst case: the next look waits idle_interval_ms), and stays.
    pipe = Pipeline(config())
    _, results = _timed_stream(pipe, (noisy(empty) for _ in range(int(2 * fps))), fps)
    last_look = max(r.frame for r in results if "detect" in r.latency_ms)
    delays, looks = [], []
    for late in range(1, int(round(0.25 * fps)) + 1):
        pipe = Pipeline(config())
        arrive = last_look + late
        frames = (noisy(empty) if i < arrive else noisy(with_face) for i in range(arrive + int(fps // 2)))
        _, results = _timed_stream(pipe, frames, fps)
        first = next((r.frame for r in results if r.success), None)
        delays.append(None if first is None else (first - arrive) / fps * 1e3)
        if first is not None:
            looks.append(results[first].latency_ms.get("detect"))
    found = [d for d in delays if d is not None]
    report["acquisition"] = {"arrivals": len(delays), "tracked": len(found),
                             "delay_ms_max": max(found) if found else None,
                             "delay_ms_mean": float(np.mean(found)) if found else None,
                             "detect_ms_at_acquisition_p50": float(np.median(looks)) if looks else None}
    return report


def extra_face_cost(threads: int, frames_n: int = 40) -> dict:
    """Per-frame cost with three people in a 2040x1088 frame (faces of about 120 px) tracked
    one at a time (faces=1) and all three (faces=3), same frames; the cost of each extra face."""
    from .pipeline import Pipeline, PipelineConfig
    photo = cv2.imread(str(PHOTO))
    canvas = np.full((1088, 2040, 3), 96, np.uint8)
    person = cv2.resize(photo, (680, 680), interpolation=cv2.INTER_AREA)
    for k in range(3):
        canvas[200:880, 680 * k:680 * (k + 1)] = person
    rng = np.random.default_rng(2)
    frames = []
    for i in range(frames_n):
        m = np.float32([[1, 0, 0.4 * np.sin(i / 7)], [0, 1, 0.3 * np.cos(i / 9)]])
        f = cv2.warpAffine(canvas, m, (2040, 1088), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8))
    report = {}
    for faces in (1, 3):
        pipe = Pipeline(PipelineConfig(emotion_model=None, threads=threads, fps=30, faces=faces))
        pipe.process_faces(frames[0], 0, 0.0)  # the first look, outside the timing
        times, tracked = [], []
        for i, f in enumerate(frames[1:], 1):
            t0 = time.perf_counter()
            results = pipe.process_faces(f, i, i / 30)
            times.append((time.perf_counter() - t0) * 1e3)
            tracked.append(sum(r.success for r in results))
        report[f"faces_{faces}"] = {**_stats(times), "faces_tracked_median": float(np.median(tracked))}
    extra = report["faces_3"]["faces_tracked_median"] - report["faces_1"]["faces_tracked_median"]
    report["per_extra_face_ms_p50"] = ((report["faces_3"]["p50"] - report["faces_1"]["p50"]) / extra
                                       if extra > 0 else None)
    return report


def spotter_cost(frames, threads: int) -> dict:
    """Per-frame cost of each --spotter on the reference pipeline: its own stage (the learned
    spotters' model step; the graph spotter's includes its region features) and the frame's total."""
    from .config import SPOTTERS
    from .pipeline import Pipeline, PipelineConfig
    out = {}
    for name, choice in SPOTTERS.items():
        with Pipeline(PipelineConfig(emotion_model=None, threads=threads, fps=200, **choice)) as pipe:
            pipe.process(frames[0])
            stage, total = [], []
            for f in frames[1:]:
                lat = pipe.process(f).latency_ms
                stage.append(lat.get("spotter_model", 0.0))
                total.append(lat["total"])
        out[name] = {"spotter_p50_ms": float(np.percentile(stage, 50)), "spotter_p99_ms": float(np.percentile(stage, 99)),
                     "total_p50_ms": float(np.percentile(total, 50))}
    return out


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
            "action_gate_input_cost": {"reference": nonrigid_cost(224), fast_name: nonrigid_cost(fast_crop)},
            # Nobody in view, and a person stepping in (reference mode's pipeline, 30 fps).
            "idle": idle_and_acquisition(threads),
            # Three people in view: tracked one at a time and all together (30 fps timestamps).
            "several_faces": extra_face_cost(threads),
            # What each --spotter adds per frame (reference mode, the same frames).
            "spotters": spotter_cost(frames, threads)}


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
    idle = report.get("idle")
    if idle:
        print(f"nobody in view, {idle['frames']} frames at {idle['fps']:g} fps (ms per frame: mean after the first "
              "second, mean of all, p50, p99; looks for a face):")
        for name in ("idle_static", "idle_busy", "idle_static_full_detection_every_frame"):
            r = idle[name]
            print(f"  {name:40s} {r['mean_after_first_second']:7.2f} {r['mean']:7.2f} {r['p50']:6.2f} "
                  f"{r['p99']:6.2f}   {r['detections']}")
        a = idle["acquisition"]
        if a["delay_ms_max"] is None:
            print(f"  a person stepping into view: not tracked ({a['arrivals']} arrivals)")
        else:
            print(f"  a person stepping into view ({a['arrivals']} arrival times): tracked on {a['tracked']}, after "
                  f"{a['delay_ms_mean']:.0f} ms on average, {a['delay_ms_max']:.0f} ms at most (the look that finds "
                  f"them: {a['detect_ms_at_acquisition_p50']:.1f} ms)")
    several = report.get("several_faces")
    if several:
        one, three = several["faces_1"], several["faces_3"]
        extra = several["per_extra_face_ms_p50"]
        print(f"three people in view: faces=1 {one['p50']:.2f} ms per frame (p50), faces=3 {three['p50']:.2f} ms "
              f"({three['faces_tracked_median']:.0f} tracked); each extra face "
              + (f"{extra:.2f} ms" if extra is not None else "not measured (no extra face tracked)"))
    for name, cost in report.get("spotters", {}).items():
        print(f"--spotter {name:8s}: its stage {cost['spotter_p50_ms']:.3f} ms p50 ({cost['spotter_p99_ms']:.3f} p99), "
              f"frame total {cost['total_p50_ms']:.2f} ms p50")
    for name, cost in report.get("action_gate_input_cost", {}).items():
        print(f"action gate input ({name} crop): region_motion {cost['region_motion_p50_ms']:.3f} ms, with the "
              f"non-rigid score {cost['with_nonrigid_p50_ms']:.3f} ms (+{cost['added_p50_ms']:.3f})")
