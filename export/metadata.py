"""A training checkpoint's metadata as the model contract an exported ONNX file carries
(microexp.edge.model_spec.ModelSpec, which documents every key)."""
from __future__ import annotations

from typing import Mapping

from microexp.edge.model_spec import ModelSpec


def producer_version() -> str:
    from microexp import __version__
    return __version__


def spec_from_checkpoint(meta: Mapping[str, object]) -> ModelSpec:
    """The ModelSpec of a checkpoint's metadata (training/checkpoint.py writes it); a checkpoint
    saved before the flow token existed gets none (the run then says the flow is not stated)."""
    state = meta.get("state")
    spec = ModelSpec(
        task=str(meta["task"]), labels=tuple(meta["labels"]), input_encoding=str(meta["input_encoding"]),
        input_scale=float(meta["input_scale"]), input_channels=tuple(meta["input_channels"]),
        flow=str(meta.get("flow") or ""), flow_method=str(meta["flow_method"]),
        output_kind=str(meta["output_kind"]),
        thresholds=tuple(float(t) for t in meta["thresholds"]) if meta.get("thresholds") else None,
        state_size=int(state.get("hidden", state.get("size", 0))) if isinstance(state, dict) else 0,
        spot_threshold=float(meta["spot_threshold"]) if meta.get("spot_threshold") is not None else None,
        spot_min_ms=float(meta["spot_min_ms"]) if meta.get("spot_min_ms") is not None else None,
        frame_rate=float(meta["frame_rate"]) if meta.get("frame_rate") is not None else None,
        flow_shift=meta.get("flow_shift"), au_quality=meta.get("au_quality"), licence=str(meta.get("licence") or ""),
        producer="microexp-edge", producer_version=producer_version())
    spec.validate("checkpoint metadata")
    return spec
