"""What batch analysis and LOSO folds cost, on a process pool and on Ray:
`python -m microexp.training.cluster_bench`.

Measured on this machine, side by side in one run:
  * batch: `--clips` SAMM-like clips (frame folders of 2040x1088 JPEGs, `microexp bench`'s
    synthetic face, `--frames` frames each) analysed by run_batch with 1 and 2 workers on the
    local process pool and on a local Ray instance: wall time, frames/s, clips/hour; the time
    one clip spends decoding its frames (FrameSource alone) against analysing them;
  * per-task overhead: `--noop` empty tasks through each pool (what scheduling costs);
  * LOSO: `--folds` folds of the edge HTNet preset (`--epochs` epochs) on synthetic maps shaped
    like the MEGC composite (442 maps, 68 subjects), 1 and 2 workers, pool and Ray: seconds per fold;
  * one fold-epoch of the official HTNet configuration (139.6M parameters) on the same maps;
  * `--split`: a generated camera recording of `--split-minutes` (a minute's visit, then three
    minutes without anyone, over and over) and one with a face throughout, each analysed whole
    and as four ranges on 2 workers.
Then, on paper from those measured costs, for a cluster of `--nodes` nodes each like this
machine: the wall time to analyse `--estimate-clips` such clips, and the official HTNet schedule
(68 folds x 800 epochs). Prints a table, and JSON with --json. Ray's start-up is timed apart."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from microexp.edge.batch import run_batch
from microexp.edge.bench import samm_like_frames
from microexp.edge.config import PipelineConfig
from microexp.edge.distributed import TaskPool
from microexp.edge.sources import FrameSource

HTNET_FOLDS, HTNET_EPOCHS = 68, 800  # the official schedule: LOSO over the composite's 68 subjects


def _noop(x):
    return x


def write_clips(root: Path, clips: int, frames: int) -> List[str]:
    """Frame folders as SAMM ships them (one JPEG per frame); the same synthetic frames each."""
    images = samm_like_frames(frames)
    paths = []
    for c in range(clips):
        folder = root / f"{c:03d}" / f"{c:03d}_1_1"
        folder.mkdir(parents=True)
        for i, image in enumerate(images):
            cv2.imwrite(str(folder / f"{c:03d}_{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(str(folder))
    return paths


def write_recording(path: Path, pattern: str, seconds_per_char: float, fps: float = 25.0, size: int = 320) -> str:
    """An MJPG camera recording: per character of `pattern` `seconds_per_char` of 'F' a face
    (swaying a little) or '.' an empty wall with sensor noise."""
    from microexp.edge.bench import PHOTO
    face = cv2.resize(cv2.imread(str(PHOTO)), (size, size))
    rng = np.random.default_rng(0)
    wall = np.full((size, size, 3), 120, np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    i = 0
    for c in pattern:
        for _ in range(int(round(seconds_per_char * fps))):
            if c == "F":
                shift = np.float32([[1, 0, 1.5 * np.sin(i / 7)], [0, 1, 0]])
                frame = cv2.warpAffine(face, shift, (size, size), borderMode=cv2.BORDER_REFLECT)
            else:
                frame = cv2.add(wall, rng.integers(0, 4, wall.shape, dtype=np.uint8))
            writer.write(frame)
            i += 1
    writer.release()
    return str(path)


def time_split(uri: str, split_s: float, workers: int) -> Dict[str, object]:
    """One input as one task, then as --split ranges: wall times, and what the merge did."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_batch([uri], Path(out) / "whole", PipelineConfig(), workers=1)
        whole = time.perf_counter() - t0
        t0 = time.perf_counter()
        manifest = run_batch([uri], Path(out) / "split", PipelineConfig(), workers=workers, split_s=split_s)
        split = time.perf_counter() - t0
    (entry,) = manifest.values()
    return {"whole_s": round(whole, 2), "split_s": round(split, 2), "speedup": round(whole / split, 2),
            "frames": entry["frames"], **entry["split"]}


def decode_share(uri: str) -> Dict[str, float]:
    """Seconds one clip takes to decode alone, and to analyse (which includes decoding)."""
    from microexp.edge.analysis import AnalysisOptions, analyse
    from microexp.edge.pipeline import Pipeline
    t0 = time.perf_counter()
    for _ in FrameSource(uri):
        pass
    decode = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, Pipeline(PipelineConfig()) as pipe:
        t0 = time.perf_counter()
        analyse(pipe, FrameSource(uri), AnalysisOptions(Path(tmp), timeline=False))
        total = time.perf_counter() - t0
    return {"decode_s": round(decode, 3), "analyse_s": round(total, 3), "decode_share": round(decode / total, 3)}


def time_batch(inputs: List[str], workers: int, ray: Optional[str]) -> Dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        manifest = run_batch(inputs, Path(out), PipelineConfig(), workers=workers, ray_address=ray)
        wall = time.perf_counter() - t0
    frames = sum(e.get("frames", 0) for e in manifest.values())
    failed = [u for u, e in manifest.items() if e["state"] != "done"]
    if failed:
        raise RuntimeError(f"cluster_bench: inputs failed: {failed}")
    return {"wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 1),
            "clips_per_hour": round(len(inputs) / wall * 3600, 1)}


def time_noop(tasks: int, workers: int, ray: Optional[str]) -> float:
    """Milliseconds per empty task, the pool already started (its start-up not counted)."""
    with TaskPool(workers, ray) as pool:
        pool.submit(_noop, 0)
        list(pool.completed())  # warm
        t0 = time.perf_counter()
        for i in range(tasks):
            pool.submit(_noop, i)
        list(pool.completed())
        return round((time.perf_counter() - t0) / tasks * 1e3, 3)


def megc_like_maps(seed: int = 0):
    """442 maps (3x28x28, 0..255) of 68 subjects and 3 classes: the composite's shapes, random content."""
    rng = np.random.default_rng(seed)
    subjects = np.array([f"s{i % 68:02d}" for i in range(442)])
    return rng.uniform(0, 255, (442, 3, 28, 28)).astype(np.float32), rng.integers(0, 3, 442), subjects


def time_loso(folds: int, epochs: int, workers: int, ray: Optional[str], preset: str = "edge",
              batch_size: int = 64) -> float:
    """Seconds per fold: `folds` folds of `preset` for `epochs` epochs, wall time / folds."""
    from .loso import run_loso
    from .presets import make_experiment
    maps, labels, subjects = megc_like_maps()
    exp = make_experiment("megc", preset, epochs=epochs, batch_size=batch_size)
    names = sorted(set(subjects.tolist()))[:folds]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_loso(exp, maps, labels, subjects, out_dir=out, workers=workers, folds=names, progress=False,
                 ray_address=ray)
        return round((time.perf_counter() - t0) / folds, 2)


def start_ray(workers: int) -> float:
    """A local Ray instance of `workers` CPUs, left running for the rows that use it (their
    TaskPools find it started); seconds it took."""
    t0 = time.perf_counter()
    TaskPool(workers, "")  # starts it; closing would stop it, so it is not closed here
    return round(time.perf_counter() - t0, 2)


def measure(args) -> Dict[str, object]:
    report: Dict[str, object] = {"machine": {"cpus": os.cpu_count()}, "settings": vars(args).copy()}
    report["settings"].pop("json", None)
    root = Path(tempfile.mkdtemp(prefix="cluster_bench_"))
    try:
        inputs = write_clips(root, args.clips, args.frames)
        report["clip"] = {"frames": args.frames, "size": "2040x1088", **decode_share(inputs[0])}
        backends = [("pool", None)] + ([("ray", "")] if not args.no_ray else [])
        rows = []
        for workers in (1, 2):
            for name, ray in backends:
                row = {"backend": name, "workers": workers}
                if ray is not None:
                    row["ray_startup_s"] = start_ray(workers)
                try:
                    row.update(time_batch(inputs, workers, ray))
                    row["noop_task_ms"] = time_noop(args.noop, workers, ray)
                    if args.folds:
                        row["loso_s_per_fold"] = time_loso(args.folds, args.epochs, workers, ray)
                finally:
                    if ray is not None:
                        import ray as ray_module
                        ray_module.shutdown()
                rows.append(row)
        report["runs"] = rows
        if not args.skip_official:
            # One fold of the official configuration for one epoch, and for two: the difference
            # is one epoch's cost without the model's construction.
            one = time_loso(1, 1, 1, None, preset="official", batch_size=256)
            two = time_loso(1, 2, 1, None, preset="official", batch_size=256)
            report["htnet_official"] = {"fold_1_epoch_s": one, "fold_2_epochs_s": two,
                                        "epoch_s": round(max(two - one, 0.0), 2), "setup_s": round(max(2 * one - two, 0.0), 2)}
        if args.split_minutes:
            # A camera in a room that people visit: a minute's visit, then 3 minutes empty; and
            # the same length with a face throughout. Ranges of a quarter of the recording.
            minutes = args.split_minutes
            quarter = minutes * 60 / 4
            visits = write_recording(root / "visits.avi", "F..." * int(math.ceil(minutes / 4)), 60.0)
            face = write_recording(root / "face.avi", "F" * int(minutes), 60.0)
            report["split"] = {"recording_minutes": minutes, "range_s": quarter, "workers": 2,
                               "visits": time_split(visits, quarter, 2), "face_throughout": time_split(face, quarter, 2)}
        report["estimates"] = estimates(report, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report


def estimates(report: Dict[str, object], args) -> Dict[str, object]:
    """On paper: `nodes` nodes like this one, each running 2 workers (its 2 cores)."""
    runs = {(r["backend"], r["workers"]): r for r in report["runs"]}
    best = runs.get(("ray", 2)) or runs[("pool", 2)]
    per_node_clips_per_s = best["clips_per_hour"] / 3600
    clip_hours = args.estimate_clips / (per_node_clips_per_s * args.nodes) / 3600
    out: Dict[str, object] = {
        "nodes": args.nodes, "assumes": "nodes like this machine (2 cores, no GPU), inputs on storage every node "
                                        "reads as fast as this disk, one Ray worker per core",
        "clips": args.estimate_clips, "clip_frames": args.frames,
        "clips_wall_h": round(clip_hours, 2), "from": f"{best['backend']} x2: {best['clips_per_hour']} clips/h per node"}
    official = report.get("htnet_official")
    if official:
        # A node trains one fold at a time on both cores (the measured epoch); folds spread over nodes.
        rounds = math.ceil(HTNET_FOLDS / args.nodes)
        fold_s = official["setup_s"] + HTNET_EPOCHS * official["epoch_s"]
        out["htnet_official"] = {"folds": HTNET_FOLDS, "epochs": HTNET_EPOCHS, "fold_h": round(fold_s / 3600, 2),
                                 "rounds": rounds, "wall_h": round(rounds * fold_s / 3600, 2),
                                 "cpu_h_total": round(HTNET_FOLDS * fold_s * 2 / 3600, 1)}
    return out


def table(report: Dict[str, object]) -> str:
    lines = [f"clip: {report['clip']['frames']} frames {report['clip']['size']}; decode {report['clip']['decode_s']} s "
             f"of {report['clip']['analyse_s']} s analysing it (share {report['clip']['decode_share']})"]
    starts = [r["ray_startup_s"] for r in report["runs"] if "ray_startup_s" in r]
    if starts:
        lines.append(f"local Ray instance start-up: {', '.join(map(str, starts))} s (not in the rows below)")
    head = f"{'backend':8} {'workers':>7} {'wall s':>8} {'frames/s':>9} {'clips/h':>9} {'no-op task ms':>14} {'LOSO s/fold':>12}"
    lines += [head, "-" * len(head)]
    for r in report["runs"]:
        lines.append(f"{r['backend']:8} {r['workers']:7d} {r['wall_s']:8.2f} {r['frames_per_s']:9.1f} "
                     f"{r['clips_per_hour']:9.1f} {r['noop_task_ms']:14.3f} {r.get('loso_s_per_fold', float('nan')):12.2f}")
    if "split" in report:
        sp = report["split"]
        for name in ("visits", "face_throughout"):
            r = sp[name]
            lines.append(f"--split {sp['range_s']:g} s, {sp['recording_minutes']} min recording ({name}): "
                         f"{r['whole_s']} s whole, {r['split_s']} s split on {sp['workers']} workers "
                         f"({r['speedup']}x); ranges {r['ranges']}, taken over {r['taken_over']}, "
                         f"recomputed {r['recomputed_frames']} of {r['frames']} frames")
    if "htnet_official" in report:
        h = report["htnet_official"]
        lines.append(f"HTNet official: one fold-epoch {h['epoch_s']} s (setup {h['setup_s']} s)")
    e = report["estimates"]
    lines.append(f"on paper, {e['nodes']} nodes ({e['assumes']}):")
    lines.append(f"  {e['clips']} clips of {e['clip_frames']} frames: {e['clips_wall_h']} h ({e['from']})")
    if "htnet_official" in e:
        h = e["htnet_official"]
        lines.append(f"  HTNet official schedule ({h['folds']} folds x {h['epochs']} epochs): {h['wall_h']} h "
                     f"({h['rounds']} rounds of {h['fold_h']} h folds; {h['cpu_h_total']} CPU-hours)")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m microexp.training.cluster_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=100, help="frames per clip (SAMM micro-expressions: 47-105 at 200 fps)")
    p.add_argument("--noop", type=int, default=200, help="empty tasks timed per pool")
    p.add_argument("--folds", type=int, default=4, help="LOSO folds timed per pool (0: none)")
    p.add_argument("--epochs", type=int, default=5, help="epochs of those folds")
    p.add_argument("--skip-official", action="store_true", help="do not time the official HTNet configuration")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--split-minutes", type=int, default=16,
                   help="length of the generated camera recordings timed with --split (0: none)")
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--estimate-clips", type=int, default=10000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = measure(args)
    print(table(report))
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
