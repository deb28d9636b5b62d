"""What the web view costs: `python -m microexp.edge.web.bench`.

Per round, on `microexp bench`'s own synthetic frames (2040x1088, a ~400 px face) and with its
reference-mode pipeline settings:
  1. the pipeline alone, frame after frame: what `microexp bench` reports as ours_reference;
  2. the same pipeline in `microexp serve`'s live analysis (the frames held in memory and played
     at 200 fps, looping), with the server running and N headless Chromium pages open on the
     live view; per-frame pipeline latency, the rate kept, and each page's frame-to-page delay
     (capture time drawn into the page vs the page's receipt of the picture, one clock).
Rounds alternate, and the ratio of p50s is reported per round (shared machines are noisy).

`--soak-minutes M`: the server for M minutes with one page open and a client that never reads
(reconnected each time the server drops it); the server process's resident memory sampled.
Prints a table, and JSON with --json. Needs the serve extra; the pages need selenium, chromium and
chromedriver (else Python WebSocket clients stand in, and the JSON says so)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..bench import _stats, run_ours, samm_like_frames
from ..config import SAMPLE_CLIP
from ..pipeline import Pipeline, PipelineConfig
from ..sources import Frame


class MemorySource:
    """Frames held in memory, played in a loop with increasing timestamps (like FrameSource(loop=True))."""

    live = False

    def __init__(self, frames: List[np.ndarray], fps: float):
        self.frames, self.fps = frames, fps

    def __iter__(self):
        i = 0
        while True:
            yield Frame(i, i / self.fps, self.frames[i % len(self.frames)])
            i += 1

    def close(self):
        pass


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(comm: str) -> float:
    """User + system CPU seconds of every process named `comm` now (Linux /proc)."""
    import os
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                if f.read().strip() != comm:
                    continue
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchServer:
    """The serve application in this process (uvicorn in a thread) over frames in memory."""

    def __init__(self, frames, config: PipelineConfig, fps: float, jobs_dir: Path, latency_window: int = 1_000_000,
                 source: Optional[str] = None):
        import uvicorn

        from .access import Access
        from .app import create_app
        from .jobs import JobStore
        from .live import LiveAnalysis
        from .protocol import HeaderDeadlineProtocol
        opener = None if source else (lambda: MemorySource(frames, fps))  # else FrameSource(source, loop=True)
        self.live = LiveAnalysis(lambda: Pipeline(config), source or "memory", open_source=opener,
                                 latency_window=latency_window)
        self.jobs = JobStore(jobs_dir, lambda: Pipeline(config))
        self.port = _free_port()
        app = create_app(self.live, self.jobs, Access(None))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, http=HeaderDeadlineProtocol))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        end = time.monotonic() + 60
        while not self.server.started or self.live.frames == 0:
            if time.monotonic() > end:
                raise RuntimeError("bench: the server did not start analysing within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"


class Pages:
    """N live pages: headless Chromium where available, else Python WebSocket clients."""

    def __init__(self, url: str, n: int, kind: str = "auto"):
        self.url, self.n, self.drivers, self.threads = url, n, [], []
        self.kind = "chromium" if shutil.which("chromedriver") and shutil.which("chromium") else "websocket"
        try:
            import selenium  # noqa: F401
        except ImportError:
            self.kind = "websocket"
        if kind != "auto":
            if kind == "chromium" and self.kind != "chromium":
                raise RuntimeError("bench: --pages chromium needs selenium, chromium and chromedriver")
            self.kind = kind
        self._stop = threading.Event()
        self.ws_delays: List[List[float]] = []
        self.ws_pictures: List[int] = []

    def __enter__(self):
        if self.kind == "chromium":
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
            for _ in range(self.n):
                options = webdriver.ChromeOptions()
                for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--window-size=1280,900"):
                    options.add_argument(flag)
                driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
                driver.get(self.url)
                self.drivers.append(driver)
        else:
            for i in range(self.n):
                delays: List[float] = []
                self.ws_delays.append(delays)
                self.ws_pictures.append(0)
                t = threading.Thread(target=self._ws_client, args=(i, delays), daemon=True)
                t.start()
                self.threads.append(t)
        return self

    def _ws_client(self, i, delays):
        from websockets.sync.client import connect
        with connect(self.url.replace("http", "ws") + "api/live", max_size=None) as ws:
            pending = None
            while not self._stop.is_set():
                message = ws.recv(timeout=10)
                if isinstance(message, str):
                    m = json.loads(message)
                    pending = m if m.get("picture") else None
                elif pending is not None:
                    delays.append((time.time() - pending["captured"]) * 1e3)
                    self.ws_pictures[i] += 1

    def reset(self):
        for d in self.drivers:
            d.execute_script("window.microexpStats.delays = []; window.microexpStats.pictures = 0;")
        for d in self.ws_delays:
            d.clear()

    def pictures(self) -> List[int]:
        """Pictures each page has drawn (WebSocket clients: received) since it opened."""
        if self.drivers:
            return [d.execute_script("return window.microexpStats.pictures") for d in self.drivers]
        return list(self.ws_pictures)

    def delays(self) -> List[List[float]]:
        if self.drivers:
            return [d.execute_script("return window.microexpStats.delays.slice()") for d in self.drivers]
        return [list(d) for d in self.ws_delays]

    def __exit__(self, *exc):
        self._stop.set()
        for d in self.drivers:
            d.quit()
        for t in self.threads:
            t.join(15)


def server_round(frames, config, fps: float, seconds: float, browsers: int, jobs_dir: Path, kind: str) -> dict:
    with BenchServer(frames, config, fps, jobs_dir) as srv, Pages(srv.url, browsers, kind) as pages:
        time.sleep(3.0)  # the pages load and connect
        pages.reset()
        first_frame, t0 = srv.live.frames, time.monotonic()
        start = len(srv.live.latencies)
        own, browsers_cpu = os.times(), _cpu_seconds("chromium")
        time.sleep(seconds)
        done, elapsed = srv.live.frames - first_frame, time.monotonic() - t0
        own_end = os.times()
        cores = {"this_process": (own_end.user + own_end.system - own.user - own.system) / elapsed,
                 "chromium": (_cpu_seconds("chromium") - browsers_cpu) / elapsed}
        latencies = list(srv.live.latencies)[start:]
        per_page = pages.delays()
    pooled = [d for page in per_page for d in page]
    return {"latency_ms": _stats(latencies), "frames": done, "rate_fps": done / elapsed, "target_fps": fps,
            "pages": pages.kind, "pictures_per_s": [len(p) / seconds for p in per_page],
            "delay_ms": _stats(pooled) if pooled else None, "cpu_cores": cores}


def run(frames_n: int, seconds: float, rounds: int, browsers: int, threads: int, jobs_dir: Path,
        kind: str = "auto") -> dict:
    frames = samm_like_frames(frames_n)
    # microexp bench's reference column: these settings, these frames.
    config = PipelineConfig(flow="farneback", crop_size=224, emotion_model=None, threads=threads, fps=200,
                            track_level=0)
    report = {"frames": frames_n, "frame_size": [2040, 1088], "threads": threads, "browsers": browsers,
              "seconds_per_round": seconds, "rounds": []}
    for r in range(rounds):
        alone = run_ours(frames, "farneback", threads)[0]["total"]
        served = server_round(frames, config, 200.0, seconds, browsers, jobs_dir / f"round{r}", kind)
        report["rounds"].append({"bench_total_ms": alone, "served": served,
                                 "ratio_p50": served["latency_ms"]["p50"] / alone["p50"],
                                 "ratio_mean": served["latency_ms"]["mean"] / alone["mean"]})
    ratios = [r["ratio_p50"] for r in report["rounds"]]
    report["ratio_p50_median"] = float(np.median(ratios))
    delays = [r["served"]["delay_ms"] for r in report["rounds"] if r["served"]["delay_ms"]]
    report["delay_ms_p50_median"] = float(np.median([d["p50"] for d in delays])) if delays else None
    report["delay_ms_p90_median"] = float(np.median([d["p90"] for d in delays])) if delays else None
    return report


def soak(minutes: float, threads: int, jobs_dir: Path, sample_s: float = 15.0, kind: str = "auto") -> dict:
    """Resident memory of the server's process over `minutes`, as `microexp serve` runs by default
    (the sample clip decoded and looped at its 200 fps, the default models), with one page open
    and a client that never reads."""
    config = PipelineConfig(threads=threads)
    samples, stalls = [], 0
    server = BenchServer(None, config, 200.0, jobs_dir, latency_window=2000, source=str(SAMPLE_CLIP))
    with server as srv, Pages(srv.url, 1, kind) as pages:
        t0 = time.monotonic()
        stalled = None
        while time.monotonic() - t0 < minutes * 60:
            if stalled is None or srv.live.watchers < 2:  # the server dropped it (the page is the other)
                if stalled is not None:
                    stalled.close()
                stalled = _stalled_client(srv.port)
                stalls += 1
                time.sleep(1.0)  # its handshake, before it is counted
            samples.append((time.monotonic() - t0, _rss_mb(), srv.live.frames))
            time.sleep(sample_s)
        stalled.close()
        kind = pages.kind
        received = pages.pictures()[0]
    t, rss, frames_done = (np.asarray(v) for v in zip(*samples))
    after = t >= min(60.0, t[-1] / 2)  # after the first minute: models loaded, buffers made
    slope = float(np.polyfit(t[after] / 3600, rss[after], 1)[0]) if after.sum() >= 2 else float("nan")
    return {"minutes": minutes, "source": "sample clip, looping", "pages": kind, "stalled_clients_opened": stalls,
            "pictures_drawn_by_the_page": received,
            "rss_mb": {"after_1_min": float(rss[after][0]), "max": float(rss.max()), "end": float(rss[-1])},
            "rss_growth_mb_per_hour": slope, "frames": int(frames_done[-1]),
            "rate_fps": float(frames_done[-1] / t[-1]) if t[-1] > 0 else None,
            "samples": [[round(a, 1), round(b, 1)] for a, b, _ in samples]}


def _stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting, so that it applies
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    raw.sendall((f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    if raw.recv(12) != b"HTTP/1.1 101":
        raise RuntimeError("bench: the server refused the stalled client's WebSocket")
    return raw


def print_table(report: dict) -> None:
    if "rounds" in report:
        print(f"per-frame pipeline latency, {report['frame_size'][0]}x{report['frame_size'][1]}, "
              f"{report['threads']} thread(s); served: {report['browsers']} pages open "
              f"({report['rounds'][0]['served']['pages']})")
        head = f"{'round':>5s} {'bench p50':>10s} {'served p50':>11s} {'ratio':>6s} {'rate fps':>9s} " \
               f"{'delay p50':>10s} {'delay p90':>10s} {'pics/s per page':>16s} {'cores: server':>14s} {'pages':>6s}"
        print(head + "\n" + "-" * len(head))
        for i, r in enumerate(report["rounds"]):
            s = r["served"]
            d = s["delay_ms"] or {"p50": float("nan"), "p90": float("nan")}
            pics = "/".join(f"{p:.1f}" for p in s["pictures_per_s"])
            print(f"{i:5d} {r['bench_total_ms']['p50']:10.3f} {s['latency_ms']['p50']:11.3f} {r['ratio_p50']:6.3f} "
                  f"{s['rate_fps']:9.1f} {d['p50']:10.1f} {d['p90']:10.1f} {pics:>16s} "
                  f"{s['cpu_cores']['this_process']:14.2f} {s['cpu_cores']['chromium']:6.2f}")
        print(f"median p50 ratio served/bench: {report['ratio_p50_median']:.3f}")
    if "soak" in report:
        s = report["soak"]
        print(f"soak {s['minutes']:g} min ({s['pages']} page + a client that never reads, reopened "
              f"{s['stalled_clients_opened']} times; the page drew {s['pictures_drawn_by_the_page']} pictures): "
              f"RSS after 1 min {s['rss_mb']['after_1_min']:.1f} MB, max "
              f"{s['rss_mb']['max']:.1f} MB, end {s['rss_mb']['end']:.1f} MB, growth "
              f"{s['rss_growth_mb_per_hour']:.1f} MB/h; {s['frames']} frames at {s['rate_fps']:.1f} fps")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m microexp.edge.web.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200, help="synthetic frames (played in a loop by the server)")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement per served round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--browsers", type=int, default=2)
    p.add_argument("--pages", choices=("auto", "chromium", "websocket"), default="auto",
                   help="what the open pages are: headless Chromium (auto, where installed) or Python WebSocket clients")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--soak-minutes", type=float, default=0.0, help="also (or with --rounds 0, only) the soak")
    p.add_argument("--jobs-dir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", help="write the report here too")
    args = p.parse_args(argv)
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        jobs = Path(args.jobs_dir or scratch)
        report = run(args.frames, args.seconds, args.rounds, args.browsers, args.threads, jobs,
                                                        args.pages) if args.rounds else {}
        if args.soak_minutes > 0:
            report["soak"] = soak(args.soak_minutes, args.threads, jobs / "soak", kind=args.pages)
    print_table(report)
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
