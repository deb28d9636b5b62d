"""An AU-aware graph spotter: facial regions as graph nodes, edges from AU co-occurrence, causal
temporal convolution, per-frame none / macro / micro.

Input per frame: the twelve regions' flow features of kernels.region_flow (mean u, mean v, main
direction's magnitude and angle; px on a 224 px crop, flow from the track's reference). Each
node gets (u, v, the main direction as a vector, u and v less the mean over the regions: what
a head movement does to all of them alike is taken out), is embedded, and passes two graph
convolutions H' = relu(A_hat H W) whose A_hat = D^-1/2 A D^-1/2 is fixed from the co-occurrence
weights (training/au_graph.py). The nodes of a frame are then one vector, and dilated causal
1-D convolutions (kernel 3, dilations 1, 2, 4, 8, 16: RECEPTIVE = 63 frames) give each frame's
logits from that frame and the 62 before it.

The convolutions are unpadded, so `forward` on RECEPTIVE - 1 frames of history plus T frames
gives T outputs; a sequence's start is history of zeros (no motion before the reference).
`step(x, state)` is one frame of that with the last 62 frames' inputs as its state, which is
what the streaming ONNX export runs: T steps from a zero state equal one `forward` over the
zero-padded sequence.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import nn

REGIONS, FEATURES = 12, 4  # kernels.region_flow's (regions, 4) per frame
DILATIONS = (1, 2, 4, 8, 16)
RECEPTIVE = 1 + 2 * sum(DILATIONS)  # frames one output sees
CLASSES = ("none", "macro", "micro")


def normalised_adjacency(weights: np.ndarray) -> np.ndarray:
    """D^-1/2 A D^-1/2 of non-negative symmetric weights with a positive diagonal."""
    a = np.asarray(weights, np.float64)
    d = 1.0 / np.sqrt(a.sum(1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


class RegionGraphSpotter(nn.Module):
    def __init__(self, weights, embed: int = 16, channels: int = 48, dropout: float = 0.1,
                 num_outputs: int = len(CLASSES)):
        super().__init__()
        weights = np.asarray(weights, np.float64)
        if weights.shape != (REGIONS, REGIONS):
            raise ValueError(f"RegionGraphSpotter: weights must be {REGIONS}x{REGIONS}, got {weights.shape}")
        self.config = dict(weights=weights.tolist(), embed=embed, channels=channels, dropout=dropout,
                           num_outputs=num_outputs)
        self.register_buffer("adjacency", torch.from_numpy(normalised_adjacency(weights)))
        self.embed = nn.Linear(6, embed)
        self.graph = nn.ModuleList([nn.Linear(embed, embed), nn.Linear(embed, embed)])
        self.project = nn.Conv1d(REGIONS * embed, channels, 1)
        self.temporal = nn.ModuleList([nn.Conv1d(channels, channels, 3, dilation=d) for d in DILATIONS])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Conv1d(channels, num_outputs, 1)
        self.state_size = (RECEPTIVE - 1) * REGIONS * FEATURES

    def nodes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 12, 4) region flow -> (B, T, 12, embed) after the graph convolutions."""
        u, v, mag, angle = x.unbind(-1)
        rel_u = u - u.mean(-1, keepdim=True)
        rel_v = v - v.mean(-1, keepdim=True)
        h = torch.stack([u, v, mag * torch.cos(angle), mag * torch.sin(angle), rel_u, rel_v], -1)
        h = torch.relu(self.embed(h * 0.5))
        for layer in self.graph:
            h = torch.relu(torch.matmul(self.adjacency, layer(h)))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, RECEPTIVE - 1 + T, 12, 4) -> logits (B, T, K): the first RECEPTIVE - 1 frames are history."""
        b, t = x.shape[:2]
        h = self.nodes(x).reshape(b, t, -1).transpose(1, 2)  # (B, 12 * embed, T)
        h = torch.relu(self.project(h))
        for conv in self.temporal:
            out = torch.relu(conv(self.drop(h)))
            h = out + h[..., h.shape[-1] - out.shape[-1]:]  # residual, aligned at the newest frame
        return self.head(h).transpose(1, 2)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 12, 4) from the sequence's start -> (B, T, K), the history zeros."""
        pad = x.new_zeros((x.shape[0], RECEPTIVE - 1) + tuple(x.shape[2:]))
        return self.forward(torch.cat([pad, x], 1))

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.state_size)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 12, 4) one frame, state (B, state_size) the 62 frames before -> (logits (B, K), state)."""
        b = x.shape[0]
        window = torch.cat([state.reshape(b, RECEPTIVE - 1, REGIONS, FEATURES), x[:, None]], 1)
        logits = self.forward(window)[:, -1]
        return logits, window[:, 1:].reshape(b, -1)
