"""Self-describing ONNX models: what the runtime needs to know, in the file's metadata_props.

Keys (all values are strings; lists and numbers are JSON):
  task            'emotion' | 'au' | 'spotting'
  labels          JSON list, the order of the output columns
  input_encoding  'hsv28' | 'uvs28' | 'uvs28-regions'
  input_channels  JSON list, e.g. ["u", "v", "strain"] or ["B", "G", "R"]
  input_scale     JSON number: the model takes encoder values 0..255 times this
  flow_method     how the training inputs' optical flow was computed
  output_kind     'logits' (sigmoid/softmax are the caller's)
  thresholds      JSON list (au only): decision thresholds on sigmoid(logits)
  state_size      JSON number (streaming models only): size of h and c
  spot_threshold  JSON number (spotting models, optional): the event detector's threshold on
                  1 - p(none), chosen on a development set when the model was trained
  producer, producer_version
Readable without the onnx package through onnxruntime's custom_metadata_map.
"""
from __future__ import annotations

import json
from typing import Dict, Mapping

REQUIRED = ("task", "labels", "input_encoding", "input_channels", "input_scale", "flow_method",
            "output_kind", "producer", "producer_version")
JSON_KEYS = ("labels", "input_channels", "input_scale", "thresholds", "state_size", "spot_threshold")


def producer_version() -> str:
    from microexp import __version__
    return __version__


def from_checkpoint_metadata(meta: Mapping[str, object]) -> Dict[str, str]:
    """metadata_props from a training checkpoint's metadata."""
    props = {
        "task": str(meta["task"]),
        "labels": json.dumps(list(meta["labels"])),
        "input_encoding": str(meta["input_encoding"]),
        "input_channels": json.dumps(list(meta["input_channels"])),
        "input_scale": json.dumps(float(meta["input_scale"])),
        "flow_method": str(meta["flow_method"]),
        "output_kind": str(meta["output_kind"]),
        "producer": "microexp-edge",
        "producer_version": producer_version(),
    }
    if meta.get("thresholds"):
        props["thresholds"] = json.dumps([float(t) for t in meta["thresholds"]])
    if isinstance(meta.get("state"), dict):
        props["state_size"] = json.dumps(int(meta["state"]["hidden"]))
    if meta.get("spot_threshold") is not None:
        props["spot_threshold"] = json.dumps(float(meta["spot_threshold"]))
    return props


def parse(props: Mapping[str, str], source: str = "model") -> Dict[str, object]:
    """Decoded metadata; a missing key or a malformed value is a ValueError naming it."""
    missing = [k for k in REQUIRED if k not in props]
    if missing:
        raise ValueError(f"{source}: not a microexp model, metadata_props lack {missing}")
    out: Dict[str, object] = dict(props)
    for key in JSON_KEYS:
        if key in props:
            try:
                out[key] = json.loads(props[key])
            except json.JSONDecodeError as err:
                raise ValueError(f"{source}: metadata '{key}' is not valid JSON: {props[key]!r}") from err
    return out
