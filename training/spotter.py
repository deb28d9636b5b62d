"""The learned spotter trained on what the runtime feeds it: the CNN-LSTM on runtime-encoded
sequences of generated clips (runtime_sequences.py), its event detector's threshold chosen on
a development set, and the checkpoint with its model card (`microexp train spotter`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .metrics import intervals, spotting_scores
from .models import CnnLstm
from .runtime_sequences import EXPRESSION, IGNORE, sample_windows
from .streaming import CLASSES

THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(18))  # 0.10 .. 0.95


def spotting_loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy over (none + classes) per frame; a frame inside an event of
    unknown class (runtime_sequences.EXPRESSION) is scored by -log(1 - p(none)) alone, and
    IGNORE frames not at all."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets = targets.reshape(-1)
    log_p = torch.log_softmax(logits, dim=1)
    known = targets >= 0
    terms = [-(log_p[known].gather(1, targets[known, None])[:, 0] * weight[targets[known]])]
    unknown = targets == EXPRESSION
    if unknown.any():
        terms.append(-torch.logsumexp(log_p[unknown, 1:], dim=1) * weight[1:].mean())
    used = (targets != IGNORE).sum().clamp(min=1)
    return torch.cat(terms).sum() / used


def train_runtime_spotter(seqs, *, model: CnnLstm = None, steps: int = 300, window: int = 150,
                          batch_size: int = 12, lr: float = 1e-3, seed: int = 0, flip: bool = True,
                          balance: float = 0.5, progress: bool = False) -> CnnLstm:
    """Train (or fine-tune `model`) on runtime-encoded sequences (training/runtime_sequences.py):
    `steps` batches of `batch_size` random windows of `window` frames, each starting from a
    zero (h, c) state as the runtime does at a new reference. Classes are weighted by inverse
    frequency to the power `balance` (1: fully balanced, which pushes p(none) down on calm
    frames too; 0: unweighted)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = model if model is not None else CnnLstm(num_outputs=len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    counts = np.bincount(np.concatenate([s.targets[s.targets >= 0] for s in seqs]),
                         minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1) / len(CLASSES)) ** balance, dtype=torch.float32)
    model.train()
    for step in range(steps):
        x, y = sample_windows(seqs, batch_size, window, rng, flip=flip)
        opt.zero_grad()
        loss = spotting_loss(model(torch.from_numpy(x / 255.0).float()), torch.from_numpy(y), weight)
        loss.backward()
        opt.step()
        if progress and (step % 25 == 0 or step == steps - 1):
            print(f"step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
    return model.eval()


def expression_scores(model: CnnLstm, seqs) -> list:
    """Per clip, the runtime's learned score 1 - p(none) for every frame, the model stepped one
    frame at a time from a zero state as the pipeline steps it."""
    scores = []
    with torch.no_grad():
        for s in seqs:
            x = torch.from_numpy(s.maps / 255.0).float()
            h, c = model.initial_state(1)
            out = []
            for t in range(len(x)):
                logits, h, c = model.step(x[t:t + 1], h, c)
                out.append(1.0 - torch.softmax(logits, 1)[0, 0].item())
            scores.append(np.asarray(out))
    return scores


def spot_from_scores(seqs, scores, fps: float = 200.0, **detector) -> Dict[str, object]:
    """MEGC interval spotting of the runtime's detector (edge.spotting.IntervalSpotter, with
    `detector` its options) run over per-frame scores, against the sequences' event frames."""
    from microexp.edge.spotting import IntervalSpotter
    truth, predicted = [], []
    for s, score in zip(seqs, scores):
        spotter = IntervalSpotter(fps, **detector)
        found = []
        for i, v in enumerate(score):
            if s.targets[i] == IGNORE:  # no face: the pipeline feeds the detector nothing
                continue
            ev = spotter.update(i, i / fps, float(v))
            if ev is not None:
                found.append((ev.onset_frame, ev.offset_frame))
        truth.append(intervals((s.targets > 0) | (s.targets == EXPRESSION)))
        predicted.append(found)
    return spotting_scores(truth, predicted)


def choose_threshold(seqs, scores, fps: float = 200.0, grid: Sequence[float] = THRESHOLDS):
    """(threshold, its spotting scores, the whole grid): the detector threshold with the best
    MEGC F1 on a development set; when several share it, the middle one (the lower of two),
    farthest from where F1 drops on either side."""
    table = {t: spot_from_scores(seqs, scores, fps, threshold=t) for t in grid}
    top = max(r["f1"] for r in table.values())
    tied = sorted(t for t in grid if table[t]["f1"] == top)
    best = tied[(len(tied) - 1) // 2]
    return best, table[best], table


def model_card(command: str, data: str, init: Optional[str], threshold: Optional[float],
               dev: Optional[Dict[str, object]], flow_method: str, hidden: int) -> str:
    licence = ("warm-started from a checkpoint derived from SAMM / CASME II / SMIC features "
               "(research use), so these weights are for research use under the same terms"
               if init else "trained from scratch on clips rendered from the public-domain photo(s) "
               "only: no licensed data set went into these weights")
    lines = ["# Model card: learned spotter (streaming CNN-LSTM on runtime-encoded maps)", "",
             f"- Produced by: `{command}`",
             f"- Training data: {data}; per-frame uvs28 maps from the Pipeline itself "
             "(training/runtime_sequences.py), labels from each set's samm.csv",
             f"- Warm start: {init or 'none'}",
             f"- Licence note: {licence}",
             f"- Input per step: uvs28 map (u, v, strain), values 0..255 times 1/255; state (h, c) of size {hidden}, "
             "zero at each new reference",
             f"- Flow the inputs were made with: {flow_method}",
             f"- Outputs: logits over {', '.join(CLASSES)}; the runtime's score is 1 - p(none)"]
    if threshold is not None:
        lines.append(f"- Event detector threshold on 1 - p(none): {threshold} (chosen on the development set)")
    if dev:
        lines.append(f"- Development set, MEGC interval metric (IoU >= 0.5): {json.dumps(dev)}")
    return "\n".join(lines) + "\n"


@dataclass
class SpotterSettings:
    """What `microexp train spotter` is asked for (its options, one field each)."""
    data: Sequence[str]  # sets written by `microexp synth` (training)
    out: str  # checkpoint path; the card is written beside it
    dev: Optional[str] = None  # a further generated set that chooses the detector threshold
    init: Optional[str] = None  # warm start from a streaming CNN-LSTM checkpoint
    flow: str = "farneback"
    fps: float = 200.0
    steps: int = 300
    window: int = 150
    batch_size: int = 12
    lr: float = 1e-3
    balance: float = 0.5
    flip: bool = True
    seed: int = 0


def train_spotter(settings: SpotterSettings, command: str, progress: bool = False) -> Dict[str, object]:
    """Encode the sets, train, choose the threshold on the development set, save the checkpoint
    and its card. Returns the summary the CLI prints; a bad set, flow or warm start is a
    ValueError (FileNotFoundError for a missing one) naming it."""
    from microexp.edge.atomic_io import atomic_write_text
    from microexp.edge.flow import describe, flow_token

    from .checkpoint import GENERATED_ONLY, RESEARCH_LICENCE, load_checkpoint, save_stream_checkpoint
    from .runtime_sequences import encode_set
    s = settings
    init_model = None
    if s.init:
        loaded = load_checkpoint(s.init)
        if loaded.kind != "stream":
            raise ValueError(f"--init {s.init} is not a streaming CNN-LSTM checkpoint")
        init_model = loaded.model
    token = flow_token(s.flow)  # a bad flow mode fails here, before any encoding
    train: List = []
    for root in s.data:
        train += encode_set(root, fps=s.fps, progress=progress, flow=s.flow)
    dev_seqs = encode_set(s.dev, fps=s.fps, flow=s.flow) if s.dev else None
    model = train_runtime_spotter(train, model=init_model, steps=s.steps, window=s.window,
                                  batch_size=s.batch_size, lr=s.lr, seed=s.seed,
                                  flip=s.flip, balance=s.balance, progress=progress)
    threshold, dev = None, None
    if dev_seqs is not None:
        threshold, best, grid = choose_threshold(dev_seqs, expression_scores(model, dev_seqs), s.fps)
        dev = {"set": str(s.dev), "threshold": threshold, **best,
               "grid_f1": {str(t): round(r["f1"], 4) for t, r in grid.items()}}
    flow_method = "runtime encode_uvs28 of onset->current flow, " + describe(s.flow)
    data = f"{len(train)} generated clips from {', '.join(map(str, s.data))}"
    metrics = {"development": dev, "command": command} if dev else {"command": command}
    path = save_stream_checkpoint(s.out, model, labels=list(CLASSES), metrics=metrics,
                                  provenance=f"runtime-encoded generated clips: {data}"
                                             + (f"; warm start {s.init}" if s.init else ""),
                                  spec={"steps": s.steps, "window": s.window, "batch_size": s.batch_size,
                                        "lr": s.lr, "balance": s.balance, "flip": s.flip, "seed": s.seed},
                                  flow=token, flow_method=flow_method, spot_threshold=threshold,
                                  licence=RESEARCH_LICENCE if s.init else GENERATED_ONLY)
    card = atomic_write_text(Path(s.out).with_suffix(".md"),
                             model_card(command, data, s.init, threshold, dev, flow_method, model.hidden))
    return {"checkpoint": str(path), "model_card": str(card), "clips": len(train),
            "frames": int(sum(len(q.targets) for q in train)), "threshold": threshold, "development": dev}
