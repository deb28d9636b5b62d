"""The training commands' work, as functions: a LOSO evaluation, a subject split, the final fit
and the streaming CNN-LSTM, each from a public data set's folder to files in an output folder.
They return a summary (and the paths written); the CLI prints them."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .experiment import Experiment

Paths = Dict[str, Path]


def load_set(name: str, root: str):
    """(maps, targets, subjects, datasets or None, label names, provenance) of a training set:
    'megc' (3-class emotion on the MEGC2019 composite) or 'samm-au' (SAMM AU multi-label)."""
    from .datasets import MegcComposite, SammAUMaps
    if name == "megc":
        ds = MegcComposite(root)
        return (ds.load_maps(), ds.labels, np.asarray(ds.subjects), ds.datasets,
                ["negative", "positive", "surprise"],
                f"MEGC2019 composite ({len(ds)} clips, {len(set(ds.subjects))} subjects) from "
                "github.com/wangzhifengharrison/HTNet")
    if name != "samm-au":
        raise ValueError(f"training set must be 'megc' or 'samm-au', got {name!r}")
    ds = SammAUMaps(root)
    keep = [i for i, n in enumerate(ds.au_names) if ds.labels[:, i].sum() > 0]
    return (ds.load_maps(), ds.labels[:, keep].astype(np.int64), np.asarray(ds.subjects), None,
            [ds.au_names[i].replace("_", "") for i in keep],
            f"SAMM AU multi-label maps ({len(ds)} clips, {len(set(ds.subjects))} subjects) from "
            "github.com/joelibaceta/htnet-microexp-au-multilabel")


def _extra(exp: Experiment, labels):
    """The experiment's extra training rows (maps, targets) in `labels`' order, or None."""
    if exp.extra_maps is None:
        return None
    from .au_maps import load_maps
    maps, targets, _ = load_maps(exp.extra_maps, labels)
    return maps, targets


def _landmarks(exp: Experiment, data: str):
    """Per-sample composite landmarks when the experiment asks for MTCNN's, else (None, None)."""
    if exp.landmarks != "mtcnn":
        return None, None
    from .datasets import MegcComposite
    landmarks, found = MegcComposite(data).apex_landmarks()
    print(f"composite landmarks: MTCNN found a face on {int(found.sum())} of {len(found)} apex "
          "faces; HTNet's fallback points for the rest", file=sys.stderr)
    return landmarks, found


def loso(exp: Experiment, set_name: str, data: str, out: str, *, command: str, workers: int = 0,
         folds: Optional[Sequence[str]] = None, checkpoint_every: int = 10, fold_extra=None,
         progress: bool = True, ray_address: Optional[str] = None, sweep=None) -> Tuple[dict, Paths]:
    """Every leave-one-subject-out fold (resumed from `out`), pooled into a summary and report.
    `workers` 0: one per core (one on CUDA). `fold_extra`: see loso.FoldExtra. `ray_address`:
    the folds as Ray tasks (edge.distributed). `sweep`: a grid of settings each fold chooses
    from on inner folds (training.sweep)."""
    from .fitting import default_device
    from .loso import run_loso
    from .report import summarise, write_report
    if fold_extra is not None and (exp.ensemble > 1 or exp.tta_flip):
        raise ValueError("--int8-eval scores one exported model per fold; not with --ensemble or --tta-flip")
    maps, targets, subjects, datasets, labels, _ = load_set(set_name, data)
    landmarks, found = _landmarks(exp, data)
    workers = workers or (os.cpu_count() or 1)
    if default_device().type == "cuda" and ray_address is None:
        workers = 1  # one process owns the GPU
    results = run_loso(exp, maps, targets, subjects, out_dir=out, workers=workers, folds=folds,
                       checkpoint_every=checkpoint_every, fold_extra=fold_extra, dataset=set_name,
                       labels=labels, landmarks=landmarks, progress=progress, extra=_extra(exp, labels),
                       ray_address=ray_address, sweep=sweep)
    summary = summarise(exp, results, datasets, labels if exp.task == "au" else None)
    summary["command"] = command
    if sweep is not None:  # what each fold chose, on its inner folds
        summary["sweep"] = {"grid": sweep, "chosen": {r["subject"]: r.get("config") for r in results},
                            "inner_scores": {r["subject"]: r.get("inner_scores") for r in results},
                            "selection": "inner leave-one-subject-out over each fold's training subjects"}
    if found is not None:
        summary["landmarks_found"] = int(found.sum())
    return summary, write_report(summary, out)


def split(exp: Experiment, set_name: str, data: str, out: str, test_subjects: Sequence[str], *,
          command: str) -> Tuple[dict, Paths]:
    """One model trained without `test_subjects`, scored on them."""
    from .fitting import predict, train_model
    from .inputs import prepare_inputs
    from .report import summarise, write_report
    maps, targets, subjects, datasets, labels, _ = load_set(set_name, data)
    test_set = set(test_subjects)
    unknown = test_set - set(subjects.tolist())
    if unknown:
        raise ValueError(f"no samples for subject(s) {sorted(unknown)}")
    landmarks, _ = _landmarks(exp, data)
    test = np.isin(subjects, list(test_set))
    lm_train, lm_test = (None, None) if landmarks is None else (landmarks[~test], landmarks[test])
    model = train_model(exp, maps[~test], targets[~test], landmarks=lm_train, subjects=subjects[~test],
                        extra=_extra(exp, labels))
    pred = predict(exp, model, prepare_inputs(exp, maps[test], landmarks=lm_test))
    fold = {"subject": ",".join(sorted(test_set)), "indices": np.flatnonzero(test).tolist(),
            "pred": pred.tolist(), "true": targets[test].tolist(), "epoch": exp.epochs}
    summary = summarise(exp, [fold], datasets, labels if exp.task == "au" else None)
    summary["command"] = command
    return summary, write_report(summary, out)


def fit(exp: Experiment, set_name: str, data: str, out: str, *, command: str,
        metrics: Optional[str] = None) -> Tuple[dict, Paths]:
    """The final model on every subject, saved as a checkpoint with its model card; `metrics`:
    the summary.json of the LOSO run that measured this configuration, quoted in the card."""
    from microexp.edge.atomic_io import atomic_write_text

    from .checkpoint import load_checkpoint, model_card, save_checkpoint
    from .fitting import inner_thresholds, train_model
    from .report import au_quality, metrics_for_one_model
    brief = {}
    if metrics:
        try:
            brief = metrics_for_one_model(json.loads(Path(metrics).read_text()), exp)
        except ValueError as err:
            raise ValueError(f"--metrics {metrics}: {err}") from None
    maps, targets, subjects, _, labels, provenance = load_set(set_name, data)
    landmarks, _ = _landmarks(exp, data)
    thresholds = None
    if exp.task == "au" and exp.inner_thresholds and exp.model != "linear":
        thresholds = inner_thresholds(exp, maps, targets, subjects)
    model = train_model(exp, maps, targets, landmarks=landmarks, subjects=subjects, extra=_extra(exp, labels))
    if getattr(model, "thresholds", None) is not None:  # the linear fit chose them on its inner LOSO
        thresholds = model.thresholds
    quality = au_quality(brief) if exp.task == "au" and brief.get("au") else None
    path = save_checkpoint(out, model, exp, dataset=set_name, labels=labels, metrics=brief,
                           provenance=provenance, thresholds=thresholds, au_quality=quality)
    card = atomic_write_text(Path(out).with_suffix(".md"),
                             model_card(json.loads(json.dumps(load_checkpoint(path).metadata)), exp, command))
    summary = {"checkpoint": str(path), "model_card": str(card), "experiment": exp.to_dict()}
    return summary, {"checkpoint": path, "model_card": card}


def sequence(data: str, out: str, *, command: str, epochs: int = 15, copies: int = 4, seed: int = 0,
             progress: bool = True) -> dict:
    """The streaming CNN-LSTM on sequences built from the MEGC composite maps, scored on
    held-out subjects; the checkpoint and its model card."""
    from microexp.edge.atomic_io import atomic_write_text

    from .checkpoint import save_stream_checkpoint
    from .datasets import MegcComposite
    from .sequences import SequenceSpec
    from .streaming import CLASSES, evaluate_cnn_lstm, held_out_subjects, train_cnn_lstm
    ds = MegcComposite(data)
    maps, labels, subjects = ds.load_maps(), ds.labels, np.asarray(ds.subjects)
    test_subjects = held_out_subjects(subjects.tolist())
    test = np.isin(subjects, test_subjects)
    spec = SequenceSpec()
    model = train_cnn_lstm(maps[~test], labels[~test], spec=spec, epochs=epochs, copies=copies, seed=seed,
                           progress=progress)
    metrics = evaluate_cnn_lstm(model, maps[test], labels[test], spec)
    metrics["held_out_subjects"] = test_subjects
    metrics["command"] = command
    path = save_stream_checkpoint(out, model, labels=list(CLASSES), metrics=metrics,
                                  provenance=f"MEGC2019 composite maps ({len(ds)} clips), held-out "
                                             f"subjects {test_subjects} excluded from training",
                                  spec=spec.__dict__)
    held_out = {k: v for k, v in metrics.items() if k not in ("held_out_subjects", "command")}
    card = atomic_write_text(Path(out).with_suffix(".md"), "\n".join([
        "# Model card: streaming CNN-LSTM spotter", "", f"- Produced by: `{command}`",
        "- Input per step: uvs28 map (u, v, strain), values 0..255 times 1/255; state (h, c) of size "
        f"{model.hidden}", f"- Outputs: logits over {', '.join(CLASSES)}",
        "- Training data: sequences synthesised from the real MEGC composite onset->apex maps "
        "(temporal raised-cosine profile, smooth and sensor noise, encoded by encode_uvs28)",
        "- Licence note: derived from SAMM / CASME II / SMIC features; research use only.",
        f"- Held-out evaluation (subjects {test_subjects}): {json.dumps(held_out)}",
    ]) + "\n")
    return {"checkpoint": str(path), "model_card": str(card), **metrics}
