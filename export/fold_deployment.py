"""What deployment does to a LOSO fold's accuracy: the fold's model exported to ONNX and
quantised to INT8, predicting the held-out subject with ONNX Runtime. Plugged into the fold
runner as its `fold_extra` (microexp.training.loso.FoldExtra) by `microexp train loso --int8-eval`."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from microexp.training.checkpoint import save_checkpoint
from microexp.training.experiment import Experiment
from microexp.training.inputs import prepare_inputs

from .onnx_export import export_onnx
from .quantize import quantize_int8


def deployed_predictions(exp: Experiment, model, test_maps: np.ndarray, thresholds,
                         landmarks: Optional[np.ndarray], labels: Sequence[str], dataset: str) -> dict:
    """{'pred_ort_fp32': [...], 'pred_ort_int8': [...]}: class ids (emotion) or 0/1 decisions
    (au, at `thresholds` or exp.threshold) of the exported and the quantised model."""
    import onnxruntime as ort
    x = prepare_inputs(exp, test_maps, landmarks=landmarks).numpy()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "fold.pt", model.cpu(), exp, dataset=dataset, labels=list(labels),
                               metrics={}, provenance="LOSO fold", thresholds=thresholds)
        fp32 = export_onnx(ckpt, Path(tmp) / "fold.onnx", parity_samples=8).onnx_path
        int8 = quantize_int8(fp32, Path(tmp) / "fold.int8.onnx", calibration_samples=64)
        for name, path in (("pred_ort_fp32", fp32), ("pred_ort_int8", int8)):
            logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            if exp.task == "emotion":
                pred = logits.argmax(1)
            else:
                t = exp.threshold if thresholds is None else np.asarray(thresholds)
                pred = (1 / (1 + np.exp(-logits)) >= t).astype(np.int64)
            out[name] = pred.tolist()
    return out
