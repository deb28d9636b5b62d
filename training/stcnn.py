"""MicroExpSTCNN trained and evaluated on frame stacks (training/volumes.py), `microexp train stcnn`.

Protocols:
  loso          (default, honest) leave one subject out: a fresh model per held-out subject,
                trained a fixed number of epochs on the others, every fold's predictions pooled
                into accuracy, UF1 and UAR. Nothing is chosen on a test fold.
  random-split  the thesis' protocol: one stratified random split of the clips (test_fraction
                held out), the model after the fixed epochs. Clips of one subject land on both
                sides, so the model can recognise the person rather than the expression; its
                figures are not comparable with subject-independent ones, and the run says so.
Augmentation: `rotate` degrees, a random in-plane rotation of the whole stack per sample and
epoch (the thesis' random-rotation variant), and a random horizontal mirror.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import uf1_uar
from .models.stcnn import MicroExpSTCNN
from .volumes import LABELS

PROTOCOLS = ("loso", "random-split")
GENERATED = ("trained only on generated clips (faces rendered from photos, whose own terms apply): no licensed "
             "data set went into these weights")
RANDOM_SPLIT_WARNING = ("random-split mixes subjects: clips of one person are in both the training and the "
                        "test part, so the model can recognise the person rather than the expression; these "
                        "figures are not subject-independent and not comparable with LOSO ones")


def augment(x: torch.Tensor, rotate: float, generator: torch.Generator) -> torch.Tensor:
    """(B, 1, T, H, W): each stack rotated by its own angle in [-rotate, rotate] degrees (all its
    frames alike) and mirrored with even odds."""
    b = x.shape[0]
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
    if rotate <= 0:
        return x
    angle = (torch.rand(b, generator=generator) * 2 - 1) * np.deg2rad(rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    t, h, w = x.shape[2:]
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w)
    grid = F.affine_grid(theta.repeat_interleave(t, 0), list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, padding_mode="border", align_corners=False)
    return out.reshape(b, t, 1, h, w).permute(0, 2, 1, 3, 4)


def train_model(volumes: np.ndarray, labels: np.ndarray, *, epochs: int = 60, batch_size: int = 16,
                lr: float = 3e-4, rotate: float = 0.0, seed: int = 0, progress: bool = False) -> MicroExpSTCNN:
    """A MicroExpSTCNN trained on (N, T, H, W) uint8 stacks with class-balanced cross-entropy."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    n, t, h, _ = volumes.shape
    model = MicroExpSTCNN(len(LABELS), frames=t, size=h)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(LABELS), dtype=torch.float32)
    x_all = torch.from_numpy(volumes).float().div_(255.0)[:, None]
    y_all = torch.from_numpy(labels)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        for idx in order.split(batch_size):
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss = F.cross_entropy(model(augment(x_all[idx], rotate, generator)), y_all[idx], weight=weight)
            loss.backward()
            opt.step()
        if progress:
            print(f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}", flush=True)
    return model.eval()


def predict(model: MicroExpSTCNN, volumes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(volumes).float().div_(255.0)[:, None]).argmax(1).numpy()


def scores(labels, predicted) -> Dict[str, float]:
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    return {"accuracy": float((labels == predicted).mean()), **uf1_uar(labels, predicted, len(LABELS)),
            "samples": int(len(labels))}


def evaluate(data: Dict[str, np.ndarray], protocol: str = "loso", test_fraction: float = 0.2,
             progress: bool = False, **train) -> Dict[str, object]:
    """The protocol's figures on `data` (build_volumes' dict); `train`: train_model's options."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    volumes, labels, subjects = data["volumes"], data["labels"], data["subjects"]
    predicted = np.full(len(labels), -1)
    folds = {}
    if protocol == "loso":
        if len(set(subjects.tolist())) < 2:
            raise ValueError("loso needs clips of at least two subjects")
        for s in sorted(set(subjects.tolist())):
            test = subjects == s
            model = train_model(volumes[~test], labels[~test], **train)
            predicted[test] = predict(model, volumes[test])
            folds[s] = scores(labels[test], predicted[test])
            if progress:
                print(f"fold {s}: accuracy {folds[s]['accuracy']:.3f} ({int(test.sum())} clips)", flush=True)
        held = np.ones(len(labels), bool)
    else:
        warnings.warn(RANDOM_SPLIT_WARNING, stacklevel=2)
        rng = np.random.default_rng(train.get("seed", 0))
        held = np.zeros(len(labels), bool)
        for c in range(len(LABELS)):  # stratified: each class split alike
            idx = rng.permutation(np.flatnonzero(labels == c))
            held[idx[:max(int(round(test_fraction * len(idx))), 1 if len(idx) >= 2 else 0)]] = True
        if not held.any() or held.all():
            raise ValueError(f"random-split: {len(labels)} clips are too few to hold some out")
        model = train_model(volumes[~held], labels[~held], **train)
        predicted[held] = predict(model, volumes[held])
    result = {"protocol": protocol, **scores(labels[held], predicted[held]),
              "subjects": sorted(set(subjects.tolist())), "train": train,
              "class_counts": dict(zip(LABELS, np.bincount(labels, minlength=len(LABELS)).tolist()))}
    if protocol == "loso":
        result["folds"] = folds
    else:
        result["warning"] = RANDOM_SPLIT_WARNING
        result["test_fraction"] = test_fraction
    return result


def save_stcnn_checkpoint(path, model: MicroExpSTCNN, *, metrics: Dict[str, object], provenance: str,
                          licence: str) -> Path:
    from .checkpoint import atomic_torch_save
    meta = {"task": "emotion", "labels": list(LABELS), "input_encoding": "gray-volume",
            "input_channels": ["gray"], "input_scale": 1 / 255, "flow": "", "output_kind": "logits",
            "flow_method": "none: aligned grey frames (MTCNN on the onset frame, template matching)",
            "volume": {"frames": model.config["frames"], "size": model.config["size"]},
            "licence": licence, "provenance": provenance, "metrics": metrics}
    return atomic_torch_save(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                                    "model": "stcnn", "config": model.config, "metadata": meta})


def run(roots, layout: str, out, *, sheet=None, protocol: str = "loso", save_model: Optional[str] = None,
        command: str = "", progress: bool = False, **train) -> Dict[str, object]:
    """Stack the sets, evaluate by the protocol, write out/summary.json (and, with `save_model`,
    a model trained on every clip with its card). Returns the summary."""
    from microexp.edge.atomic_io import atomic_write_json, atomic_write_text

    from .checkpoint import RESEARCH_LICENCE
    from .volumes import build_volumes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = build_volumes(roots, layout, sheet, progress=progress)
    summary = {"command": command, "sets": [str(r) for r in roots], "layout": layout,
               "clips": int(len(data["labels"])), "left_out": data["left_out"],
               **evaluate(data, protocol, progress=progress, **train)}
    atomic_write_json(out / "summary.json", summary)
    summary["summary"] = str(out / "summary.json")
    if save_model:
        generated = all((Path(r) / "set.json").is_file() for r in roots)
        licence = GENERATED if generated else RESEARCH_LICENCE
        model = train_model(data["volumes"], data["labels"], **train)
        path = save_stcnn_checkpoint(save_model, model, metrics={k: summary[k] for k in
                                                                 ("protocol", "accuracy", "uf1", "uar", "samples")},
                                     provenance=f"{summary['clips']} clips of {', '.join(summary['sets'])} ({layout})",
                                     licence=licence)
        card = ["# Model card: MicroExpSTCNN (3D-CNN on aligned grey frame stacks)", "",
                f"- Produced by: `{command}`", f"- Data: {summary['clips']} clips of {', '.join(summary['sets'])}",
                f"- Licence note: {licence}",
                f"- Input: (1, {model.config['frames']}, {model.config['size']}, {model.config['size']}) grey "
                "frames times 1/255, onset..offset sampled evenly, face aligned by the runtime's kernels",
                f"- Outputs: logits over {', '.join(LABELS)}",
                f"- Evaluation ({protocol}): {json.dumps({k: summary[k] for k in ('accuracy', 'uf1', 'uar', 'samples')})}"]
        if protocol == "random-split":
            card.append(f"- Warning: {RANDOM_SPLIT_WARNING}")
        atomic_write_text(Path(save_model).with_suffix(".md"), "\n".join(card) + "\n")
        summary["checkpoint"] = str(path)
    return summary
