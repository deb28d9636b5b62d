"""`microexp serve [SOURCE]`: the live analysis of a camera or video as a web page (for a kiosk's
browser or an operator's laptop), an upload page that analyses videos, and the JSON API behind
both (microexp.edge.web). Needs the serve extra."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from microexp.cli.run import _size, add_spotter_arguments, spotter_overrides
from microexp.edge.backends import BACKENDS
from microexp.edge.config import SAMPLE_CLIP, SPOT_SCORES, PipelineConfig
from microexp.edge.flow import METHODS


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PipelineConfig.__dataclass_fields__
    p.add_argument("source", nargs="?", help="what `microexp run` takes: video file, folder of frames, camera "
                   "index, /dev/videoN, csi://N, rtsp://..., GStreamer pipeline (default: the sample clip, looping)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only); any other needs a token")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help="required of every page and API call (at least 16 characters); default: "
                   "the MICROEXP_TOKEN environment variable. Open the page once as /?token=... (it is then kept "
                   "in a cookie); API clients send Authorization: Bearer ...")
    p.add_argument("--once", action="store_true", help="play a video file once instead of looping it")
    p.add_argument("--size", type=_size, metavar="WxH", help="ask a camera for this frame size")
    p.add_argument("--rate", type=float, metavar="FPS", help="ask a camera for this frame rate")
    p.add_argument("--fps", type=float, help="override a file's or folder's frame rate")
    p.add_argument("--display-fps", type=float, default=25.0, help="pictures per second sent to each browser, "
                   "at most (default 25); the analysis runs at the source's rate regardless")
    p.add_argument("--preview-width", type=int, default=640, help="width of the picture sent to browsers (px)")
    p.add_argument("--jobs-dir", default="microexp_serve", help="folder for uploads and their results "
                   "(default: microexp_serve)")
    p.add_argument("--max-upload-mb", type=float, default=500.0, help="largest upload accepted (default 500 MiB)")
    p.add_argument("--max-duration", type=float, default=600.0, metavar="S",
                   help="longest video analysed, in seconds (default 600)")
    p.add_argument("--workers", type=int, default=1, help="uploads analysed at once (default 1)")
    p.add_argument("--max-waiting", type=int, default=4, help="uploads queued behind those; more are refused")
    p.add_argument("--keep-jobs", type=int, default=20, help="finished uploads kept; older ones are deleted")
    p.add_argument("--max-clients", type=int, default=8, help="live views and result streams at once (default 8)")
    p.add_argument("--max-requests", type=int, default=64,
                   help="HTTP requests in progress at once, after the token check; more are answered 503 (default 64)")
    p.add_argument("--upload-timeout", type=float, default=30.0, metavar="S",
                   help="an upload that sends nothing for S seconds is dropped (default 30)")
    p.add_argument("--flow", default="farneback", choices=METHODS, metavar="FLOW", help="as for `microexp run`")
    p.add_argument("--faces", type=int, default=d["faces"].default, metavar="N", help="faces tracked at once")
    p.add_argument("--spot-score", choices=SPOT_SCORES, default=d["spot_score"].default)
    add_spotter_arguments(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", choices=BACKENDS)


def _file_problem(source: str) -> str:
    """Why a file or folder source cannot be shown, else ''. A camera or stream that is not there
    yet is not a problem: the page says so and the server keeps trying (a kiosk may boot before
    its camera)."""
    from microexp.edge.sources import FrameSource
    path = Path(source[len("file://"):] if source.startswith("file://") else source)
    if not path.exists():
        live = source.isdigit() or "://" in source or "!" in source or source.startswith("/dev/")
        return "" if live else f"source {source}: no such file, folder or device"
    try:
        FrameSource(source).close()
    except (OSError, ValueError) as err:
        return str(err)
    return ""


def _raise_open_file_limit() -> None:
    """Each connection holds a file descriptor: allow as many as the system lets this process."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _positive(args, *names) -> str:
    for name in names:
        if getattr(args, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
    return ""


def run(args) -> int:
    import uvicorn

    from microexp.edge.pipeline import Pipeline
    from microexp.edge.web.access import TOKEN_ENV, Access, is_loopback
    from microexp.edge.web.app import ServerLimits, create_app
    from microexp.edge.web.jobs import JobLimits, JobStore
    from microexp.edge.web.live import LiveAnalysis
    from microexp.edge.web.protocol import HeaderDeadlineProtocol

    problem = _positive(args, "display_fps", "max_upload_mb", "max_duration", "workers", "max_clients",
                        "max_requests", "keep_jobs", "preview_width", "upload_timeout")
    if problem or args.max_waiting < 0:
        print(f"microexp serve: {problem or '--max-waiting must be 0 or more'}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and token is None:
        print(f"microexp serve: listening on {args.host} lets other machines connect, so a token is required: "
              f"--token or {TOKEN_ENV} (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(24))')",
              file=sys.stderr)
        return 2
    try:
        access = Access(token)
    except ValueError as err:
        print(f"microexp serve: {err}", file=sys.stderr)
        return 2
    source = args.source or str(SAMPLE_CLIP)
    if args.source is None:
        print(f"microexp serve: no source given, showing the sample clip {source} (looping)", file=sys.stderr)
    problem = _file_problem(source)
    if problem:
        print(f"microexp serve: {problem}", file=sys.stderr)
        return 2
    config = PipelineConfig(**{"flow": args.flow, "faces": args.faces, "spot_score": args.spot_score,
                               "threads": args.threads, "backend": args.backend, **spotter_overrides(args)})
    Pipeline(config).close()  # a model that does not load is reported here, before the server starts
    size = args.size or (None, None)
    live = LiveAnalysis(lambda: Pipeline(config), source, fps=args.rate or args.fps, width=size[0], height=size[1],
                        loop=not args.once, preview_width=args.preview_width, display_fps=args.display_fps)
    jobs = JobStore(Path(args.jobs_dir), lambda: Pipeline(config),
                    JobLimits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_duration_s=args.max_duration,
                              workers=args.workers, max_waiting=args.max_waiting, keep=args.keep_jobs))
    app = create_app(live, jobs, access, ServerLimits(max_clients=args.max_clients, max_requests=args.max_requests,
                                                           upload_idle_s=args.upload_timeout))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    hint = "?token=..." if token else ""
    print(f"microexp serve: live view http://{shown}:{args.port}/{hint}, uploads /analyse, API /api/status",
          file=sys.stderr)
    _raise_open_file_limit()
    uvicorn.run(app, host=args.host, port=args.port, http=HeaderDeadlineProtocol, access_log=False,
                log_level="warning", timeout_graceful_shutdown=5, server_header=False)
    return 0
