"""The `microexp` command. Subcommands whose code needs torch import it only when called, so
the runtime's own commands work on an install without torch."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="microexp", description="facial micro-expression analysis at the edge")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="analyse a video, folder of frames or camera", add_help=False)
    sub.add_parser("bench", help="per-frame latency beside the seed-style baseline", add_help=False)
    sub.add_parser("train", help="train and evaluate models (needs the [train] extra)", add_help=False)
    sub.add_parser("synth", help="synthetic micro-expression clips with ground truth", add_help=False)
    sub.add_parser("spot-eval", help="spotting score (MEGC interval metric) on a synthetic set", add_help=False)
    sub.add_parser("au-eval", help="AU decisions at the planted apexes of a synthetic set", add_help=False)
    sub.add_parser("flow-report", help="end-point error of each flow mode on a synthetic set", add_help=False)
    sub.add_parser("export", help="checkpoint -> ONNX / INT8 / TensorRT (needs the [train] extra)", add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "run":
        return run_command(argv[1:])
    if argv[0] == "bench":
        from .bench import main as bench_main
        return bench_main(argv[1:])
    if argv[0] in ("synth", "spot-eval", "au-eval", "flow-report"):
        from microexp.training import synth_cli
        return synth_cli.main(argv[0], argv[1:])
    if argv[0] == "train":
        try:
            from microexp.training import cli as training_cli
        except ImportError as err:
            print(f"microexp train: needs the training extra ({err}); "
                  "pip install torch==2.13.0 && pip install 'microexp-edge[train]'", file=sys.stderr)
            return 2
        parser = training_cli.build_parser(argparse.ArgumentParser(prog="microexp train"))
        args = parser.parse_args(argv[1:])
        return training_cli.run(args, argv[1:])
    if argv[0] == "export":
        try:
            from microexp.export import cli as export_cli
        except ImportError as err:
            print(f"microexp export: needs the training extra ({err})", file=sys.stderr)
            return 2
        return export_cli.run(export_cli.build_parser(argparse.ArgumentParser(prog="microexp export")).parse_args(argv[1:]))
    parser.parse_args(argv)  # prints the usage error for an unknown command
    return 2


def run_command(argv) -> int:
    import json
    from pathlib import Path

    from microexp.export.tensorrt_build import PRECISIONS

    from .backends import BACKENDS

    p = argparse.ArgumentParser(prog="microexp run", description="per-frame AU probabilities, motion and "
                                "micro-expression events for a video, a folder of frames or a camera")
    p.add_argument("source", nargs="?", help="video file, folder of frames (SAMM/CASME II layout), camera "
                   "index, /dev/videoN, v4l2://, csi://N, rtsp://..., or a GStreamer pipeline "
                   "(default: the shipped synthetic sample clip)")
    p.add_argument("--out", default="microexp_out", help="output folder (default: microexp_out)")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--flow", default="farneback", help="farneback (reference, native), farneback-opencv (same through cv2), farneback-fast "
                   "(fast mode, 152 px crop), dis-ultrafast, dis-fast, dis-medium, tvl1 (slow)")
    p.add_argument("--crop", type=int, help="aligned crop size in px (default: 224; 152 with --flow farneback-fast)")
    p.add_argument("--track-level", type=int, choices=range(5), metavar="{0..4}",
                   help="pyramid level the face tracking stops at: 0 full resolution (default), "
                        "1 half resolution (default with --flow farneback-fast)")
    p.add_argument("--reference", default="fixed", choices=("fixed", "lag", "refresh"))
    p.add_argument("--fps", type=float, help="override the source's frame rate (folders default to 200)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--loop", action="store_true", help="start a file or folder again at its end "
                   "(demos, soak tests; stop with --max-frames or Ctrl-C)")
    p.add_argument("--au-model", help="ONNX AU model (default: the shipped one)")
    p.add_argument("--emotion-model", help="ONNX emotion model (default: the shipped one; 'none' to skip)")
    p.add_argument("--spotter-model", nargs="?", const="default",
                   help="run a streaming spotting model per frame (spot_* columns); without a path, the "
                        "shipped learned spotter")
    p.add_argument("--spot-score", choices=("motion", "motion_upper", "motion_lower", "motion_local", "learned"),
                   default="motion_local",
                   help="what the event detector follows (default: motion_local; 'learned': the spotter "
                        "model's 1 - p(none), the shipped spotter unless --spotter-model names one)")
    p.add_argument("--spot-threshold", type=float,
                   help="fixed detector threshold (default: the spotter model's for 'learned', else baseline + k MAD)")
    p.add_argument("--detect-score", type=float, default=0.9,
                   help="lowest MTCNN score that starts a face track (default 0.9)")
    p.add_argument("--face", default="largest",
                   help="which face to track: largest (default), central (nearest the frame centre), or X,Y "
                        "(the face at that pixel of the first frame); unless largest, a lost track is "
                        "re-acquired on the face nearest where it was lost")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="where the models run: auto (native TensorRT where installed with an NVIDIA "
                        "driver, else ONNX Runtime), onnxruntime, ort-cpu, ort-cuda, ort-tensorrt, tensorrt")
    p.add_argument("--trt-precision", default="fp32", choices=PRECISIONS,
                   help="precision of native TensorRT engines (built on first use, then cached)")
    p.add_argument("--no-timeline", action="store_true", help="skip the PNG timeline")
    p.add_argument("--video", action="store_true", help="also write an annotated annotated.mp4")
    p.add_argument("--openface", action="store_true",
                   help="add OpenFace-style AUxx_c presence columns (at the model's thresholds)")
    args = p.parse_args(argv)
    from .outputs import EventWriter, FrameWriter
    from .timeline import Timeline
    from .pipeline import Pipeline, PipelineConfig
    from .sources import FrameSource, SourceLost
    from .flow import FAST_CROP, FAST_TRACK_LEVEL
    fast = args.flow == "farneback-fast"
    crop = args.crop or (FAST_CROP if fast else 224)
    track_level = args.track_level if args.track_level is not None else (FAST_TRACK_LEVEL if fast else 0)
    overrides = dict(flow=args.flow, reference=args.reference, threads=args.threads,
                     detect_score=args.detect_score, crop_size=crop, face=args.face,
                     track_level=track_level, backend=args.backend, trt_precision=args.trt_precision)
    if args.au_model:
        overrides["au_model"] = args.au_model
    if args.emotion_model:
        overrides["emotion_model"] = None if args.emotion_model == "none" else args.emotion_model
    if args.spotter_model or args.spot_score == "learned":
        from .pipeline import DEFAULT_SPOTTER
        overrides["spotter_model"] = args.spotter_model if args.spotter_model not in (None, "default") \
            else str(DEFAULT_SPOTTER)
    overrides["spot_score"] = args.spot_score
    overrides["spot_threshold"] = args.spot_threshold
    if args.source is None:
        args.source = str(Path(__file__).parent / "samples" / "sample_clip.mp4")
        print(f"microexp run: no source given, analysing the sample clip {args.source}", file=sys.stderr)
    try:
        pipe = Pipeline(PipelineConfig(**overrides))
        source = FrameSource(args.source, fps=args.fps, loop=args.loop)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"microexp run: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    au_names = pipe.au_model.labels if pipe.au_model else []
    emotions = pipe.emotion_model.labels if pipe.emotion_model else []
    spotting = pipe.spotter_model.labels if pipe.spotter_model else []
    frames_path = out / f"frames.{args.format}"
    try:
        total = None if args.loop else len(source)
    except TypeError:
        total = None
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    done = lost = status = 0
    timeline = Timeline(au_names)
    thresholds = pipe.au_model.thresholds if (args.openface and pipe.au_model) else None
    video = None
    if args.video:
        from .annotate import AnnotatedVideo
        video = AnnotatedVideo(out / "annotated.mp4", source.fps)
    pipe.use_fps(source.fps)
    with FrameWriter(frames_path, au_names, emotions, args.format, thresholds, spotting) as rows:
        events = EventWriter(out / "events.jsonl")
        try:
            for frame in source:
                result = pipe.process(frame.image, frame.index, frame.timestamp)
                rows.write(result)
                if video is not None:
                    video.write(frame.image, result)
                timeline.add(result)
                if result.event is not None:
                    events.write(result.event)
                done += 1
                lost += not result.success
                if total and (done % 25 == 0 or done == total):
                    print(f"\r{done}/{total} frames", end="", file=sys.stderr, flush=True)
                if args.max_frames and done >= args.max_frames:
                    break
        except KeyboardInterrupt:
            print("\ninterrupted: the rows written so far are complete", file=sys.stderr)
            status = 130
        except SourceLost as err:
            print(f"\nmicroexp run: {err}; the rows written so far are complete", file=sys.stderr)
            status = 1
        finally:
            events.close()
            source.close()
            if video is not None:
                video.close()
    print(file=sys.stderr)
    summary = {"frames": done, "lost": lost, "events": events.count, "rows": str(frames_path),
               "events_file": str(events.path)}
    if video is not None and video.writer is not None:
        summary["video"] = str(video.path)
    if not args.no_timeline and done >= 2:
        summary["timeline"] = str(timeline.save(out / "timeline.png", truth=_annotation(args.source, source.fps)))
    if source.skipped:
        summary["unreadable_images"] = len(source.skipped)
    print(json.dumps(summary))
    return status


def _annotation(source: str, fps: float):
    """Annotated intervals (seconds) of a clip that has a samm.csv-style sheet beside it
    (the sample clip: sample_clip.csv), else None."""
    import csv
    from pathlib import Path
    sheet = Path(source).with_suffix(".csv")
    if not sheet.is_file():
        return None
    with open(sheet, newline="") as f:
        return [((int(r["Onset Frame"]) - 1) / fps, (int(r["Offset Frame"]) - 1) / fps)
                for r in csv.DictReader(f, delimiter=";")]


if __name__ == "__main__":
    sys.exit(main())
