"""Training checkpoints that describe themselves: weights plus everything the export and the
runtime need to use them (task, label order, input encoding, flow method, normalisation)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from microexp.edge.atomic_io import replacing
from microexp.edge.model_spec import PUBLISHED_FLOWS, passes_bar

from .experiment import Experiment, build_model
from .models import CnnLstm

# How the public maps were made (docs/results.md names the sources): what a runtime must
# reproduce. `flow` is the model contract's token (microexp.edge.model_spec), `flow_method` its words.
INPUT_DESCRIPTIONS = {
    "megc": {"encoding": "uvs28", "channels": ["u", "v", "strain"], "flow": "megc2019-composite",
             "flow_method": PUBLISHED_FLOWS["megc2019-composite"]},
    "samm-au": {"encoding": "hsv28", "channels": ["B", "G", "R"], "flow": "farneback",
                "flow_method": "cv2.calcOpticalFlowFarneback(pyr_scale=0.5, levels=3, winsize=15, "
                               "iterations=3, poly_n=5, poly_sigma=1.2, flags=0) on 224x224 aligned "
                               "gray crops, onset->apex (samm-optflow-28)"},
}


# The terms of weights trained on the public features of SAMM, CASME II and SMIC.
RESEARCH_LICENCE = ("research use only: trained on features derived from SAMM, CASME II and SMIC, which are "
                    "licensed for research use; these weights carry the same terms (the package's code is MIT)")
GENERATED_ONLY = ("trained only on clips generated from public-domain photos: no licensed data set went into "
                  "these weights")


def atomic_torch_save(path, payload) -> Path:
    """torch.save whole or not at all (a temporary file renamed into place)."""
    with replacing(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def save_checkpoint(path, model: nn.Module, exp: Experiment, *, dataset: str, labels: List[str],
                    metrics: Dict[str, object], provenance: str, thresholds=None,
                    au_quality: Optional[Dict[str, object]] = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    desc = INPUT_DESCRIPTIONS[dataset]
    encoding = desc["encoding"] + ("-regions" if exp.input == "composite" and dataset == "megc" else "")
    meta = {
        "task": "emotion" if exp.task == "emotion" else "au",
        "labels": list(labels),
        "input_encoding": encoding,
        "input_channels": desc["channels"],
        "input_scale": exp.scale,
        "flow": desc["flow"],
        "flow_method": desc["flow_method"],
        "output_kind": "logits",
        # AU decision thresholds on sigmoid(logits), in label order (chosen without test data)
        "thresholds": (list(map(float, thresholds)) if thresholds is not None
                       else [exp.threshold] * len(labels)) if exp.task == "au" else None,
        "dataset": dataset,
        "provenance": provenance,
        "metrics": metrics,
        "licence": RESEARCH_LICENCE,
    }
    if au_quality is not None:  # per-AU figures measured by the LOSO run, and the reporting bar
        meta["au_quality"] = au_quality
    if hasattr(model, "inverse_penalty"):  # the linear model: C per output, chosen on held-out training subjects
        meta["inverse_penalty"] = dict(zip(labels, model.inverse_penalty))
    atomic_torch_save(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                             "experiment": exp.to_dict(), "metadata": meta})
    return path


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # in eval mode
    metadata: Dict[str, object]
    # 'classifier' (HTNet, CNN, linear; one map in, logits out) | 'stream' (CNN-LSTM step)
    # | 'graph' (the graph spotter's step: region features and its window state)
    # | 'volume' (MicroExpSTCNN: a stack of grey frames in, logits out)
    kind: str
    experiment: Optional[Experiment] = None  # classifiers only


def load_checkpoint(path) -> LoadedCheckpoint:
    """Any checkpoint this package writes (save_checkpoint, save_stream_checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(payload, dict) and payload.get("model") == "cnn_lstm":
            model = CnnLstm(**payload["config"])
            model.load_state_dict(payload["state_dict"])
            return LoadedCheckpoint(model.eval(), payload["metadata"], "stream")
        if isinstance(payload, dict) and payload.get("model") == "stcnn":
            from .models.stcnn import MicroExpSTCNN
            model = MicroExpSTCNN(**payload["config"])
            model.load_state_dict(payload["state_dict"])
            return LoadedCheckpoint(model.eval(), payload["metadata"], "volume")
        if isinstance(payload, dict) and payload.get("model") == "graph_spotter":
            from .models.graph_spotter import RegionGraphSpotter
            model = RegionGraphSpotter(**payload["config"])
            model.load_state_dict(payload["state_dict"])
            return LoadedCheckpoint(model.eval(), payload["metadata"], "graph")
        exp = Experiment.from_dict(payload["experiment"])
        meta = payload["metadata"]
        model = build_model(exp, len(meta["labels"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path} is not a microexp training checkpoint: {err}") from err
    return LoadedCheckpoint(model.eval(), meta, "classifier", exp)


def model_card(meta: Dict[str, object], exp: Experiment, command: str) -> str:
    lines = [f"# Model card: {meta['task']} model ({exp.model})", "",
             f"- Produced by: `{command}`",
             f"- Data: {meta['provenance']}",
             f"- Licence: {meta.get('licence') or RESEARCH_LICENCE}",
             f"- Task: {meta['task']}; outputs: {meta['output_kind']} in this label order: "
             f"{', '.join(meta['labels'])}",
             f"- Input: {meta['input_encoding']} (channels {', '.join(meta['input_channels'])}), "
             f"values 0..255 times {meta['input_scale']:.6g}",
             *( [f"- AU thresholds on sigmoid(logits): {meta['thresholds']}"] if meta.get("thresholds") else []),
             f"- Flow the training inputs were made with: {meta['flow_method']} (token `{meta.get('flow', '')}`)",
             *(["- L2 inverse penalty C per output, chosen on held-out training subjects ("
                + (f"{exp.model_args['inner_folds']} groups of subjects" if exp.model_args.get("inner_folds")
                   else "leave one subject out") + f"): {meta['inverse_penalty']}; classes balanced"]
               if meta.get("inverse_penalty") else []),
             f"- Experiment: `{exp.to_dict()}`",
             *([_reported_line(meta["au_quality"], meta["labels"])] if meta.get("au_quality") else []),
             "- Protocol and metrics (LOSO, all folds pooled):"]
    for k, v in meta["metrics"].items():
        lines.append(f"  - {k}: {v}")
    return "\n".join(lines) + "\n"


def _reported_line(quality: Dict[str, object], labels: List[str]) -> str:
    bar, per_au = quality["bar"], quality["per_au"]
    passing = [n for n in labels if passes_bar(per_au.get(n), bar)]
    return (f"- Reported by the runtime by default (>= {bar['min_positives']} positives and LOSO F1 >= "
            f"{bar['min_f1']}): {', '.join(passing) or 'none'}; the others only with --all-aus, as experimental")


MEGC_SEQUENCES_FLOW = ("runtime encode_uvs28 of onset->current flow; trained on sequences built "
                       "from the MEGC composite maps (training/sequences.py)")


def save_stream_checkpoint(path, model: nn.Module, *, labels: List[str], metrics: Dict[str, object],
                           provenance: str, spec: Dict[str, object], flow: str = "megc2019-composite",
                           flow_method: str = MEGC_SEQUENCES_FLOW, spot_threshold: Optional[float] = None,
                           licence: str = RESEARCH_LICENCE) -> Path:
    """The streaming CNN-LSTM: its config, weights and what its per-step input and output are
    (`spot_threshold`: the event detector's threshold on 1 - p(none), when one was chosen)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": "spotting", "labels": list(labels), "input_encoding": "uvs28",
            "input_channels": ["u", "v", "strain"], "input_scale": 1 / 255,
            "flow": flow, "flow_method": flow_method, "output_kind": "logits", "state": {"hidden": model.hidden},
            "spot_threshold": spot_threshold, "licence": licence,
            "provenance": provenance, "sequence_spec": spec, "metrics": metrics}
    atomic_torch_save(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                             "model": "cnn_lstm", "config": model.config, "metadata": meta})
    return path


def update_metadata(path, **changes) -> Path:
    """Add or replace metadata entries of a saved checkpoint (e.g. a figure measured after
    training), the weights untouched; written whole or not at all."""
    path = Path(path)
    load_checkpoint(path)  # refuses a file that is not ours, with its name
    payload = torch.load(path, map_location="cpu", weights_only=False)
    payload["metadata"] = {**payload["metadata"], **changes}
    return atomic_torch_save(path, payload)
