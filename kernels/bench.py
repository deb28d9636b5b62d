"""Kernel benchmark: each native kernel beside its OpenCV-Python equivalent, same inputs, one
thread, one run. Prints a table, or JSON with --json.

    python -m microexp.kernels.bench [--repeats N] [--json] [--small-templates]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np

from microexp import kernels as K
from microexp.kernels import reference as seed


def face_like_frame(rng, rows, cols):
    """Smooth shading plus fine detail, 3 channels: a stand-in for a face video frame."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    base = 120 + 60 * np.sin(xx / (cols / 5.0)) * np.cos(yy / (rows / 6.0))
    detail = cv2.GaussianBlur(rng.normal(0, 30, (rows, cols)).astype(np.float32), (0, 0), 2.0)
    gray = np.clip(base + detail, 0, 255)
    return np.dstack([gray, gray * 0.85 + 15, gray * 0.7 + 30]).clip(0, 255).astype(np.uint8)


def shifted(img, dx, dy):
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def timed(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(samples)), float(np.percentile(samples, 99))


# ----- baselines: the seed's OpenCV-Python chains (microexp.kernels.reference) -------------

def np_uvs28(flow):
    u, v = flow[..., 0], flow[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    strain = np.sqrt(du_dx**2 + dv_dy**2 + 0.5 * (du_dy + dv_dx) ** 2)
    return np.stack([
        cv2.resize(cv2.normalize(m, None, 0, 1, cv2.NORM_MINMAX), (28, 28), interpolation=cv2.INTER_AREA)
        for m in (u, v, strain)
    ])


def np_region_flow(flow, boxes):
    """region_flow in NumPy: per box the mean flow, and the mean vector of the fullest of 8
    45-degree direction bins (zero vectors in none)."""
    out = np.zeros((len(boxes), 4), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        f = flow[y0:y1, x0:x1].reshape(-1, 2).astype(np.float64)
        moving = np.any(f != 0, axis=1)
        bins = (np.floor(np.degrees(np.arctan2(f[:, 1], f[:, 0])) % 360 / 45).astype(int) % 8)[moving]
        counts = np.bincount(bins, minlength=8)
        main = f[moving][bins == int(np.argmax(counts))]
        mean = main.mean(axis=0) if len(main) else np.zeros(2)
        out[k] = (*f.mean(axis=0), np.hypot(*mean), np.arctan2(mean[1], mean[0]) if len(main) else 0.0)
    return out


def np_region_motion(flow, grid=4, step=4):
    """motion, upper, lower and local scores of region_motion in NumPy (no affine residual)."""
    s = flow[::step, ::step].astype(np.float64)
    mag = np.hypot(s[..., 0], s[..., 1])
    h = mag.shape[0]
    residual = np.hypot(*(s - np.median(s, axis=(0, 1))).transpose(2, 0, 1))
    bh, bw = residual.shape[0] // grid, residual.shape[1] // grid
    blocks = residual[: bh * grid, : bw * grid].reshape(grid, bh, grid, bw).mean(axis=(1, 3))
    return mag.mean(), mag[: max(1, h // 2)].mean(), mag[2 * h // 3:].mean(), blocks.max()


# ----------------------------------------------------------------------------------------------

def run(repeats: int):
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    # SAMM-like: 2040x1088 frames, a ~400 px face, margin 40 -> 480x480 search region.
    frame0 = face_like_frame(rng, 1088, 2040)
    box = (820, 300, 1220, 700)
    template = frame0[box[1] : box[3], box[0] : box[2]].copy()
    frame1 = shifted(frame0, 2.6, -1.3)
    region = np.ascontiguousarray(frame1[box[1] - 40 : box[3] + 40, box[0] - 40 : box[2] + 40])
    gray_region, gray_tpl = region[..., 0].copy(), template[..., 0].copy()
    flow = cv2.calcOpticalFlowFarneback(
        cv2.cvtColor(cv2.resize(template, (224, 224)), cv2.COLOR_BGR2GRAY),
        cv2.cvtColor(seed.crop_with_template(frame1, template, box)[0], cv2.COLOR_BGR2GRAY),
        None, 0.5, 3, 15, 3, 5, 1.2, 0)
    gray0 = cv2.cvtColor(cv2.resize(template, (224, 224)), cv2.COLOR_BGR2GRAY)
    gray1 = cv2.cvtColor(seed.crop_with_template(frame1, template, box)[0], cv2.COLOR_BGR2GRAY)
    farneback = K.FarnebackFlow(0.5, 3, 15, 3, 5, 1.2)
    flow_out = np.empty((224, 224, 2), np.float32)
    hsv_out = np.empty((28, 28, 3), np.uint8)
    uvs_out = np.empty((3, 28, 28), np.float32)
    crop_out = np.empty((224, 224, 3), np.uint8)
    # The twelve regions edge.face_regions places on a 224 px crop with the eyes 80 px apart.
    boxes = np.array([[37, 44, 67, 64], [72, 44, 96, 64], [102, 52, 122, 72], [128, 44, 152, 64],
                      [157, 44, 187, 64], [54, 80, 90, 100], [134, 80, 170, 100], [82, 114, 102, 138],
                      [122, 114, 142, 138], [70, 153, 94, 177], [130, 153, 154, 177], [92, 189, 132, 213]], np.int32)
    regions_out = np.empty((12, 4), np.float32)

    cases = [
        ("match_template exact, BGR 400x400 in 480x480",
         lambda: seed.match_template(region, template), lambda: K.match_template(region, template, "exact")),
        ("match_template pyramid, BGR 400x400 in 480x480",
         lambda: seed.match_template(region, template), lambda: K.match_template(region, template, "pyramid")),
        ("match_template exact, gray 400x400 in 480x480",
         lambda: seed.match_template(gray_region, gray_tpl), lambda: K.match_template(gray_region, gray_tpl)),
        ("match_template pyramid, gray 400x400 in 480x480",
         lambda: seed.match_template(gray_region, gray_tpl),
         lambda: K.match_template(gray_region, gray_tpl, "pyramid")),
        ("align_crop pyramid, 2040x1088 BGR -> 224x224",
         lambda: seed.crop_with_template(frame1, template, box)[0],
         lambda: K.align_crop(frame1, template, box, mode="pyramid", out=crop_out)),
        ("encode_hsv28, 224x224 flow",
         lambda: seed.hsv28(flow), lambda: K.encode_hsv28(flow, out=hsv_out)),
        ("encode_uvs28, 224x224 flow",
         lambda: np_uvs28(flow), lambda: K.encode_uvs28(flow, out=uvs_out)),
        ("FarnebackFlow, 224x224 gray, onset reused",
         lambda: cv2.calcOpticalFlowFarneback(gray0, gray1, None, 0.5, 3, 15, 3, 5, 1.2, 0),
         lambda: farneback(gray0, gray1, flow_out)),
        ("region_motion, 224x224 flow (NumPy baseline)",
         lambda: np_region_motion(flow), lambda: K.region_motion(flow, nonrigid_grid=8)),
        ("region_flow, 12 regions of a 224x224 flow (NumPy baseline)",
         lambda: np_region_flow(flow, boxes), lambda: K.region_flow(flow, boxes, out=regions_out)),
    ]
    rows = []
    for name, baseline, ours in cases:
        b50, b99 = timed(baseline, repeats)
        o50, o99 = timed(ours, repeats)
        rows.append({"kernel": name, "opencv_p50_ms": b50, "opencv_p99_ms": b99,
                     "ours_p50_ms": o50, "ours_p99_ms": o99, "speedup_p50": b50 / o50})
    same = (K.match_template(region, template, "exact")[:2] == seed.match_template(region, template)[:2],
            K.match_template(region, template, "pyramid")[:2] == seed.match_template(region, template)[:2],
            bool(np.array_equal(K.encode_hsv28(flow), seed.hsv28(flow))))
    return {
        "threads": 1,
        "repeats": repeats,
        "cpu": platform.processor() or platform.machine(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "fma_path": bool(K._kernels.cpu_has_fma()),
        "outputs_identical": {"exact_location": same[0], "pyramid_location": same[1],
                              "hsv28_bits": same[2]},
        "results": rows,
    }


def small_templates(repeats: int) -> list:
    """The pyramid search's slow corner: a template whose short side is under 32 px gets no
    coarser level, so every placement is scored at full resolution. Gray images; the exact mode
    (FFT or direct sums) beside it for the same pair."""
    rng = np.random.default_rng(3)
    rows = []
    for (th, tw), (ih, iw) in (((25, 1596), (64, 2040)), ((31, 31), (480, 480)), ((32, 32), (480, 480)),
                               ((64, 64), (480, 480))):
        image = cv2.GaussianBlur(rng.integers(0, 255, (ih, iw), dtype=np.uint8), (0, 0), 2.0)
        template = np.ascontiguousarray(image[10:10 + th, 20:20 + tw])
        matcher = K.TemplateMatcher(template)
        p50_pyr, _ = timed(lambda m=matcher, i=image: m.match(i), repeats, warmup=1)
        p50_exact, _ = timed(lambda i=image, t=template: K.match_template(i, t, "exact"), repeats, warmup=1)
        rows.append({"template": f"{th}x{tw}", "image": f"{ih}x{iw}", "pyramid_levels": matcher._impl.depth,
                     "pyramid_p50_ms": p50_pyr, "exact_p50_ms": p50_exact})
    return rows


def print_table(report):
    print(f"one thread, {report['repeats']} calls each, OpenCV {report['opencv']}, "
          f"NumPy {report['numpy']}")
    head = f"{'kernel':50s} {'OpenCV p50':>11s} {'p99':>8s} {'ours p50':>9s} {'p99':>8s} {'speedup':>8s}"
    print(head)
    print("-" * len(head))
    for r in report["results"]:
        print(f"{r['kernel']:50s} {r['opencv_p50_ms']:9.3f}ms {r['opencv_p99_ms']:6.3f}ms "
              f"{r['ours_p50_ms']:7.3f}ms {r['ours_p99_ms']:6.3f}ms {r['speedup_p50']:7.1f}x")
    print("outputs identical to OpenCV:", report["outputs_identical"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--small-templates", action="store_true",
                        help="instead: TemplateMatcher on templates under 32 px (no coarse level) beside exact mode")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.small_templates:
        cv2.setNumThreads(1)
        rows = small_templates(args.repeats)
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows:
            print(f"template {r['template']:>8s} in {r['image']:>8s}: {r['pyramid_levels']} coarse level(s), "
                  f"TemplateMatcher {r['pyramid_p50_ms']:8.2f} ms, exact mode {r['exact_p50_ms']:8.2f} ms (p50)")
        return
    report = run(args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
