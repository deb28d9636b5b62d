"""A regularised linear model on pooled 28x28 maps: the small-data baseline that a deep model
has to beat (153 SAMM AU maps, 442 MEGC composites).

input (N, 3, 28, 28), already scaled -> optional colour-wheel decoding -> average pooling
-> standardisation with the training set's mean and spread (stored as buffers) -> one
linear layer -> logits. Fitted by Newton's method on a penalised, class-balanced
log-likelihood (training/linear_fit.py), not by epochs of SGD.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

FEATURES = ("raw", "chroma")


def colour_wheel(x: torch.Tensor) -> torch.Tensor:
    """HSV-encoded flow stored as B, G, R (saturation 255) -> (chroma x, chroma y, value).

    At full saturation a pixel's colour lies on the hexagonal colour wheel at radius V (the
    normalised flow magnitude): x = R - (G + B) / 2 and y = (G - B) * sqrt(3) / 2 point along
    the flow's direction (the hue, within 1.1 degrees), with length 0.87 V to V. Being linear
    in the channels they commute with the area resize to 28x28, so they average the flow
    vectors of the full-size map, where the hue itself would wrap from 179 back to 0.
    V = max(B, G, R)."""
    b, g, r = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack([r - (g + b) / 2, (g - b) * (math.sqrt(3) / 2), torch.maximum(torch.maximum(b, g), r)], 1)


class PooledLinear(nn.Module):
    def __init__(self, num_classes: int, pool: int = 4, features: str = "raw",
                 c_grid=(0.001, 0.01, 0.1, 1.0), inner_folds: Optional[int] = None,
                 jitter_copies: int = 3):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"PooledLinear: features must be one of {FEATURES}, got {features!r}")
        if pool < 1 or 28 % pool:
            raise ValueError(f"PooledLinear: pool must divide 28, got {pool}")
        if not c_grid or any(not c > 0 for c in c_grid):
            raise ValueError(f"PooledLinear: c_grid must hold positive inverse penalties, got {c_grid!r}")
        if inner_folds is not None and inner_folds < 2:
            raise ValueError(f"PooledLinear: inner_folds must be >= 2 (None: leave one subject out), got {inner_folds}")
        if jitter_copies < 1:
            raise ValueError(f"PooledLinear: jitter_copies must be >= 1, got {jitter_copies}")
        # Fit settings (training/linear_fit.py), kept with the model so a card can name them:
        # how C is chosen (inner_folds), and how many jittered copies of each map join the fit
        # when the experiment asks for landmark jitter.
        self.config = dict(num_classes=num_classes, pool=pool, features=features, c_grid=list(c_grid),
                           inner_folds=inner_folds, jitter_copies=jitter_copies)
        self.pool, self.features = pool, features
        size = 3 * (28 // pool) ** 2
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("spread", torch.ones(size))
        self.linear = nn.Linear(size, num_classes)

    def pooled(self, x: torch.Tensor, mirrored: bool = False) -> torch.Tensor:
        """(N, 3, 28, 28) -> (N, F): the features before standardisation. `mirrored` (chroma
        only): the features of the left-right mirrored face, whose flow has u negated; on the
        colour wheel that is chroma x negated, exactly (the hexagon is symmetric about y)."""
        if self.features == "chroma":
            x = colour_wheel(x)
            if mirrored:
                x = x.flip(-1) * torch.tensor([-1.0, 1.0, 1.0], dtype=x.dtype).view(1, 3, 1, 1)
        elif mirrored:
            raise ValueError("PooledLinear: mirrored features are defined for features 'chroma'; "
                             "mirror u/v/strain maps before pooling (regions.flip_maps)")
        return F.avg_pool2d(x, self.pool).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((self.pooled(x) - self.mean) / self.spread)
