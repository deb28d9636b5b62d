"""The backend contract, written down: every backend's model (ort.py, ../trt/engine.py)
implements `Model`, and what its `bind()` returns implements `BoundModel`. The runtime uses
nothing else, so a new backend is one module implementing these two."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from ..model_spec import ModelSpec


@runtime_checkable
class BoundModel(Protocol):
    """A model tied to its own buffers, the per-frame path: the caller writes encoder values
    0..255 into `input` (N, 3, 28, 28) float32 and calls; the call scales a copy by the model's
    input_scale (never `input` itself), runs, and returns `output`, the (N, labels) logits,
    allocating nothing. A streaming model's (h, c) are kept between calls: each call
    continues the sequence, `reset_state()` starts a new one."""

    input: np.ndarray
    output: np.ndarray

    def __call__(self) -> np.ndarray: ...

    def reset_state(self) -> None: ...

    def read_state(self) -> Tuple[np.ndarray, ...]:
        """A copy of the streaming state, () for a model without one (several faces, one model)."""

    def load_state(self, *state: np.ndarray) -> None:
        """Continue from a state read_state() gave."""

    def close(self) -> None:
        """Release the buffers (device memory on a GPU backend); the object is unusable after."""


@runtime_checkable
class Model(Protocol):
    """A microexp model opened on one backend (open_model is the factory)."""

    path: Path
    spec: ModelSpec
    providers: List[str]  # where it runs, e.g. ['CPUExecutionProvider'] or ['TensorRT']

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.spec.labels

    @property
    def task(self) -> str:
        return self.spec.task

    def bind(self, batch: int = 1) -> BoundModel: ...

    def run(self, batch: np.ndarray, state: Optional[Tuple[np.ndarray, np.ndarray]] = None):
        """Logits for a float32 (N, 3, 28, 28) batch of encoder values 0..255 (scaled inside,
        the caller's array untouched); a streaming model takes and returns (h, c)."""

    def close(self) -> None:
        """Release the session or engine; bound models made from it must be closed first."""
