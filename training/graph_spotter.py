"""The graph spotter (training/models/graph_spotter.py) trained on what the runtime feeds it: every
frame of generated long clips (`microexp synth --mixed`) run through the Pipeline, the twelve
regions' flow features kept (PipelineConfig.return_regions), each frame labelled none / macro /
micro from the set's sheet; the event detector's threshold on 1 - p(none) chosen on a
development set; the checkpoint and its model card (`microexp train graph-spotter`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .models.graph_spotter import CLASSES, RECEPTIVE, RegionGraphSpotter

IGNORE = -1  # no face on the frame: the runtime takes no spotter step there
THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(18))  # 0.10 .. 0.95
DEFAULT_GRAPH = Path(__file__).parent / "au_graph_samm.json"
LICENCE = ("trained only on generated clips (faces rendered from photos; no micro-expression data set, the "
           "photos' own terms apply); its fixed graph weights are aggregate AU co-occurrence counts of {source}")
SAMM_SOURCE = "SAMM's published annotations (a research data set)"
# Mirror image: left and right regions swap (edge/face_regions.py order), u and angles reflect.
MIRROR = (4, 3, 2, 1, 0, 6, 5, 8, 7, 10, 9, 11)


@dataclass
class RegionSequence:
    name: str  # SUBJECT/CLIP
    features: np.ndarray  # (T, 12, 4) float32, zeros where the pipeline had no face
    targets: np.ndarray  # (T,) int64: 0 none, 1 macro, 2 micro, IGNORE without a face


def frame_targets(length: int, events: Sequence[tuple]) -> np.ndarray:
    """(length,) targets from [(onset, offset, kind)], 0-based inclusive frames."""
    y = np.zeros(length, np.int64)
    for onset, offset, kind in events:
        y[max(onset, 0):min(offset, length - 1) + 1] = CLASSES.index(kind)
    return y


def encode_set(root, fps: float, progress: bool = False, **config) -> List[RegionSequence]:
    """Every clip of a generated set (SAMM layout, samm.csv beside) as the runtime computes its
    region features. `config` overrides PipelineConfig fields (flow, reference, ...)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig

    from .spot_protocol import read_sheet
    root = Path(root)
    if not (root / "samm.csv").is_file():
        raise FileNotFoundError(f"{root}: no samm.csv; expected a set written by `microexp synth`")
    out = []
    for (subject, clip), events in sorted(read_sheet(root, kinds=True).items()):
        with Pipeline(PipelineConfig(au_model=None, emotion_model=None, action_gate=None, fps=fps,
                                     return_regions=True, **config)) as pipe:
            feats, found = [], []
            for r in pipe.stream(root / subject / clip, fps=fps):
                feats.append(r.regions if r.success else np.zeros((12, 4), np.float32))
                found.append(r.success)
        y = frame_targets(len(feats), events)
        y[~np.asarray(found, bool)] = IGNORE
        out.append(RegionSequence(f"{subject}/{clip}", np.stack(feats), y))
        if progress:
            print(f"encoded {out[-1].name}: {len(feats)} frames, {int((y > 0).sum())} inside events", flush=True)
    return out


def mirror(features: np.ndarray) -> np.ndarray:
    """The features of the mirrored face: regions swapped left/right, u negated, angles reflected."""
    f = features[..., MIRROR, :].copy()
    f[..., 0] = -f[..., 0]
    angle = np.pi - f[..., 3]
    f[..., 3] = np.where(f[..., 2] > 0, (angle + np.pi) % (2 * np.pi) - np.pi, 0.0)
    return f


def sample_windows(seqs: Sequence[RegionSequence], batch: int, window: int, rng, flip: bool = True):
    """`batch` random windows of `window` frames with RECEPTIVE - 1 frames of history before each
    (zeros before a clip's start, as the runtime's first step sees): (x, y)."""
    hist = RECEPTIVE - 1
    x = np.zeros((batch, hist + window, 12, 4), np.float32)
    y = np.full((batch, window), IGNORE, np.int64)
    for b in range(batch):
        s = seqs[rng.integers(len(seqs))]
        n = len(s.targets)
        start = int(rng.integers(0, max(1, n - window + 1)))
        lo = max(0, start - hist)
        chunk = s.features[lo:start + window]
        x[b, hist - (start - lo):hist - (start - lo) + len(chunk)] = mirror(chunk) if flip and rng.random() < 0.5 else chunk
        y[b, :min(window, n - start)] = s.targets[start:start + window]
    return x, y


def train_graph_spotter(seqs: Sequence[RegionSequence], weights: np.ndarray, *, steps: int = 600,
                        window: int = 128, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
                        balance: float = 0.5, flip: bool = True, progress: bool = False) -> RegionGraphSpotter:
    """Class-weighted cross-entropy (inverse frequency to the power `balance`) on random windows."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RegionGraphSpotter(weights)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    counts = np.bincount(np.concatenate([s.targets[s.targets >= 0] for s in seqs]),
                         minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1) / len(CLASSES)) ** balance, dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)
    model.train()
    for step in range(steps):
        x, y = sample_windows(seqs, batch_size, window, rng, flip)
        opt.zero_grad()
        logits = model(torch.from_numpy(x))
        loss = loss_fn(logits.reshape(-1, len(CLASSES)), torch.from_numpy(y).reshape(-1))
        loss.backward()
        opt.step()
        if progress and (step % 50 == 0 or step == steps - 1):
            print(f"step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
    return model.eval()


def expression_scores(model: RegionGraphSpotter, seqs: Sequence[RegionSequence]) -> List[np.ndarray]:
    """Per clip, 1 - p(none) for every frame (the whole clip at once, which equals stepping it)."""
    out = []
    with torch.no_grad():
        for s in seqs:
            logits = model.forward_padded(torch.from_numpy(s.features[None]))[0]
            out.append(1.0 - torch.softmax(logits, -1)[:, 0].numpy())
    return out


def spot_from_scores(seqs: Sequence[RegionSequence], scores, fps: float, threshold: float,
                     **detector) -> Dict[str, Dict[str, float]]:
    """The runtime's interval detector (fixed threshold, micro/macro by duration) over per-frame
    scores; MEGC spotting by kind against the sequences' targets."""
    from microexp.edge.spotting import IntervalSpotter

    from .metrics import intervals, spotting_by_kind
    truth, predicted = [], []
    for s, score in zip(seqs, scores):
        spotter = IntervalSpotter(fps, threshold=threshold, **detector)
        found = []
        for i, v in enumerate(score):
            if s.targets[i] == IGNORE:
                continue
            ev = spotter.update(i, i / fps, float(v))
            if ev is not None:
                found.append((ev.onset_frame, ev.offset_frame, ev.kind))
        truth.append([(a, b, kind) for k, kind in ((1, "macro"), (2, "micro")) for a, b in intervals(s.targets == k)])
        predicted.append(found)
    return spotting_by_kind(truth, predicted)


MIN_EVENT_MS = (40.0, 100.0, 200.0)  # the shortest event: the detector's other setting chosen on the development set


def choose_threshold(seqs, scores, fps: float, grid: Sequence[float] = THRESHOLDS,
                     min_ms_grid: Sequence[float] = MIN_EVENT_MS):
    """(threshold, shortest event in ms, their scores, the grid's F1 over all intervals): the
    detector settings with the best F1 over all intervals on a development set; of tied
    thresholds (at the best shortest event, the shortest of tied ones), the middle one (the
    lower of two)."""
    table = {(t, m): spot_from_scores(seqs, scores, fps, t, min_ms=m) for m in min_ms_grid for t in grid}
    top = max(r["all"]["f1"] for r in table.values())
    min_ms = min(m for (t, m), r in table.items() if r["all"]["f1"] == top)
    tied = sorted(t for t in grid if table[(t, min_ms)]["all"]["f1"] == top)
    best = tied[(len(tied) - 1) // 2]
    return best, min_ms, table[(best, min_ms)], {f"{t}@{m:g}ms": round(r["all"]["f1"], 4) for (t, m), r in table.items()}


def save_graph_checkpoint(path, model: RegionGraphSpotter, meta: Dict[str, object]) -> Path:
    from .checkpoint import atomic_torch_save
    return atomic_torch_save(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                                    "model": "graph_spotter", "config": model.config, "metadata": meta})


@dataclass
class GraphSpotterSettings:
    """What `microexp train graph-spotter` is asked for (its options, one field each)."""
    data: Sequence[str]  # sets written by `microexp synth --mixed` (training)
    out: str  # checkpoint path; the card is written beside it
    dev: Optional[str] = None  # a further generated set that chooses the detector threshold
    graph: Optional[str] = None  # edge weights JSON (training/au_graph.py); default: SAMM's
    flow: str = "farneback"
    fps: Optional[float] = None  # the sets' frame rate; default: their set.json's
    steps: int = 600
    window: int = 128
    batch_size: int = 16
    lr: float = 2e-3
    balance: float = 0.5
    flip: bool = True
    seed: int = 0


def licence(graph: Dict[str, object]) -> str:
    """The weights' terms: the generated clips', and those of the sheet the graph was counted from."""
    source = SAMM_SOURCE if graph.get("source") == "samm.csv" and graph.get("events") == 159 else \
        f"the annotation sheet {graph.get('source')} ({graph.get('events')} events), whose terms apply"
    return LICENCE.format(source=source)


def model_card(command: str, data: str, graph: Dict[str, object], threshold, dev, settings) -> str:
    lines = ["# Model card: graph spotter (AU-aware region graph, causal temporal convolution)", "",
             f"- Produced by: `{command}`",
             f"- Training data: {data}; per-frame region flow features from the Pipeline itself "
             "(training/graph_spotter.py), labels none / macro / micro from each set's samm.csv",
             f"- Graph: edge weights from AU co-occurrence in {graph['source']} ({graph['events']} events), "
             "training/au_graph.py",
             f"- Licence note: {licence(graph)}",
             "- Input per step: (12, 4) region flow (mean u, mean v, main-direction magnitude and angle; "
             "px on a 224 px crop); state: the 62 frames before",
             f"- Frame rate trained at: {settings.fps} fps (its 63-frame view spans {RECEPTIVE / settings.fps:.2f} s)",
             f"- Flow: {settings.flow}",
             f"- Outputs: logits over {', '.join(CLASSES)}; the runtime's score is 1 - p(none), "
             "events micro or macro by duration (PipelineConfig.micro_max_ms)"]
    if threshold is not None:
        lines.append(f"- Event detector threshold on 1 - p(none): {threshold}, shortest event {dev['min_event_ms']:g} ms "
                     "(chosen on the development set)")
    if dev:
        lines.append(f"- Development set, MEGC interval metric (IoU >= 0.5): "
                     f"{json.dumps({k: v for k, v in dev.items() if k != 'grid_f1_all'})}")
    return "\n".join(lines) + "\n"


def set_rate(roots: Sequence[str]) -> float:
    """The frame rate the generated sets share (their set.json); ValueError when they differ or
    one does not say (then --fps names it)."""
    rates = {}
    for root in roots:
        meta = Path(root) / "set.json"
        if not meta.is_file():
            raise ValueError(f"{root}: no set.json to read its frame rate from; pass --fps")
        rates[str(root)] = float(json.loads(meta.read_text())["fps"])
    if len(set(rates.values())) != 1:
        raise ValueError(f"the sets have different frame rates {rates}; the spotter learns one rate: "
                         "generate them alike, or pass --fps to read them all at one rate")
    return next(iter(rates.values()))


def train(settings: GraphSpotterSettings, command: str, progress: bool = False) -> Dict[str, object]:
    """Encode the sets, train, choose the threshold on the development set, save the checkpoint and
    its card. Returns the summary the CLI prints."""
    from microexp.edge.atomic_io import atomic_write_text
    from microexp.edge.flow import describe, flow_token

    from . import au_graph
    s = settings
    for root in list(s.data) + ([s.dev] if s.dev else []):  # named before minutes of encoding
        if not (Path(root) / "samm.csv").is_file():
            raise FileNotFoundError(f"{root}: no samm.csv; expected a set written by `microexp synth --mixed`")
    s = dataclasses.replace(s, fps=s.fps or set_rate(list(s.data) + ([s.dev] if s.dev else [])))
    graph_path = Path(s.graph) if s.graph else DEFAULT_GRAPH
    weights = au_graph.load(graph_path)
    graph = json.loads(graph_path.read_text())
    token = flow_token(s.flow)
    seqs: List[RegionSequence] = []
    for root in s.data:
        seqs += encode_set(root, s.fps, progress=progress, flow=s.flow)
    if not any((q.targets > 0).any() for q in seqs):
        raise ValueError(f"{', '.join(map(str, s.data))}: no frame inside an event; generate sets with events "
                         "(microexp synth --mixed)")
    dev_seqs = encode_set(s.dev, s.fps, flow=s.flow) if s.dev else None
    model = train_graph_spotter(seqs, weights, steps=s.steps, window=s.window, batch_size=s.batch_size, lr=s.lr,
                                seed=s.seed, balance=s.balance, flip=s.flip, progress=progress)
    threshold, min_ms, dev = None, None, None
    if dev_seqs is not None:
        threshold, min_ms, best, grid = choose_threshold(dev_seqs, expression_scores(model, dev_seqs), s.fps)
        dev = {"set": str(s.dev), "threshold": threshold, "min_event_ms": min_ms, **best, "grid_f1_all": grid}
    data = f"{len(seqs)} generated clips from {', '.join(map(str, s.data))}"
    meta = {"task": "spotting", "labels": list(CLASSES), "input_encoding": "region-flow",
            "input_channels": ["mean_u", "mean_v", "main_magnitude", "main_angle"], "input_scale": 1.0,
            "flow": token, "flow_method": "runtime region_flow of reference->current flow, " + describe(s.flow),
            "output_kind": "logits", "state": {"size": model.state_size}, "spot_threshold": threshold,
            "spot_min_ms": min_ms, "licence": licence(graph), "frame_rate": s.fps,
            "graph": {"source": graph["source"], "events": graph["events"]},
            "provenance": f"runtime region features of generated clips: {data}",
            "spec": {"steps": s.steps, "window": s.window, "batch_size": s.batch_size, "lr": s.lr,
                     "balance": s.balance, "flip": s.flip, "seed": s.seed},
            "metrics": {"development": dev, "command": command} if dev else {"command": command}}
    path = save_graph_checkpoint(s.out, model, meta)
    card = atomic_write_text(Path(s.out).with_suffix(".md"), model_card(command, data, graph, threshold, dev, s))
    return {"checkpoint": str(path), "model_card": str(card), "clips": len(seqs),
            "frames": int(sum(len(q.targets) for q in seqs)), "threshold": threshold, "development": dev}
