"""`python -m microexp.edge.soak`: memory over a long run. Runs `microexp run` on a looping
clip (the shipped sample by default) in a child process, as a user would, samples the child's
resident memory (VmRSS, Linux /proc) against the frames it has written, and reports the growth
after a warm-up as a slope (KiB per 1000 frames) and in total, as JSON or a table.

A run whose memory grows with its length (a per-frame leak, a history kept whole) shows a
slope of about its bytes per frame; a flat run shows noise around zero."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).parent / "samples" / "sample_clip.mp4"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"soak: no VmRSS for process {pid}")


def soak(frames: int, source: str = str(SAMPLE), extra=(), interval_s: float = 0.2,
         warmup: float = 0.2) -> dict:
    """Memory samples of `microexp run SOURCE --loop --max-frames FRAMES` and their trend
    over the frames after the first `warmup` fraction."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "microexp.cli", "run", source, "--loop", "--max-frames", str(frames),
               "--out", out, "--progress-interval", "0", *extra]
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = [0]

        def follow_progress():  # the CLI prints "<done>/<total> frames, ..." every 25 frames
            for line in iter(child.stderr.readline, ""):
                m = re.match(r"\s*(\d+)/\d+ frames", line)
                if m:
                    done[0] = int(m.group(1))

        reader = threading.Thread(target=follow_progress, daemon=True)
        reader.start()
        samples = []
        start = time.monotonic()
        while child.poll() is None:
            try:
                samples.append((done[0], rss_kib(child.pid)))
            except (OSError, RuntimeError):  # the child finished between poll and read
                break
            time.sleep(interval_s)
        stdout = child.stdout.read()
        child.wait()  # the loop may leave between the child's exit and its reaping
        reader.join(timeout=5)
        child.stdout.close()
        child.stderr.close()
        seconds = time.monotonic() - start
    if child.returncode != 0:
        raise RuntimeError(f"soak: {' '.join(cmd)} exited with {child.returncode}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    # After the warm-up and before the last frame (the child then tears down and frees memory).
    kept = [s for s in samples if warmup * frames <= s[0] < frames]
    x = np.array([s[0] for s in kept], np.float64)
    y = np.array([s[1] for s in kept], np.float64)
    if len(x) < 3 or np.ptp(x) == 0:
        raise RuntimeError(f"soak: too few memory samples after the warm-up ({len(x)}); run more frames")
    slope = float(np.polyfit(x, y, 1)[0])  # KiB per frame
    return {"command": " ".join(cmd[2:]), "frames": summary["frames"], "seconds": round(seconds, 1),
            "samples": len(samples), "rss_mib_after_warmup": round(y[0] / 1024, 1),
            "rss_mib_end": round(y[-1] / 1024, 1), "rss_mib_max": round(max(s[1] for s in samples) / 1024, 1),
            "growth_mib_after_warmup": round((y[-1] - y[0]) / 1024, 2),
            "slope_kib_per_1000_frames": round(slope * 1000, 1),
            # about 12 of the samples, evenly spaced: (frames written, MiB)
            "trace": [(f, round(k / 1024, 1)) for f, k in samples[::max(1, len(samples) // 12)]]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m microexp.edge.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--source", default=str(SAMPLE), help="a video file or folder (looped)")
    p.add_argument("--json", action="store_true")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: more `microexp run` options")
    args = p.parse_args(argv)
    if args.frames < 100:
        p.error("--frames must be at least 100")
    extra = [a for a in args.run_args if a != "--"]
    report = soak(args.frames, args.source, extra)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for k, v in report.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
