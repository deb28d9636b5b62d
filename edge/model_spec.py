"""The model contract: what a microexp ONNX file says about itself in its `metadata_props`,
read and written here only. The exporter writes it (`ModelSpec.to_props`), every backend and the
TensorRT calibration read it (`ModelSpec.from_props`).

Keys (values are strings; lists, numbers and objects are JSON):
  task            'emotion' | 'au' | 'spotting'
  labels          list, the order of the output columns
  input_encoding  'hsv28' | 'uvs28' | 'uvs28-regions' | 'region-flow' (the twelve facial regions'
                  kernels.region_flow features, (12, 4) per frame: the graph spotter) |
                  'gray-volume' (a stack of aligned grey frames, (1, T, S, S): MicroExpSTCNN)
  input_channels  list, e.g. ["u", "v", "strain"] or ["B", "G", "R"]
  input_scale     number: the model takes encoder values 0..255 times this
  flow            token of the optical flow the training inputs were made with: a runtime flow
                  (`farneback`, `farneback-fast`, `dis-medium`, `tvl1`, ...) or a published set's
                  (`megc2019-composite`); compared exactly with the runtime's flow
  flow_method     the same in words, for people
  flow_shift      object (optional): how far the model's outputs move between its training
                  flow and the runtime's, measured, with the command that measured it
  output_kind     'logits' (sigmoid/softmax are the caller's)
  thresholds      list (au only): decision thresholds on sigmoid(logits), in label order
  state_size      number (streaming models only): size of each state input (h and c of the
                  CNN-LSTM; the graph spotter's one `state`, its last frames' inputs)
  frame_rate      number (temporal spotting models, optional): the frame rate its training
                  clips had; a stream at another rate is noted in the run's summary
  spot_min_ms     number (spotting models, optional): the shortest event the detector reports
                  with this model's score, chosen on a development set with spot_threshold
  spot_threshold  number (spotting models, optional): the event detector's threshold on
                  1 - p(none), chosen on a development set
  au_quality      object (AU models, optional): how well each AU is detected, measured without
                  test data: {"per_au": {AU: {"f1", "precision", "recall", "positives"}},
                  "mean_f1_min10", "bar": {"min_positives", "min_f1"}, "protocol", "command"};
                  the runtime reports by default only the AUs that pass the bar
  licence         the terms the weights carry (e.g. research use only: trained on features of
                  research-licensed data sets), stated wherever a run reports the model
  producer, producer_version
Other keys (e.g. `quantization`) are kept as they are in `extra`.
Readable without the onnx package, through onnxruntime's custom_metadata_map.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Mapping, Optional, Tuple

TASKS = ("emotion", "au", "spotting")
ENCODINGS = ("hsv28", "uvs28", "uvs28-regions", "region-flow", "gray-volume")
# Flows of published training sets, which no runtime flow mode reproduces.
PUBLISHED_FLOWS = {
    "megc2019-composite": "as published with the MEGC2019 composite in the official HTNet repository "
                          "(u, v, optical strain of onset->apex, each min-max normalised to 0..255, 28x28 PNG)",
}
REQUIRED = ("task", "labels", "input_encoding", "input_scale", "output_kind")
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_JSON = ("labels", "input_channels", "input_scale", "thresholds", "state_size", "spot_threshold", "spot_min_ms", "frame_rate",
         "flow_shift",
         "au_quality")


def passes_bar(figures: Optional[Dict[str, object]], bar: Dict[str, float]) -> bool:
    """Whether an AU's measured figures ({'f1', 'positives', ...}) pass a reporting bar."""
    return (figures is not None and figures["positives"] >= bar["min_positives"]
            and (figures["f1"] or 0.0) >= bar["min_f1"])


class ModelSpecError(ValueError):
    """Metadata that is missing, malformed or inconsistent; the message names the file and key."""


@dataclass(frozen=True)
class ModelSpec:
    task: str
    labels: Tuple[str, ...]
    input_encoding: str
    input_scale: float
    input_channels: Tuple[str, ...] = ()
    flow: str = ""
    flow_method: str = ""
    output_kind: str = "logits"
    thresholds: Optional[Tuple[float, ...]] = None
    state_size: int = 0
    spot_threshold: Optional[float] = None
    spot_min_ms: Optional[float] = None
    frame_rate: Optional[float] = None
    flow_shift: Optional[Dict[str, object]] = None
    au_quality: Optional[Dict[str, object]] = None
    licence: str = ""
    producer: str = "microexp-edge"
    producer_version: str = ""
    extra: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "input_channels", tuple(self.input_channels))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))

    def validate(self, source: str = "model") -> None:
        def bad(key, why):
            raise ModelSpecError(f"{source}: metadata '{key}' {why}")
        if self.task not in TASKS:
            bad("task", f"must be one of {TASKS}, got {self.task!r}")
        if not self.labels or not all(isinstance(n, str) and n for n in self.labels):
            bad("labels", f"must be a non-empty list of names, got {list(self.labels)!r}")
        if len(set(self.labels)) != len(self.labels):
            bad("labels", f"repeats a name: {list(self.labels)!r}")
        if self.input_encoding not in ENCODINGS:
            bad("input_encoding", f"must be one of {ENCODINGS}, got {self.input_encoding!r}")
        if not (isinstance(self.input_scale, (int, float)) and math.isfinite(self.input_scale)
                and self.input_scale > 0):
            bad("input_scale", f"must be a positive finite number, got {self.input_scale!r}")
        if self.flow and not _TOKEN.match(self.flow):
            bad("flow", f"must be a lower-case token such as 'farneback', got {self.flow!r}")
        if self.output_kind != "logits":
            bad("output_kind", f"must be 'logits', got {self.output_kind!r}")
        if self.thresholds is not None and (len(self.thresholds) != len(self.labels)
                                            or not all(0.0 <= t <= 1.0 for t in self.thresholds)):
            bad("thresholds", f"must hold one value in 0..1 per label ({len(self.labels)}), "
                              f"got {list(self.thresholds)!r}")
        if not isinstance(self.state_size, int) or self.state_size < 0:
            bad("state_size", f"must be a non-negative integer, got {self.state_size!r}")
        if self.spot_threshold is not None and not 0.0 <= self.spot_threshold <= 1.0:
            bad("spot_threshold", f"must be within 0..1, got {self.spot_threshold!r}")
        if self.spot_min_ms is not None and not (isinstance(self.spot_min_ms, (int, float))
                                                 and math.isfinite(self.spot_min_ms) and self.spot_min_ms > 0):
            bad("spot_min_ms", f"must be a positive number of milliseconds, got {self.spot_min_ms!r}")
        if self.frame_rate is not None and not (isinstance(self.frame_rate, (int, float))
                                                and math.isfinite(self.frame_rate) and self.frame_rate > 0):
            bad("frame_rate", f"must be a positive finite number, got {self.frame_rate!r}")
        if self.au_quality is not None:
            q = self.au_quality
            per_au, bar = (q.get("per_au"), q.get("bar")) if isinstance(q, dict) else (None, None)
            if not isinstance(per_au, dict) or not isinstance(bar, dict) or \
                    not {"min_positives", "min_f1"} <= set(bar) or not set(per_au) <= set(self.labels):
                bad("au_quality", "must hold 'per_au' (figures for some of the labels) and 'bar' "
                                  "('min_positives', 'min_f1')")
            for name, figures in per_au.items():
                if not isinstance(figures, dict) or not {"f1", "positives"} <= set(figures):
                    bad("au_quality", f"{name} needs at least 'f1' and 'positives', got {figures!r}")

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "ModelSpec":
        """The spec in an ONNX file's metadata_props; `source` names the file in errors."""
        missing = [k for k in REQUIRED if k not in props]
        if missing:
            raise ModelSpecError(f"{source}: not a microexp model (metadata lacks {missing})")
        values: Dict[str, object] = {}
        known = {f.name for f in fields(cls)} - {"extra"}
        for key, text in props.items():
            if key not in known:
                continue
            if key in _JSON:
                try:
                    values[key] = json.loads(text)
                except (ValueError, TypeError) as err:
                    raise ModelSpecError(f"{source}: metadata '{key}' is malformed: {text!r}") from err
            else:
                values[key] = text
        try:
            values["input_scale"] = float(values["input_scale"])
            if "state_size" in values:
                values["state_size"] = int(values["state_size"])
            if values.get("spot_threshold") is not None:
                values["spot_threshold"] = float(values["spot_threshold"])
            spec = cls(**values, extra={k: v for k, v in props.items() if k not in known})
        except (TypeError, ValueError) as err:
            raise ModelSpecError(f"{source}: metadata does not describe a microexp model: {err}") from err
        spec.validate(source)
        return spec

    def to_props(self) -> Dict[str, str]:
        """metadata_props for an ONNX file: every value a string, optional keys only when set."""
        self.validate("ModelSpec")
        out: Dict[str, str] = {}
        for key, value in asdict(self).items():
            if key == "extra" or value is None or (key == "state_size" and not value):
                continue
            out[key] = json.dumps(list(value) if isinstance(value, tuple) else value) if key in _JSON else str(value)
        out.update(self.extra)
        return out

    def reported_aus(self) -> Tuple[str, ...]:
        """The labels whose measured quality passes the model's bar, in label order; every label
        when the model states no quality figures (nothing to judge them by)."""
        if not self.au_quality:
            return self.labels
        per_au, bar = self.au_quality["per_au"], self.au_quality["bar"]
        return tuple(n for n in self.labels if passes_bar(per_au.get(n), bar))

    def flow_description(self) -> str:
        return self.flow_method or PUBLISHED_FLOWS.get(self.flow, self.flow or "not stated")
