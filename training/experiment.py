"""What one training experiment is: the task, the model, the input treatment and the protocol.

Saved beside every result and inside every checkpoint, so a number can be traced to the exact
settings that produced it."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .models import HTNet, PooledLinear

TASKS = ("emotion", "au")
MODELS = ("htnet", "cnn", "linear")
PROTOCOLS = ("honest", "oracle-epoch")


@dataclass
class Experiment:
    task: str = "emotion"  # 'emotion': 3-class cross-entropy; 'au': multi-label BCE
    model: str = "htnet"  # 'htnet' | 'cnn' | 'linear' (pooled maps, Newton fit; linear_fit.py)
    model_args: Dict[str, Any] = field(default_factory=lambda: dict(
        dim=64, heads=4, num_hierarchies=2, block_repeats=(2, 2)))
    input: str = "composite"  # 'composite' (HTNet's four regions) | 'whole'
    scale: float = 1 / 255  # input multiplier; 1.0 feeds raw 0..255 as the official code does
    epochs: int = 60
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 1e-4
    # Horizontal flip of whole maps (u negated: 255 - u): random per epoch; the linear model adds
    # every mirrored copy.
    flip: bool = False
    class_balance: bool = False  # class weights inverse to frequency in the training fold (the linear model always balances)
    protocol: str = "honest"
    threshold: float = 0.5  # fixed AU decision threshold (honest: never tuned on a test fold)
    # AU only: upper bound on BCE's pos_weight (negatives / positives per AU in the training
    # fold). Without it an AU with one positive weighs that sample ~150x and the shared trunk
    # bends to memorise it. None: no bound.
    pos_weight_cap: Optional[float] = None
    # AU only: choose each AU's threshold on an inner split of the training subjects (a model
    # trained on 80% of them, thresholds maximising F1 on the other 20%), then train on all.
    inner_thresholds: bool = False
    seed: int = 0
    # Honest variance reduction, fixed before a run: each fold trains `ensemble` models (seeds
    # seed, seed+1, ...) and averages their probabilities; tta_flip also averages each model's
    # output on the mirrored maps (emotion only: u/v/strain maps mirror by a channel operation).
    ensemble: int = 1
    tta_flip: bool = False
    # Composite landmarks: 'fallback' (HTNet's fixed points for every sample) or 'mtcnn' (found
    # per sample on the 28x28 apex face, as the official code does; datasets.megc).
    landmarks: str = "fallback"
    # Training only: every epoch each sample's composite landmarks move by independent integer
    # offsets in [-j, j] px per axis, so the model does not depend on exact region placement
    # (the runtime finds its own landmarks on its own crop).
    landmark_jitter: int = 0
    # Evaluation only, never used in a decision: each model is also scored with the test
    # composites built at these fixed (5, 2) points; the summary's ablations report it.
    probe_landmarks: Optional[List[List[float]]] = None
    # AU, linear model only: a file of extra training rows (training/au_maps.py: runtime-encoded
    # apex maps of generated clips) added to every training fold, never to a test fold.
    extra_maps: Optional[str] = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"Experiment: task must be one of {TASKS}, got {self.task!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"Experiment: protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.input not in ("composite", "whole"):
            raise ValueError(f"Experiment: input must be 'composite' or 'whole', got {self.input!r}")
        if self.model not in MODELS:
            raise ValueError(f"Experiment: model must be one of {MODELS}, got {self.model!r}")
        if self.model == "linear":
            self._check_linear()
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("Experiment: epochs and batch_size must be >= 1 and lr > 0")
        if self.landmarks not in ("fallback", "mtcnn"):
            raise ValueError(f"Experiment: landmarks must be 'fallback' or 'mtcnn', got {self.landmarks!r}")
        if self.landmarks == "mtcnn" and (self.input != "composite" or self.task != "emotion"):
            raise ValueError("Experiment: landmarks 'mtcnn' place the MEGC composite's regions "
                             "(task 'emotion', input 'composite')")
        if self.pos_weight_cap is not None and (self.task != "au" or not self.pos_weight_cap >= 1):
            raise ValueError("Experiment: pos_weight_cap bounds the AU loss's positive weights "
                             f"(task 'au', a value >= 1), got {self.pos_weight_cap!r} for task {self.task!r}")
        if self.landmark_jitter < 0:
            raise ValueError(f"Experiment: landmark_jitter must be >= 0 px, got {self.landmark_jitter}")
        if (self.landmark_jitter or self.probe_landmarks is not None) and self.input != "composite":
            raise ValueError("Experiment: landmark_jitter and probe_landmarks move the composite's "
                             "regions (input 'composite')")
        if self.probe_landmarks is not None:
            try:
                points = np.asarray(self.probe_landmarks, dtype=np.float64)
            except (TypeError, ValueError):
                points = np.empty(0)
            if points.shape != (5, 2) or not np.all(np.isfinite(points)):
                raise ValueError("Experiment: probe_landmarks must be 5 finite (x, y) points, "
                                 f"got {self.probe_landmarks!r}")
            if self.protocol != "honest":
                raise ValueError("Experiment: probe_landmarks are scored for the honest protocol only")
        if self.ensemble < 1:
            raise ValueError(f"Experiment: ensemble must be >= 1, got {self.ensemble}")
        if (self.ensemble > 1 or self.tta_flip) and self.protocol != "honest":
            raise ValueError("Experiment: ensemble and tta_flip are defined for the honest protocol only")
        if self.ensemble > 1 and self.inner_thresholds:
            raise ValueError("Experiment: inner_thresholds are chosen for one model; not with ensemble > 1")
        if self.flip and self.task == "au" and not (self.model == "linear"
                                                    and self.model_args.get("features") == "chroma"):
            raise ValueError("Experiment: flip mirrors u/v/strain maps; an HSV-encoded AU map does not "
                             "mirror by a channel operation (the linear model with features 'chroma' "
                             "mirrors its decoded flow vectors instead)")
        if self.extra_maps is not None and (self.task != "au" or self.model != "linear"):
            raise ValueError("Experiment: extra_maps are extra training rows for the linear AU model "
                             f"(task 'au', model 'linear'), got task {self.task!r}, model {self.model!r}")
        if self.tta_flip and self.task != "emotion":
            raise ValueError("Experiment: tta_flip needs u/v/strain maps (task 'emotion'); HSV-encoded "
                             "AU maps do not mirror by a channel operation")

    def _check_linear(self):
        """The linear model is fitted once to convergence with its penalty chosen inside the
        training subjects: settings that act on epochs or random draws do not apply to it."""
        if self.model_args.get("features") == "chroma" and self.task != "au":
            raise ValueError("Experiment: features 'chroma' decode HSV-encoded maps (task 'au')")
        unsupported = {"protocol 'oracle-epoch' (it has no epochs)": self.protocol != "honest",
                       "ensemble > 1 (its fit is deterministic)": self.ensemble > 1,
                       "inner_thresholds on the emotion task": self.inner_thresholds and self.task != "au",
                       "pos_weight_cap (its AU classes are balanced)": self.pos_weight_cap is not None}
        named = [k for k, v in unsupported.items() if v]
        if named:
            raise ValueError(f"Experiment: the linear model does not take {', '.join(named)}")

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Experiment":
        d = dict(d)
        if "block_repeats" in d.get("model_args", {}):
            d["model_args"] = dict(d["model_args"], block_repeats=tuple(d["model_args"]["block_repeats"])
                                   if isinstance(d["model_args"]["block_repeats"], list)
                                   else d["model_args"]["block_repeats"])
        return cls(**d)


def build_model(exp: Experiment, num_outputs: int) -> nn.Module:
    if exp.model == "htnet":
        return HTNet(num_classes=num_outputs, **exp.model_args)
    if exp.model == "linear":
        return PooledLinear(num_outputs, **exp.model_args)
    return SmallCnn(num_outputs, **exp.model_args)


class SmallCnn(nn.Module):
    """A plain three-layer CNN on 28x28 maps: the baseline the issue quotes for scale."""

    def __init__(self, num_outputs: int, width: int = 32, dropout: float = 0.3):
        super().__init__()
        self.config = dict(num_classes=num_outputs, width=width, dropout=dropout)
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
