"""AU training maps from generated clips, as the runtime encodes them: the hsv28 map of each
planted event's apex frame (the Pipeline's own encoding, fixed reference on the clip's first,
neutral frame, as onset -> apex in SAMM), labelled with the AUs planted there.

They are extra training rows for the AU classifier (Experiment.extra_maps): every LOSO fold
trains on them and none is tested on them, so the honest SAMM figures stay SAMM's."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .action_fit import read_clips


def apex_maps(sets: Sequence[str], labels: Sequence[str], fps: float = 200.0, **config):
    """(maps (N, 3, 28, 28) float32 0..255, targets (N, len(labels)) int64, subjects (N,) str):
    one row per planted event whose apex frame was tracked. A planted AU that is not in
    `labels` is dropped from its row (the classifier cannot output it)."""
    from microexp.edge.pipeline import Pipeline, PipelineConfig
    maps, targets, subjects = [], [], []
    for root in sets:
        root = Path(root)
        for (subject, clip), info in sorted(read_clips(root).items()):
            if not info["events"]:
                continue
            settings = PipelineConfig(au_model=None, emotion_model=None, action_gate=None, fps=fps,
                                      return_hsv28=True, **config)
            with Pipeline(settings) as pipe:
                results = list(pipe.stream(root / subject / clip, fps=fps))
            for _, apex, _, aus in info["events"]:
                if apex >= len(results) or not results[apex].success:
                    continue
                maps.append(results[apex].hsv28)
                planted = {f"AU{a:02d}" for a in aus}
                targets.append([int(n in planted) for n in labels])
                subjects.append(f"synth:{root.name}:{subject}")
    if not maps:
        raise ValueError(f"no tracked apex in {list(map(str, sets))}")
    return np.stack(maps).astype(np.float32), np.asarray(targets, np.int64), np.asarray(subjects)


def save_maps(path, maps, targets, subjects, labels, provenance: dict) -> Path:
    from microexp.edge.atomic_io import replacing
    with replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, maps=maps, targets=targets, subjects=subjects,
                                labels=np.asarray(list(labels)), provenance=json.dumps(provenance))
    return Path(path)


def load_maps(path, labels: Sequence[str]):
    """(maps, targets, subjects) of a file written by save_maps, its columns put in `labels`'
    order (a label the file lacks is all 0: the generator never planted it). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"extra maps {path} do not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            maps, targets, subjects, names = data["maps"], data["targets"], data["subjects"], list(data["labels"])
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"extra maps {path}: not a file written by `microexp train au-maps` ({err})") from None
    if maps.ndim != 4 or maps.shape[1:] != (3, 28, 28) or len(targets) != len(maps) or len(subjects) != len(maps):
        raise ValueError(f"extra maps {path}: maps {maps.shape}, targets {targets.shape}, subjects {subjects.shape}")
    column = {n: i for i, n in enumerate(names)}
    ordered = np.zeros((len(maps), len(labels)), np.int64)
    for j, n in enumerate(labels):
        if n in column:
            ordered[:, j] = targets[:, column[n]]
    return maps.astype(np.float32), ordered, subjects.astype(str)
