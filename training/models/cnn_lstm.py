"""CNN-LSTM over a sequence of encoded flow maps, with per-frame outputs.

`forward(seq)` runs a whole window; `step(x, h, c)` advances one frame with explicit LSTM
state, which is what the export issue turns into a streaming ONNX graph (one step per frame).
Both share the same modules, so T calls of `step` equal one `forward` over T frames.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


class CnnLstm(nn.Module):
    def __init__(self, num_outputs: int = 1, channels: int = 3, width: int = 32,
                 hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.config = dict(num_outputs=num_outputs, channels=channels, width=width,
                           hidden=hidden, dropout=dropout)
        self.hidden = hidden
        self.encoder = nn.Sequential(  # 28 -> 14 -> 7 -> 1
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
        )
        self.cell = nn.LSTMCell(2 * width, hidden)
        self.head = nn.Linear(hidden, num_outputs)

    def initial_state(self, batch: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """x: (B, C, 28, 28) one frame; returns (logits (B, K), h, c)."""
        h, c = self.cell(self.encoder(x), (h, c))
        return self.head(h), h, c

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: (B, T, C, 28, 28) -> logits (B, T, K)."""
        b, t = seq.shape[:2]
        feats = self.encoder(seq.reshape(b * t, *seq.shape[2:])).reshape(b, t, -1)
        h, c = self.initial_state(b, seq.device)
        outputs = []
        for i in range(t):
            h, c = self.cell(feats[:, i], (h, c))
            outputs.append(self.head(h))
        return torch.stack(outputs, dim=1)
