"""`microexp train ...`: LOSO evaluation, a single subject split, the final fit, the streaming
CNN-LSTM and the learned spotter (microexp.training.runs and .spotter do the work).

    microexp train loso --set megc --data DIR --out runs/megc-edge [--preset edge] [--json]
    microexp train split --set samm-au --data DIR --test-subjects sub006,sub007 --out DIR
    microexp train fit --set megc --data DIR --out model.pt [--metrics runs/megc-edge/summary.json]
    microexp train sequence --data DIR --out cnn_lstm.pt
    microexp train spotter --data SYNTH_DIR [...] --dev SYNTH_DIR --out spotter.pt [--init cnn_lstm.pt]
    microexp train graph-spotter --data MIXED_SYNTH_DIR [...] --dev MIXED_SYNTH_DIR --out graph_spotter.pt
    microexp train stcnn --data DIR [...] --layout samm|casme2|smic --out RUN_DIR [--save-model stcnn.pt]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from microexp.training.presets import PRESETS, SETS


def add_common(p):
    p.add_argument("--set", choices=sorted(SETS), required=True,
                   help="megc: 3-class emotion on the composite; samm-au: multi-label AUs")
    p.add_argument("--data", required=True, help="folder holding the public data set's files")
    p.add_argument("--preset", choices=sorted(PRESETS), default="edge")
    p.add_argument("--model-args", help="JSON overriding the preset's model arguments")
    p.add_argument("--input", choices=("composite", "whole"), default="composite")
    p.add_argument("--scale", type=float, default=1 / 255, help="input multiplier (1.0 = raw 0..255)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--flip", action="store_true", help="mirror augmentation (negates u)")
    p.add_argument("--class-balance", action="store_true")
    p.add_argument("--threshold", type=float, default=0.5, help="fixed AU decision threshold")
    p.add_argument("--pos-weight-cap", type=float, metavar="W",
                   help="AU: bound each AU's BCE pos_weight (negatives/positives in the training fold) at W")
    p.add_argument("--inner-thresholds", action="store_true",
                   help="AU: choose per-AU thresholds on an inner split of the training subjects")
    p.add_argument("--landmarks", choices=("fallback", "mtcnn"), default="fallback",
                   help="composite regions: HTNet's fixed points, or MTCNN's on each 28x28 apex face")
    p.add_argument("--landmark-jitter", type=int, default=0, metavar="PX",
                   help="training: move each composite landmark by a random -PX..PX offset per axis")
    p.add_argument("--extra-maps", metavar="FILE",
                   help="AU, linear model: extra training rows (`microexp train au-maps`) added to every "
                        "training fold, never tested on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", required=True)
    loso = sub.add_parser("loso", help="leave-one-subject-out evaluation")
    add_common(loso)
    loso.add_argument("--protocol", choices=("honest", "oracle-epoch"), default="honest")
    loso.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    loso.add_argument("--workers", type=int, default=0, help="parallel folds (0: one per core, CPU only)")
    loso.add_argument("--folds", help="comma-separated subjects to run (default: all)")
    loso.add_argument("--checkpoint-every", type=int, default=10)
    loso.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                      help="folds (and ensemble members, sweep inner folds) as Ray tasks: on a local Ray instance, "
                           "or the cluster at ADDRESS (host:6379 or auto); the run folder must be on storage every "
                           "node sees")
    loso.add_argument("--sweep", metavar="GRID",
                      help="settings to choose from per fold, e.g. 'lr=5e-4,1e-3;epochs=40,60': each fold picks one "
                           "by an inner leave-one-subject-out over its training subjects (never its test subject)")
    loso.add_argument("--int8-eval", action="store_true",
                      help="also export each fold's model to ONNX and INT8 and score those predictions")
    loso.add_argument("--ensemble", type=int, default=1,
                      help="models per fold (seeds SEED, SEED+1, ...), probabilities averaged")
    loso.add_argument("--tta-flip", action="store_true",
                      help="emotion: average each model's output with its output on the mirrored maps")
    loso.add_argument("--probe-landmarks", metavar="X1,Y1,...,X5,Y5",
                      help="also score every model on test composites built at these fixed points "
                           "(an ablation in the summary; the result is unchanged)")
    split = sub.add_parser("split", help="one model, the named subjects held out")
    add_common(split)
    split.add_argument("--test-subjects", required=True)
    split.add_argument("--out", required=True)
    fit = sub.add_parser("fit", help="final fit on every subject, saved as a checkpoint with a model card")
    add_common(fit)
    fit.add_argument("--out", required=True, help="checkpoint path (.pt); the card is written beside it")
    fit.add_argument("--metrics", help="summary.json of the LOSO run that measured this configuration")
    seq = sub.add_parser("sequence", help="the streaming CNN-LSTM on sequences built from the composite maps")
    seq.add_argument("--data", required=True, help="folder of the MEGC composite (official HTNet layout)")
    seq.add_argument("--out", required=True, help="checkpoint path (.pt); the card is written beside it")
    seq.add_argument("--epochs", type=int, default=15)
    seq.add_argument("--copies", type=int, default=4, help="sequences drawn per map and epoch")
    seq.add_argument("--seed", type=int, default=0)
    seq.add_argument("--json", action="store_true")
    spot = sub.add_parser("spotter", help="the learned spotter on maps the runtime encodes from generated clips")
    spot.add_argument("--data", nargs="+", required=True, help="sets written by `microexp synth` (training)")
    spot.add_argument("--dev", help="a further generated set: chooses the event threshold stored with the model")
    spot.add_argument("--out", required=True, help="checkpoint path (.pt); the card is written beside it")
    spot.add_argument("--init", help="warm start from a streaming CNN-LSTM checkpoint")
    spot.add_argument("--flow", default="farneback", help="the runtime flow mode the maps are encoded with")
    spot.add_argument("--fps", type=float, default=200.0)
    add_window_training(spot, steps=300, window=150, batch_size=12, lr=1e-3)
    graph = sub.add_parser("graph-spotter", help="the AU-aware graph spotter (none / macro / micro per frame) "
                                                 "on region features the runtime computes from generated clips")
    graph.add_argument("--data", nargs="+", required=True, help="sets written by `microexp synth --mixed` (training)")
    graph.add_argument("--dev", help="a further generated set: chooses the event threshold stored with the model")
    graph.add_argument("--out", required=True, help="checkpoint path (.pt); the card is written beside it")
    graph.add_argument("--graph", help="edge weights JSON (python -m microexp.training.au_graph; default: the "
                                       "shipped one from SAMM's AU annotations)")
    graph.add_argument("--flow", default="farneback", help="the runtime flow mode the features are computed with")
    graph.add_argument("--fps", type=float, help="the sets' frame rate (default: their set.json's, which must agree)")
    add_window_training(graph, steps=600, window=128, batch_size=16, lr=2e-3)
    st = sub.add_parser("stcnn", help="MicroExpSTCNN, the 3D-CNN on stacks of aligned grey frames (LOSO by default)")
    st.add_argument("--data", nargs="+", required=True,
                    help="frame folders: SAMM layout with samm.csv (also sets from `microexp synth`), CASME II, SMIC")
    st.add_argument("--layout", default="samm", choices=("samm", "casme2", "smic"))
    st.add_argument("--sheet", help="the annotation sheet if not DATA/samm.csv (CASME II: its coding .xlsx/.csv)")
    st.add_argument("--out", required=True, help="run folder: summary.json")
    st.add_argument("--protocol", default="loso", choices=("loso", "random-split"),
                    help="loso (subject-independent, default) or random-split (the thesis' protocol: mixes "
                         "subjects, reported with a warning)")
    st.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                    help="random in-plane rotation of each stack within +-DEG degrees while training")
    st.add_argument("--epochs", type=int, default=60)
    st.add_argument("--batch-size", type=int, default=16)
    st.add_argument("--lr", type=float, default=3e-4)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--save-model", metavar="PT", help="also train on every clip and save this checkpoint (+ card)")
    st.add_argument("--json", action="store_true")
    maps = sub.add_parser("au-maps", help="AU training rows from generated clips: the runtime's hsv28 map at "
                                          "each planted apex, labelled with the planted AUs")
    maps.add_argument("--data", nargs="+", required=True, help="sets written by `microexp synth`")
    maps.add_argument("--out", required=True, help=".npz file")
    maps.add_argument("--fps", type=float, default=200.0)


def add_window_training(p, *, steps: int, window: int, batch_size: int, lr: float) -> None:
    """The options of a spotter trained on random windows of generated clips (the learned and the
    graph spotter share them; their defaults differ)."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--window", type=int, default=window, help="frames per training window")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--balance", type=float, default=0.5,
                   help="class weights = inverse frequency to this power (1 fully balanced)")
    p.add_argument("--no-flip", action="store_true", help="no mirror augmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def parse_points(text):
    """'x1,y1,...,x5,y5' -> [[x1, y1], ...]."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--probe-landmarks: expected 10 comma-separated numbers, got {text!r}") from None
    if len(values) != 10:
        raise ValueError(f"--probe-landmarks: expected 10 comma-separated numbers (5 x, y points), "
                         f"got {len(values)}")
    return [values[i:i + 2] for i in range(0, 10, 2)]


def experiment_from(args):
    from microexp.training.presets import make_experiment
    return make_experiment(
        args.set, args.preset, args.model_args, input=args.input, scale=args.scale, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, flip=args.flip,
        class_balance=args.class_balance, protocol=getattr(args, "protocol", "honest"),
        threshold=args.threshold, inner_thresholds=args.inner_thresholds,
        ensemble=getattr(args, "ensemble", 1), tta_flip=getattr(args, "tta_flip", False),
        pos_weight_cap=args.pos_weight_cap, landmarks=args.landmarks, landmark_jitter=args.landmark_jitter,
        probe_landmarks=parse_points(getattr(args, "probe_landmarks", None)), extra_maps=args.extra_maps,
        seed=args.seed)


def _command_line(args) -> str:
    """The command as typed, for model cards and summaries."""
    argv = args.argv if args.argv is not None else sys.argv[2:]
    return "microexp train " + " ".join(shlex.quote(a) for a in argv)


def run(args) -> int:
    from microexp.training import runs
    command = _command_line(args)
    if args.train_command == "sequence":
        summary = runs.sequence(args.data, args.out, command=command, epochs=args.epochs, copies=args.copies,
                                seed=args.seed, progress=not args.json)
        print(json.dumps(summary, indent=1) if args.json else
              f"frame UF1 {summary['frame_uf1']:.4f}, spotting F1 {summary['spotting']['f1']:.4f}\n"
              f"checkpoint: {summary['checkpoint']}")
        return 0
    if args.train_command == "spotter":
        return _spotter(args, command)
    if args.train_command == "au-maps":
        return _au_maps(args, command)
    if args.train_command == "graph-spotter":
        return _graph_spotter(args, command)
    if args.train_command == "stcnn":
        return _stcnn(args, command)
    exp = experiment_from(args)
    if args.train_command == "loso":
        fold_extra = None
        if args.int8_eval:
            from microexp.export.fold_deployment import deployed_predictions as fold_extra
        from microexp.training.sweep import parse_grid
        summary, paths = runs.loso(exp, args.set, args.data, args.out, command=command, workers=args.workers,
                                   folds=args.folds.split(",") if args.folds else None,
                                   checkpoint_every=args.checkpoint_every, fold_extra=fold_extra,
                                   ray_address=args.ray, sweep=parse_grid(args.sweep) if args.sweep else None)
    elif args.train_command == "split":
        summary, paths = runs.split(exp, args.set, args.data, args.out, args.test_subjects.split(","),
                                    command=command)
    else:
        summary, paths = runs.fit(exp, args.set, args.data, args.out, command=command, metrics=args.metrics)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
        return 0
    if "full" in summary:
        print(f"Full UF1 {summary['full']['uf1']:.4f}  UAR {summary['full']['uar']:.4f}  ({summary['protocol']})")
    if "au" in summary:
        key = next(k for k in summary["au"] if k.startswith("mean_f1"))
        print(f"mean F1 over AUs with >= 10 positives: {summary['au'][key]:.4f}  ({summary['protocol']})")
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0


def _au_maps(args, command: str) -> int:
    from microexp.training.au_maps import apex_maps, save_maps
    from microexp.training.synth import AU_FIELDS
    labels = [f"AU{a:02d}" for a in sorted(AU_FIELDS)]
    maps, targets, subjects = apex_maps(args.data, labels, args.fps)
    path = save_maps(args.out, maps, targets, subjects, labels,
                     {"sets": list(args.data), "fps": args.fps, "command": command})
    print(json.dumps({"out": str(path), "rows": len(maps), "subjects": sorted(set(subjects.tolist())),
                      "positives": dict(zip(labels, targets.sum(0).tolist()))}, indent=1))
    return 0


def _spotter(args, command: str) -> int:
    from microexp.training.spotter import SpotterSettings, train_spotter
    settings = SpotterSettings(data=args.data, out=args.out, dev=args.dev, init=args.init, flow=args.flow,
                               fps=args.fps, steps=args.steps, window=args.window, batch_size=args.batch_size,
                               lr=args.lr, balance=args.balance, flip=not args.no_flip, seed=args.seed)
    summary = train_spotter(settings, command, progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    if summary["development"]:
        d = summary["development"]
        print(f"development F1 {d['f1']:.4f} ({d['tp']}/{d['n_true']} events, {d['n_pred']} predicted) "
              f"at threshold {d['threshold']}")
    print(f"checkpoint: {summary['checkpoint']}\nmodel_card: {summary['model_card']}")
    return 0


def _graph_spotter(args, command: str) -> int:
    from microexp.training.graph_spotter import GraphSpotterSettings, train
    settings = GraphSpotterSettings(data=args.data, out=args.out, dev=args.dev, graph=args.graph, flow=args.flow,
                                    fps=args.fps, steps=args.steps, window=args.window, batch_size=args.batch_size,
                                    lr=args.lr, balance=args.balance, flip=not args.no_flip, seed=args.seed)
    summary = train(settings, command, progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    if summary["development"]:
        d = summary["development"]
        print(f"development F1 all {d['all']['f1']:.4f}, micro {d['micro']['f1']:.4f}, macro {d['macro']['f1']:.4f} "
              f"at threshold {d['threshold']}")
    print(f"checkpoint: {summary['checkpoint']}\nmodel_card: {summary['model_card']}")
    return 0


def _stcnn(args, command: str) -> int:
    import warnings

    from microexp.training import stcnn
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="random-split mixes subjects")  # said below, once
        summary = stcnn.run(args.data, args.layout, args.out, sheet=args.sheet, protocol=args.protocol,
                            save_model=args.save_model, command=command, progress=not args.json, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, rotate=args.rotate, seed=args.seed)
    if args.protocol == "random-split":
        print(f"microexp train stcnn: warning: {stcnn.RANDOM_SPLIT_WARNING}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{summary['protocol']}: accuracy {summary['accuracy']:.4f}, UF1 {summary['uf1']:.4f}, "
          f"UAR {summary['uar']:.4f} ({summary['samples']} clips)")
    for key in ("summary", "checkpoint"):
        if key in summary:
            print(f"{key}: {summary[key]}")
    return 0
