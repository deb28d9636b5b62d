"""`microexp run [SOURCE]`: per-frame AU probabilities, motion and micro-expression events for a
video, a folder of frames or a camera, written to an output folder (microexp.edge.analysis)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from microexp.edge.analysis import COMPLETE, INTERRUPTED, Terminated
from microexp.edge.backends import BACKENDS
from microexp.edge.config import DEFAULT_SPOTTER, SAMPLE_CLIP, SPOT_SCORES, SPOTTERS, PipelineConfig
from microexp.edge.flow import METHODS
from microexp.edge.trt import PRECISIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PipelineConfig.__dataclass_fields__  # the library's defaults, quoted in the help
    p.add_argument("source", nargs="?", help="video file, folder of frames (SAMM/CASME II layout), camera "
                   "index, /dev/videoN, v4l2://, csi://N, rtsp://..., or a GStreamer pipeline "
                   "(default: the shipped synthetic sample clip)")
    p.add_argument("--out", default="microexp_out", help="output folder (default: microexp_out); one that "
                   "holds an earlier run's results is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run's results in --out")
    p.add_argument("--progress-interval", type=float, default=10.0, metavar="S",
                   help="in a log (stderr not a terminal): seconds between progress lines (default 10)")
    p.add_argument("--size", type=_size, metavar="WxH", help="ask a camera for this frame size, e.g. 1280x720")
    p.add_argument("--rate", type=float, metavar="FPS", help="ask a camera for this frame rate")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--flow", default="farneback", choices=METHODS, metavar="FLOW",
                   help="farneback (reference, native), farneback-opencv (same through cv2), farneback-fast "
                        "(fast mode: 152 px crop, tracked at half resolution), dis-ultrafast, dis-fast, "
                        "dis-medium, tvl1 (slow)")
    p.add_argument("--crop", type=int, help="aligned crop size in px (default: 224; 152 with --flow farneback-fast)")
    p.add_argument("--track-level", type=int, choices=range(5), metavar="{0..4}",
                   help="pyramid level the face tracking stops at: 0 full resolution (default), "
                        "1 half resolution (default with --flow farneback-fast)")
    p.add_argument("--reference", default="fixed", choices=("fixed", "lag", "refresh"))
    p.add_argument("--fps", type=float, help="override the source's frame rate (folders default to 200)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--stills", action="store_true",
                   help="a folder of unrelated photos: every image is analysed on its own (no motion between "
                        "them, so no action and no AU present); without it a folder is a clip's frames")
    p.add_argument("--loop", action="store_true", help="start a file or folder again at its end "
                   "(demos, soak tests; stop with --max-frames or Ctrl-C)")
    p.add_argument("--au-model", help="ONNX AU model (default: the shipped one)")
    p.add_argument("--emotion-model", help="ONNX emotion model (default: the shipped one; 'none' to skip)")
    p.add_argument("--spotter-model", nargs="?", const="default",
                   help="run a streaming spotting model per frame (spot_* columns); without a path, the "
                        "shipped learned spotter")
    p.add_argument("--spot-score", choices=SPOT_SCORES, default=d["spot_score"].default,
                   help="what the event detector follows (default: motion_local; 'learned': the spotter "
                        "model's 1 - p(none), the shipped spotter unless --spotter-model names one)")
    p.add_argument("--spot-threshold", type=float,
                   help="fixed detector threshold (default: the spotter model's for 'learned', else baseline + k MAD)")
    add_spotter_arguments(p)
    p.add_argument("--detect-score", type=float, default=d["detect_score"].default,
                   help="lowest MTCNN score that starts a face track (default %(default)s)")
    p.add_argument("--face", default="largest",
                   help="which face comes first (face_id 0; with --faces 1 the only one tracked): largest "
                        "(default), central (nearest the frame centre), or X,Y (the face at that pixel of the "
                        "first frame); unless largest, a lost track is re-acquired on the face nearest where "
                        "it was lost")
    p.add_argument("--faces", type=int, default=d["faces"].default, metavar="N",
                   help="how many faces to track at once, each with its own face_id and events (default "
                        "%(default)s); 1: only the one --face chooses")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="where the models run: auto (native TensorRT where installed with an NVIDIA "
                        "driver, else ONNX Runtime), onnxruntime, ort-cpu, ort-cuda, ort-tensorrt, tensorrt")
    p.add_argument("--trt-precision", default="fp32", choices=PRECISIONS,
                   help="precision of native TensorRT engines (built on first use, then cached)")
    p.add_argument("--no-timeline", action="store_true", help="skip the PNG timeline")
    p.add_argument("--video", action="store_true", help="also write annotated.mp4 (face box, AUs, motion, events)")
    p.add_argument("--all-aus", action="store_true",
                   help="report every AU the model outputs; by default only those whose measured quality passes "
                        "the bar in the model's metadata (model_info.json lists the figures; the others are "
                        "experimental)")
    p.add_argument("--action-gate", help="action gate JSON (default: the shipped one; 'none': the models' "
                                         "raw outputs, no 'action' column, no 'none' emotion)")
    p.add_argument("--openface", action="store_true", help=argparse.SUPPRESS)  # AUxx_c are always written now


def add_spotter_arguments(p: argparse.ArgumentParser) -> None:
    """--spotter and the micro/macro boundary, shared by the commands that spot events."""
    d = PipelineConfig.__dataclass_fields__
    p.add_argument("--spotter", choices=tuple(SPOTTERS),
                   help="what spots events: motion (the local motion score, the default), cnn-lstm (the shipped "
                        "learned spotter) or graph (the AU-aware region-graph spotter); sets --spot-score and "
                        "the model (--spotter-model still names another file)")
    p.add_argument("--micro-max-ms", type=float, default=d["micro_max_ms"].default, metavar="MS",
                   help="events up to this long are micro-expressions, longer ones macro (default 500)")
    p.add_argument("--macro-max-ms", type=float, default=d["macro_max_ms"].default, metavar="MS",
                   help="longer intervals are dropped (default 4000; at or below --micro-max-ms: micro only)")
    p.add_argument("--min-event-ms", type=float, metavar="MS",
                   help="shorter intervals are dropped (default: the learned spotter model's, else 40)")


def spotter_overrides(args) -> dict:
    """PipelineConfig fields from --spotter, --spotter-model and the micro/macro boundary."""
    out = {"micro_max_ms": args.micro_max_ms, "macro_max_ms": args.macro_max_ms, "min_event_ms": args.min_event_ms}
    if args.spotter:
        out.update(SPOTTERS[args.spotter])
    model = getattr(args, "spotter_model", None)
    if model and model != "default":
        out["spotter_model"] = model
    elif model == "default" and not args.spotter:
        out["spotter_model"] = str(DEFAULT_SPOTTER)
    return out


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return w, h


# What a run writes into its folder: an earlier run's copies are not replaced without --overwrite.
RESULT_FILES = ("frames.csv", "frames.jsonl", "events.jsonl", "model_info.json", "timeline.png", "annotated.mp4")


def config_from(args) -> PipelineConfig:
    overrides = dict(flow=args.flow, reference=args.reference, threads=args.threads,
                     detect_score=args.detect_score, crop_size=args.crop, face=args.face,
                     track_level=args.track_level, backend=args.backend, trt_precision=args.trt_precision,
                     spot_score=args.spot_score, spot_threshold=args.spot_threshold, stills=args.stills,
                     faces=args.faces)
    if args.au_model:
        overrides["au_model"] = args.au_model
    if args.emotion_model:
        overrides["emotion_model"] = None if args.emotion_model == "none" else args.emotion_model
    if args.action_gate:
        overrides["action_gate"] = None if args.action_gate == "none" else args.action_gate
    overrides["all_aus"] = args.all_aus
    overrides.update(spotter_overrides(args))
    return PipelineConfig(**overrides)


class Progress:
    """Frames done, rate and time left: rewritten in place on a terminal; in a log (not a TTY),
    one line at most every `every_s` seconds, so that lines never run together."""

    def __init__(self, stream=None, every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self.start = time.monotonic()
        self.last = None

    def __call__(self, done: int, total) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not self.tty and not final and self.last is not None and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        text = f"{done}/{total} frames" if total else f"{done} frames"
        text += f", {rate:.1f} frames/s"
        if total and rate > 0 and done < total:
            text += f", about {_duration((total - done) / rate)} left"
        if self.tty:
            print(f"\r{text}\x1b[K", end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)

    def end(self) -> None:
        if self.tty and self.last is not None:
            print(file=self.stream)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _raise_terminated(signum, frame):
    raise Terminated()


def run(args) -> int:
    from microexp.edge.analysis import AnalysisOptions, analyse
    from microexp.edge.pipeline import Pipeline
    from microexp.edge.sources import FrameSource
    if args.source is None:
        args.source = str(SAMPLE_CLIP)
        print(f"microexp run: no source given, analysing the sample clip {args.source}", file=sys.stderr)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"microexp run: --out {out} is a file, not a folder", file=sys.stderr)
        return 2
    earlier = [name for name in RESULT_FILES if (out / name).exists()]
    if earlier and not args.overwrite:
        print(f"microexp run: {out} holds an earlier run's results ({', '.join(earlier)}); pass --overwrite "
              "to replace them, or choose another --out", file=sys.stderr)
        return 2
    config = config_from(args)
    progress = Progress(every_s=args.progress_interval)
    # systemd and container runtimes stop a service with SIGTERM: end the run as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with Pipeline(config) as pipe:
            size = args.size or (None, None)
            source = FrameSource(args.source, fps=args.rate or args.fps, width=size[0], height=size[1],
                                 loop=args.loop)
            reason = None if args.stills else source.unrelated_images()
            if reason:
                source.close()
                print(f"microexp run: {args.source} does not look like one clip's frames: {reason}. Pass --stills "
                      "to analyse each photo on its own (face and box only: a single photo shows no motion, so "
                      "no action and no AU), or give a folder of one clip's frames", file=sys.stderr)
                return 2
            if (args.size or args.rate) and not source.live:
                source.close()
                print("microexp run: --size and --rate ask a camera or stream for a mode; for a file or "
                      "folder use --fps", file=sys.stderr)
                return 2
            options = AnalysisOptions(out, format=args.format, max_frames=args.max_frames,
                                      timeline=not args.no_timeline, video=args.video, progress=progress)
            for name in earlier:  # --overwrite, once the source is open: no earlier file stays beside the new
                (out / name).unlink()
            result = analyse(pipe, source, options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    progress.end()
    if result.ended != COMPLETE:
        print(f"microexp run: {result.message}; the rows written so far are complete", file=sys.stderr)
    if result.summary.get("ended_early"):
        print(f"microexp run: {result.summary['ended_early']}", file=sys.stderr)
    for line in result.summary.get("licence", []):
        print(f"model terms: {line}", file=sys.stderr)
    if result.summary.get("experimental_aus"):
        print(f"note: experimental AU columns (below the quality bar, see model_info.json): "
              f"{', '.join(result.summary['experimental_aus'])}", file=sys.stderr)
    for note in result.summary.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps(result.summary))
    return 0 if result.ended == COMPLETE else 130 if result.ended == INTERRUPTED else 1
