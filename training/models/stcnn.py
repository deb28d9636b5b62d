"""MicroExpSTCNN: a 3D-CNN over a short stack of aligned grey face frames (the thesis' model,
after Reddy et al., IJCNN 2019): one 3D convolution whose kernel spans most of the stack in
time, 3D max pooling, dropout, a dense layer and the class logits.

Input (N, 1, frames, size, size), grey values times 1/255; with 18 frames of 64x64 the
convolution (32 filters, 15x3x3) leaves 4 x 62 x 62, the pooling (3x3x3) 1 x 20 x 20.
"""
from __future__ import annotations

import torch
from torch import nn


class MicroExpSTCNN(nn.Module):
    def __init__(self, num_classes: int = 3, frames: int = 18, size: int = 64, filters: int = 32,
                 depth: int = 15, dense: int = 128, dropout: float = 0.5):
        super().__init__()
        if not 1 <= depth <= frames:
            raise ValueError(f"MicroExpSTCNN: the kernel depth {depth} must be within 1..{frames} frames")
        self.config = dict(num_classes=num_classes, frames=frames, size=size, filters=filters, depth=depth,
                           dense=dense, dropout=dropout)
        t, s = (frames - depth + 1) // 3, (size - 2) // 3
        if t < 1 or s < 1:
            raise ValueError(f"MicroExpSTCNN: {frames} frames of {size} px leave nothing after the pooling")
        self.features = nn.Sequential(
            nn.Conv3d(1, filters, (depth, 3, 3)), nn.ReLU(), nn.MaxPool3d(3), nn.Dropout(dropout), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(filters * t * s * s, dense), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(dense, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
