"""`microexp train ...`: LOSO evaluation, a single subject split, and the final fit.

    microexp train loso --set megc --data DIR --out runs/megc-edge [--preset edge] [--json]
    microexp train split --set samm-au --data DIR --test-subjects sub006,sub007 --out DIR
    microexp train fit --set megc --data DIR --out model.pt [--metrics runs/megc-edge/summary.json]
    microexp train sequence --data DIR --out cnn_lstm.pt
    microexp train spotter --data SYNTH_DIR [...] --dev SYNTH_DIR --out spotter.pt [--init cnn_lstm.pt]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

PRESETS = {
    # HTNet at the size of the seed AU model (about 0.58M parameters with 3 outputs).
    "edge": dict(model="htnet", model_args=dict(dim=64, heads=4, num_hierarchies=2, block_repeats=(2, 2))),
    # The authors' configuration (about 139.6M parameters).
    "official": dict(model="htnet", model_args=dict(dim=256, heads=3, num_hierarchies=3, block_repeats=(2, 2, 10))),
    # The plain CNN the issue quotes as the scale reference.
    "cnn": dict(model="cnn", model_args=dict(width=32)),
    # L2 logistic regression on 4x4-pooled maps, C chosen by LOSO inside the training subjects.
    "linear": dict(model="linear", model_args=dict(pool=4, features="raw", c_grid=[0.001, 0.01, 0.1, 1.0])),
    # The same on HSV-encoded maps decoded to the colour wheel's chroma plane (models/linear.py).
    "linear-chroma": dict(model="linear", model_args=dict(pool=4, features="chroma",
                                                          c_grid=[0.001, 0.01, 0.1, 1.0])),
}


def load_set(name: str, root: str):
    """(maps, targets, subjects, datasets or None, label names, provenance)."""
    from .datasets import MegcComposite, SammAUMaps
    if name == "megc":
        ds = MegcComposite(root)
        return (ds.load_maps(), ds.labels, np.asarray(ds.subjects), ds.datasets,
                ["negative", "positive", "surprise"],
                f"MEGC2019 composite ({len(ds)} clips, {len(set(ds.subjects))} subjects) from "
                "github.com/wangzhifengharrison/HTNet")
    ds = SammAUMaps(root)
    keep = [i for i, n in enumerate(ds.au_names) if ds.labels[:, i].sum() > 0]
    return (ds.load_maps(), ds.labels[:, keep].astype(np.int64), np.asarray(ds.subjects), None,
            [ds.au_names[i].replace("_", "") for i in keep],
            f"SAMM AU multi-label maps ({len(ds)} clips, {len(set(ds.subjects))} subjects) from "
            "github.com/joelibaceta/htnet-microexp-au-multilabel")


def experiment_from_args(args):
    from .experiment import Experiment
    preset = dict(PRESETS[args.preset])
    if args.model_args:
        preset["model_args"] = dict(preset["model_args"], **json.loads(args.model_args))
    return Experiment(task="emotion" if args.set == "megc" else "au", input=args.input,
                      scale=args.scale, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      weight_decay=args.weight_decay, flip=args.flip, class_balance=args.class_balance,
                      protocol=getattr(args, "protocol", "honest"), threshold=args.threshold,
                      inner_thresholds=args.inner_thresholds,
                      ensemble=getattr(args, "ensemble", 1), tta_flip=getattr(args, "tta_flip", False),
                      pos_weight_cap=args.pos_weight_cap,
                      landmarks=args.landmarks, landmark_jitter=args.landmark_jitter,
                      probe_landmarks=parse_points(getattr(args, "probe_landmarks", None)),
                      seed=args.seed, **preset)


def parse_points(text):
    """'x1,y1,...,x5,y5' -> [[x1, y1], ...]; the count is checked by Experiment."""
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


def add_common(p):
    p.add_argument("--set", choices=("megc", "samm-au"), required=True,
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def build_parser(parser=None):
    parser = parser or argparse.ArgumentParser(prog="microexp train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="train_command", required=True)
    loso = sub.add_parser("loso", help="leave-one-subject-out evaluation")
    add_common(loso)
    loso.add_argument("--protocol", choices=("honest", "oracle-epoch"), default="honest")
    loso.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    loso.add_argument("--workers", type=int, default=0, help="parallel folds (0: one per core, CPU only)")
    loso.add_argument("--folds", help="comma-separated subjects to run (default: all)")
    loso.add_argument("--checkpoint-every", type=int, default=10)
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
    spot.add_argument("--steps", type=int, default=300)
    spot.add_argument("--window", type=int, default=150, help="frames per training window")
    spot.add_argument("--batch-size", type=int, default=12)
    spot.add_argument("--lr", type=float, default=1e-3)
    spot.add_argument("--balance", type=float, default=0.5,
                      help="class weights = inverse frequency to this power (1 fully balanced)")
    spot.add_argument("--no-flip", action="store_true", help="no mirror augmentation")
    spot.add_argument("--seed", type=int, default=0)
    spot.add_argument("--json", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run(args, argv)


def run_sequence(args, argv=None):
    from .checkpoint import save_stream_checkpoint
    from .datasets import MegcComposite
    from .sequences import SequenceSpec
    from .streaming import CLASSES, evaluate_cnn_lstm, held_out_subjects, train_cnn_lstm
    ds = MegcComposite(args.data)
    maps, labels, subjects = ds.load_maps(), ds.labels, np.asarray(ds.subjects)
    test_subjects = held_out_subjects(subjects.tolist())
    test = np.isin(subjects, test_subjects)
    spec = SequenceSpec()
    model = train_cnn_lstm(maps[~test], labels[~test], spec=spec, epochs=args.epochs,
                           copies=args.copies, seed=args.seed, progress=not args.json)
    metrics = evaluate_cnn_lstm(model, maps[test], labels[test], spec)
    metrics["held_out_subjects"] = test_subjects
    command = "microexp train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:]))
    metrics["command"] = command
    path = save_stream_checkpoint(args.out, model, labels=list(CLASSES), metrics=metrics,
                                  provenance=f"MEGC2019 composite maps ({len(ds)} clips), held-out "
                                             f"subjects {test_subjects} excluded from training",
                                  spec=spec.__dict__)
    card = Path(args.out).with_suffix(".md")
    card.write_text("\n".join([
        "# Model card: streaming CNN-LSTM spotter", "", f"- Produced by: `{command}`",
        "- Input per step: uvs28 map (u, v, strain), values 0..255 times 1/255; state (h, c) of size "
        f"{model.hidden}", f"- Outputs: logits over {', '.join(CLASSES)}",
        "- Training data: sequences synthesised from the real MEGC composite onset->apex maps "
        "(temporal raised-cosine profile, smooth and sensor noise, encoded by encode_uvs28)",
        "- Licence note: derived from SAMM / CASME II / SMIC features; research use only.",
        f"- Held-out evaluation (subjects {test_subjects}): {json.dumps({k: v for k, v in metrics.items() if k not in ('held_out_subjects', 'command')})}",
    ]) + "\n")
    out = {"checkpoint": str(path), "model_card": str(card), **metrics}
    print(json.dumps(out, indent=1) if args.json else
          f"frame UF1 {metrics['frame_uf1']:.4f}, spotting F1 {metrics['spotting']['f1']:.4f}\ncheckpoint: {path}")
    return 0


def run(args, argv=None):
    import os
    if args.train_command == "sequence":
        return run_sequence(args, argv)
    if args.train_command == "spotter":
        from .spotter import run_command
        summary = run_command(args, "microexp train " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:])))
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            if summary["development"]:
                d = summary["development"]
                print(f"development F1 {d['f1']:.4f} ({d['tp']}/{d['n_true']} events, {d['n_pred']} predicted) "
                      f"at threshold {d['threshold']}")
            print(f"checkpoint: {summary['checkpoint']}\nmodel_card: {summary['model_card']}")
        return 0

    from .loso import default_device, run_loso, train_model, predict, prepare_inputs
    from .report import summarise, write_report
    try:
        exp = experiment_from_args(args)
    except ValueError as err:  # settings that cannot hold together: a message, not a traceback
        raise SystemExit(f"microexp train {args.train_command}: {err}") from None
    if args.train_command == "loso" and args.int8_eval and (exp.ensemble > 1 or exp.tta_flip):
        raise SystemExit("microexp train loso: --int8-eval scores one exported model per fold; "
                         "not with --ensemble or --tta-flip")
    maps, targets, subjects, datasets, labels, provenance = load_set(args.set, args.data)
    command = "microexp train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:]))
    landmarks, found = None, None
    if exp.landmarks == "mtcnn":
        from .datasets import MegcComposite
        landmarks, found = MegcComposite(args.data).apex_landmarks()
        print(f"composite landmarks: MTCNN found a face on {int(found.sum())} of {len(found)} apex "
              "faces; HTNet's fallback points for the rest", file=sys.stderr)
    if args.train_command == "loso":
        workers = args.workers or (os.cpu_count() or 1)
        if default_device().type == "cuda":
            workers = 1  # one process owns the GPU
        folds = args.folds.split(",") if args.folds else None
        results = run_loso(exp, maps, targets, subjects, out_dir=args.out, workers=workers,
                           folds=folds, checkpoint_every=args.checkpoint_every,
                           int8_eval=args.int8_eval, dataset=args.set, labels=labels, landmarks=landmarks)
        summary = summarise(exp, results, datasets, labels if exp.task == "au" else None)
        summary["command"] = command
        if found is not None:
            summary["landmarks_found"] = int(found.sum())
        paths = write_report(summary, args.out)
    elif args.train_command == "split":
        test_set = set(args.test_subjects.split(","))
        unknown = test_set - set(subjects.tolist())
        if unknown:
            raise SystemExit(f"microexp train split: no samples for subject(s) {sorted(unknown)}")
        test = np.isin(subjects, list(test_set))
        lm_train, lm_test = (None, None) if landmarks is None else (landmarks[~test], landmarks[test])
        model = train_model(exp, maps[~test], targets[~test], landmarks=lm_train, subjects=subjects[~test])
        pred = predict(exp, model, prepare_inputs(exp, maps[test], landmarks=lm_test))
        fold = {"subject": ",".join(sorted(test_set)), "indices": np.flatnonzero(test).tolist(),
                "pred": pred.tolist(), "true": targets[test].tolist(), "epoch": exp.epochs}
        summary = summarise(exp, [fold], datasets, labels if exp.task == "au" else None)
        summary["command"] = command
        paths = write_report(summary, args.out)
    else:
        from .checkpoint import model_card, save_checkpoint
        from .report import metrics_for_one_model
        brief = {}
        if args.metrics:
            try:
                brief = metrics_for_one_model(json.loads(Path(args.metrics).read_text()), exp)
            except ValueError as err:
                raise SystemExit(f"microexp train fit: --metrics {args.metrics}: {err}") from None
        thresholds = None
        if exp.task == "au" and exp.inner_thresholds:
            from .loso import inner_thresholds
            thresholds = inner_thresholds(exp, maps, targets, subjects)
        model = train_model(exp, maps, targets, landmarks=landmarks, subjects=subjects)
        path = save_checkpoint(args.out, model, exp, dataset=args.set, labels=labels, metrics=brief,
                               provenance=provenance, thresholds=thresholds)
        card = Path(args.out).with_suffix(".md")
        card.write_text(model_card(json.loads(json.dumps(
            __import__("torch").load(path, weights_only=False)["metadata"])), exp, command))
        summary = {"checkpoint": str(path), "model_card": str(card), "experiment": exp.to_dict()}
        paths = {"checkpoint": path, "model_card": card}
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        if "full" in summary:
            print(f"Full UF1 {summary['full']['uf1']:.4f}  UAR {summary['full']['uar']:.4f}  ({summary['protocol']})")
        if "au" in summary:
            key = next(k for k in summary["au"] if k.startswith("mean_f1"))
            print(f"mean F1 over AUs with >= 10 positives: {summary['au'][key]:.4f}  ({summary['protocol']})")
        for kind, p in paths.items():
            print(f"{kind}: {p}")
    return 0
