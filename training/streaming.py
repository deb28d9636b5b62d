"""Training and evaluation of the streaming CNN-LSTM on sequences built from real maps
(training/sequences.py), held-out subjects never seen in training."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
from torch import nn

from .metrics import intervals, spotting_scores, uf1_uar
from .models import CnnLstm
from .sequences import SequenceSpec, make_sequences

CLASSES = ("none", "negative", "positive", "surprise")


def held_out_subjects(subjects: Sequence[str], every: int = 5) -> list:
    """A fixed rule, decided before any result: every `every`-th subject in sorted order."""
    return sorted(set(subjects))[::every]


def train_cnn_lstm(maps: np.ndarray, labels: np.ndarray, *, spec: SequenceSpec, epochs: int = 15,
                   copies: int = 4, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                   width: int = 32, hidden: int = 64, progress: bool = False) -> CnnLstm:
    torch.manual_seed(seed)
    model = CnnLstm(num_outputs=len(CLASSES), width=width, hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Frames inside events are the minority: weight classes by inverse frequency.
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        x, y = make_sequences(maps, labels, spec, copies=copies, seed=seed * 1000 + epoch)
        counts = np.bincount(y.ravel(), minlength=len(CLASSES)).astype(np.float64)
        weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(CLASSES), dtype=torch.float32)
        criterion = nn.CrossEntropyLoss(weight=weight)
        x = torch.from_numpy(x / 255.0).float()
        y = torch.from_numpy(y)
        model.train()
        for idx in torch.from_numpy(rng.permutation(len(x))).split(batch_size):
            if len(idx) < 2:
                continue
            opt.zero_grad()
            logits = model(x[idx])
            loss = criterion(logits.reshape(-1, len(CLASSES)), y[idx].reshape(-1))
            loss.backward()
            opt.step()
        if progress:
            print(f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}", flush=True)
    return model.eval()


def evaluate_cnn_lstm(model: CnnLstm, maps: np.ndarray, labels: np.ndarray, spec: SequenceSpec,
                      seed: int = 12345) -> Dict[str, object]:
    """Frame-level UF1/UAR over (none + 3 emotions) and MEGC interval spotting F1, streaming
    the model one step at a time exactly as the runtime will."""
    x, y = make_sequences(maps, labels, spec, copies=1, seed=seed)
    xt = torch.from_numpy(x / 255.0).float()
    with torch.no_grad():
        h, c = model.initial_state(len(xt))
        steps = []
        for t in range(xt.shape[1]):
            out, h, c = model.step(xt[:, t], h, c)
            steps.append(out.argmax(1))
    pred = torch.stack(steps, 1).numpy()
    frame = uf1_uar(y.ravel(), pred.ravel(), len(CLASSES))
    spotting = spotting_scores([intervals(t > 0) for t in y], [intervals(p > 0) for p in pred])
    return {"frame_uf1": frame["uf1"], "frame_uar": frame["uar"], "spotting": spotting,
            "sequences": int(len(x)), "frames_per_sequence": spec.length}
