"""Model inputs from whole maps: the training-time augmentations (landmark jitter, mirroring),
HTNet's four-region composite, and the input scale."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .datasets.megc import FALLBACK_LANDMARKS_28
from .experiment import Experiment
from .regions import compose_batch, flip_landmarks, flip_maps


def prepare_inputs(exp: Experiment, maps: np.ndarray, rng: Optional[np.random.Generator] = None,
                   landmarks: Optional[np.ndarray] = None) -> torch.Tensor:
    """Model input from whole maps: optional landmark jitter and random flip (training only),
    region composite (per-sample landmarks (N, 5, 2) on the 28x28 grid, or HTNet's fallback
    ones), scaling."""
    x = maps
    if rng is not None and exp.landmark_jitter:
        base = FALLBACK_LANDMARKS_28[None] if landmarks is None else np.asarray(landmarks, np.float64)
        j = exp.landmark_jitter
        landmarks = base + rng.integers(-j, j + 1, size=(len(x), 5, 2))
    if rng is not None and exp.flip:
        chosen = rng.random(len(x)) < 0.5
        x = x.copy()
        x[chosen] = flip_maps(x[chosen])
        if landmarks is not None:
            landmarks = np.array(landmarks, dtype=np.float64)
            landmarks[chosen] = flip_landmarks(landmarks[chosen])
    if exp.input == "composite":
        x = compose_batch(x, landmarks)
    return torch.from_numpy(np.ascontiguousarray(x * exp.scale, dtype=np.float32))


def num_outputs_for(exp: Experiment, targets: np.ndarray) -> int:
    return 3 if exp.task == "emotion" else targets.shape[1]
