"""LOSO results -> pooled metrics, JSON, a markdown table and a PNG.

Metrics are computed on all folds' predictions concatenated (the MEGC protocol, docs/results.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from microexp.edge.atomic_io import atomic_write_json

from .experiment import Experiment
from .metrics import confusion, per_au_f1, uf1_uar

EMOTIONS = ("negative", "positive", "surprise")


def pooled(folds: List[dict]):
    order = np.concatenate([np.asarray(f["indices"]) for f in folds])
    pred = np.concatenate([np.asarray(f["pred"]) for f in folds])
    true = np.concatenate([np.asarray(f["true"]) for f in folds])
    return order, true, pred


def summarise(exp: Experiment, folds: List[dict], datasets: Optional[Sequence[str]] = None,
              au_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    summary = _summarise(exp, folds, datasets, au_names)
    # Deployment check (--int8-eval): the same folds predicted by ONNX Runtime, fp32 and INT8.
    for key in ("pred_ort_fp32", "pred_ort_int8"):
        if folds and all(key in f for f in folds):
            variant = [dict(f, pred=f[key]) for f in folds]
            summary[key.replace("pred_", "")] = {k: v for k, v in _summarise(exp, variant, datasets, au_names).items()
                                                 if k in ("full", "per_dataset", "au", "confusion")}
    if folds and all("members" in f for f in folds):
        summary["ablations"] = ablations(exp, folds, datasets, au_names)
    if exp.protocol == "oracle-epoch" and folds and all("pred_by_epoch" in f for f in folds):
        summary["fixed_epochs"] = fixed_epochs(exp, folds, datasets, au_names)
    return summary


def fixed_epochs(exp: Experiment, folds: List[dict], datasets, au_names) -> List[Dict[str, object]]:
    """An oracle-epoch run's pooled metrics at each fixed epoch, every fold stopped at the same
    epoch. Only the configured last epoch was fixed before the run, so only its row is an honest
    result; the others are a learning curve, and picking the best of them would select on test."""
    rows = []
    for e in range(1, exp.epochs + 1):
        s = _summarise(exp, [dict(f, pred=f["pred_by_epoch"][e - 1]) for f in folds], datasets, au_names)
        rows.append({"epoch": e, "honest": e == exp.epochs,
                     **{k: v for k, v in s.items() if k in ("full", "per_dataset", "au")}})
    return rows


def ablations(exp: Experiment, folds: List[dict], datasets, au_names) -> Dict[str, object]:
    """What each part of an ensemble / flip-averaged run contributes, from the same folds: every
    member alone without flip averaging, each alone with it, and the ensemble without it; with
    probe landmarks, each member (and the plain ensemble) scored on composites built there. These
    are read off the run, not chosen between: the run's result is its configured combination."""
    import dataclasses

    from .fitting import combine_members, decide
    plain = dataclasses.replace(exp, tta_flip=False)

    def score(exp_used, members_of) -> Dict[str, object]:
        variant = [dict(f, pred=decide(exp, combine_members(exp_used, members_of(f)), f.get("thresholds")).tolist())
                   for f in folds]
        s = _summarise(exp, variant, datasets, au_names)
        if exp.task == "emotion":
            return {"full": s["full"], **({"per_dataset": s["per_dataset"]} if "per_dataset" in s else {})}
        key = next(k for k in s["au"] if k.startswith("mean_f1"))
        return {"mean_f1": s["au"][key], "f1": {n: s["au"]["f1"][n] for n in s["au"]["frequent"]}}

    seeds = [m["seed"] for m in folds[0]["members"]]
    out: Dict[str, object] = {"members": [dict(seed=seed, **score(plain, lambda f, k=k: [f["members"][k]]))
                                          for k, seed in enumerate(seeds)]}
    if "probs_probe" in folds[0]["members"][0]:
        def at_probe(members):
            return [dict(m, probs=m["probs_probe"]) for m in members]
        out["members_at_probe_landmarks"] = [
            dict(seed=seed, **score(plain, lambda f, k=k: at_probe([f["members"][k]])))
            for k, seed in enumerate(seeds)]
        if len(seeds) > 1:
            out["ensemble_at_probe_landmarks"] = score(plain, lambda f: at_probe(f["members"]))
    if exp.tta_flip:
        out["members_flip_averaged"] = [dict(seed=seed, **score(exp, lambda f, k=k: [f["members"][k]]))
                                        for k, seed in enumerate(seeds)]
        if len(seeds) > 1:
            out["ensemble_without_flip"] = score(plain, lambda f: f["members"])
    return out


# Settings that change how a LOSO run combines or probes its models, not the model one trains.
_RUN_ONLY = ("ensemble", "tta_flip", "probe_landmarks", "seed")


# The bar an AU's measured figures must pass for the runtime to report it by default
# (microexp.edge.model_spec.ModelSpec.reported_aus): enough positives to measure, and an F1
# that says the decisions carry information.
AU_REPORT_BAR = {"min_positives": 10, "min_f1": 0.3}


def au_quality(measured: Dict[str, object], bar: Optional[Dict[str, float]] = None) -> Dict[str, object]:
    """The AU model's `au_quality` metadata from what its LOSO run measured (metrics_for_one_model):
    per AU its F1, precision, recall and positives, the mean, the bar, the protocol and command."""
    au = measured["au"]

    def clean(v):
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), 4)
    per_au = {n: {"f1": clean(au["f1"][n]), "precision": clean(au.get("precision", {}).get(n)),
                  "recall": clean(au.get("recall", {}).get(n)), "positives": int(au["positives"][n])}
              for n in au["f1"]}
    key = next(k for k in au if k.startswith("mean_f1"))
    return {"per_au": per_au, key: clean(au[key]), "bar": dict(bar or AU_REPORT_BAR),
            "protocol": f"{measured.get('protocol')} leave-one-subject-out, all folds pooled",
            "command": measured.get("command")}


def metrics_for_one_model(summary: Dict[str, object], exp: Experiment) -> Dict[str, object]:
    """What a LOSO summary measured for one model trained like `exp`: the summary's own result
    when the run was one model with the same settings, else (an ensemble run) the ablation of
    the member with exp's seed. Raises ValueError when the run trained other models."""
    # Through Experiment, so that a run saved before a setting existed reads as its default.
    run = Experiment.from_dict(summary["experiment"]).to_dict() if "experiment" in summary else {}
    mine = exp.to_dict()
    if {k: v for k, v in run.items() if k not in _RUN_ONLY} != \
            {k: v for k, v in {**mine, "protocol": summary.get("protocol")}.items() if k not in _RUN_ONLY}:
        raise ValueError("the LOSO run trained models with other settings than this one")
    keys = ("protocol", "full", "per_dataset", "au", "command")
    probed = [m for m in summary.get("ablations", {}).get("members_at_probe_landmarks", []) if m["seed"] == mine["seed"]]
    probe = {"at_probe_landmarks": {"points": run["probe_landmarks"], "full": probed[0]["full"]}} if probed else {}
    if run.get("ensemble", 1) == 1 and not run.get("tta_flip") and run.get("seed") == mine["seed"]:
        return {**{k: summary[k] for k in keys if k in summary}, **probe}
    member = next((m for m in summary.get("ablations", {}).get("members", []) if m["seed"] == mine["seed"]), None)
    if member is None:
        raise ValueError(f"the LOSO run has no model with seed {mine['seed']} to report")
    out = {"protocol": summary.get("protocol"), **member,
           "measured_as": f"member seed {mine['seed']} alone, from the ablations of a "
                          f"{run.get('ensemble', 1)}-model run", **probe}
    return {**out, **({"command": summary["command"]} if "command" in summary else {})}


def _summarise(exp: Experiment, folds: List[dict], datasets: Optional[Sequence[str]] = None,
               au_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    order, true, pred = pooled(folds)
    summary: Dict[str, object] = {"protocol": exp.protocol, "task": exp.task,
                                  "experiment": exp.to_dict(), "folds": len(folds),
                                  "samples": int(len(true))}
    if exp.task == "emotion":
        summary["full"] = uf1_uar(true, pred, 3)
        summary["confusion"] = confusion(true, pred, 3).tolist()
        if datasets is not None:
            names = np.asarray(datasets)[order]
            summary["per_dataset"] = {d: uf1_uar(true[names == d], pred[names == d], 3)
                                      for d in sorted(set(names.tolist()))}
        summary["per_fold"] = {f["subject"]: float(np.mean(np.asarray(f["pred"]) == np.asarray(f["true"])))
                               for f in folds}
    else:
        summary["au"] = per_au_f1(true, pred, list(au_names))
        summary["per_fold"] = {f["subject"]: float(np.mean(np.asarray(f["pred"]) == np.asarray(f["true"])))
                               for f in folds}
    return summary


def markdown(summary: Dict[str, object]) -> str:
    lines = [f"protocol: **{summary['protocol']}**, task: {summary['task']}, "
             f"{summary['folds']} folds, {summary['samples']} samples", ""]
    if summary["task"] == "emotion":
        lines += ["| set | UF1 | UAR |", "|---|---|---|",
                  f"| Full | {summary['full']['uf1']:.4f} | {summary['full']['uar']:.4f} |"]
        for d, m in summary.get("per_dataset", {}).items():
            lines.append(f"| {d} | {m['uf1']:.4f} | {m['uar']:.4f} |")
    else:
        au = summary["au"]
        lines += ["| AU | positives | F1 |", "|---|---|---|"]
        for name in sorted(au["f1"], key=lambda n: -au["positives"][n]):
            if au["positives"][name] > 0:
                lines.append(f"| {name} | {au['positives'][name]} | {au['f1'][name]:.4f} |")
        key = next(k for k in au if k.startswith("mean_f1"))
        lines.append(f"| mean over AUs with >= 10 positives ({', '.join(au['frequent'])}) | | {au[key]:.4f} |")
    if "ablations" in summary:
        lines += ["", "Ablations from the same folds (read off, not selected between):", ""]
        lines += ["| variant | " + ("Full UF1 | UAR |" if summary["task"] == "emotion" else "mean F1 |"),
                  "|---|---|" + ("---|" if summary["task"] == "emotion" else "")]

        def row(name, m):
            return (f"| {name} | {m['full']['uf1']:.4f} | {m['full']['uar']:.4f} |" if "full" in m
                    else f"| {name} | {m['mean_f1']:.4f} |")
        ab = summary["ablations"]
        lines += [row(f"model seed {m['seed']} alone", m) for m in ab["members"]]
        lines += [row(f"model seed {m['seed']} alone, flip-averaged", m) for m in ab.get("members_flip_averaged", [])]
        if "ensemble_without_flip" in ab:
            lines.append(row("ensemble without flip averaging", ab["ensemble_without_flip"]))
        probe = summary["experiment"].get("probe_landmarks")
        lines += [row(f"model seed {m['seed']} alone, test composites at {probe}", m)
                  for m in ab.get("members_at_probe_landmarks", [])]
        if "ensemble_at_probe_landmarks" in ab:
            lines.append(row(f"ensemble without flip averaging, test composites at {probe}",
                             ab["ensemble_at_probe_landmarks"]))
    if "fixed_epochs" in summary:
        lines += ["", "Every fold stopped at the same fixed epoch (same models; only the configured last "
                  "epoch, marked honest, was fixed before the run):", ""]
        emotion = summary["task"] == "emotion"
        lines += ["| epoch | " + ("Full UF1 | UAR |" if emotion else "mean F1 |"), "|---|---|" + ("---|" if emotion else "")]
        for r in summary["fixed_epochs"]:
            name = f"{r['epoch']} (honest)" if r["honest"] else str(r["epoch"])
            if emotion:
                lines.append(f"| {name} | {r['full']['uf1']:.4f} | {r['full']['uar']:.4f} |")
            else:
                key = next(k for k in r["au"] if k.startswith("mean_f1"))
                lines.append(f"| {name} | {r['au'][key]:.4f} |")
    for variant in ("ort_fp32", "ort_int8"):
        if variant in summary:
            v = summary[variant]
            if "full" in v:
                lines.append(f"\n{variant}: Full UF1 {v['full']['uf1']:.4f}, UAR {v['full']['uar']:.4f}")
            else:
                key = next(k for k in v["au"] if k.startswith("mean_f1"))
                lines.append(f"\n{variant}: mean F1 (>= 10 positives) {v['au'][key]:.4f}")
    return "\n".join(lines) + "\n"


def plot(summary: Dict[str, object], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if summary["task"] == "emotion":
        m = np.asarray(summary["confusion"])
        axes[0].imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            axes[0].text(j, i, str(v), ha="center", va="center")
        axes[0].set_xticks(range(3), EMOTIONS)
        axes[0].set_yticks(range(3), EMOTIONS)
        axes[0].set_xlabel("predicted")
        axes[0].set_ylabel("true")
        axes[0].set_title(f"UF1 {summary['full']['uf1']:.3f}  UAR {summary['full']['uar']:.3f}")
    else:
        au = summary["au"]
        names = [n for n in sorted(au["f1"], key=lambda n: -au["positives"][n]) if au["positives"][n] >= 3]
        axes[0].bar(names, [0 if np.isnan(au["f1"][n]) else au["f1"][n] for n in names])
        axes[0].set_ylabel("F1")
        axes[0].tick_params(axis="x", rotation=60)
        axes[0].set_title("per-AU F1 (AUs with >= 3 positives)")
    folds = summary["per_fold"]
    axes[1].bar(range(len(folds)), list(folds.values()))
    axes[1].set_xlabel("held-out subject (sorted)")
    axes[1].set_ylabel("accuracy (exact match)")
    axes[1].set_title(f"per-fold scores, protocol {summary['protocol']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(summary: Dict[str, object], out_dir) -> Dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "summary.json", "markdown": out_dir / "summary.md", "png": out_dir / "summary.png"}
    atomic_write_json(paths["json"], summary)
    tmp = paths["markdown"].with_suffix(".md.tmp")
    tmp.write_text(markdown(summary))
    tmp.replace(paths["markdown"])
    plot(summary, paths["png"])
    return paths
