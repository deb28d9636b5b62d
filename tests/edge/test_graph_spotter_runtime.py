"""The shipped graph spotter in the runtime: `--spotter graph` on a generated long clip with
macro- and micro-expressions, the region features it steps on, its detector settings and the
frame-rate note."""
import json

import numpy as np
import pytest

from microexp.edge.config import DEFAULT_GRAPH_SPOTTER, SPOTTERS
from microexp.edge.pipeline import Pipeline, PipelineConfig

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mixed_clip(tmp_path_factory):
    from microexp.training.synth import PHOTOS, generate, load_photos
    root = tmp_path_factory.mktemp("mixed")
    generate(load_photos([PHOTOS / "astronaut.png"]), root, clips_per_photo=1, frames=240, fps=30.0,
             events_per_clip=4, seed=3, size=(256, 256), kind="mixed")
    return root / "001" / "001_1_1"


def test_the_graph_spotter_steps_on_the_region_features_of_each_frame(mixed_clip):
    """Its probabilities are the ONNX model stepped over the frames' region features (what
    return_regions hands out), from a zero state: nothing else reaches it."""
    import onnxruntime as ort
    config = dict(au_model=None, emotion_model=None, fps=30.0, **SPOTTERS["graph"])
    with Pipeline(PipelineConfig(**config, return_regions=True)) as pipe:
        assert pipe.spotter_model.spec.input_encoding == "region-flow"
        assert pipe.spot_threshold == pipe.spotter_model.spec.spot_threshold == 0.85
        assert pipe.min_event_ms == pipe.spotter_model.spec.spot_min_ms
        results = list(pipe.stream(mixed_clip, fps=30.0))
    assert all(r.success for r in results) and list(results[0].spotting) == ["none", "macro", "micro"]
    session = ort.InferenceSession(str(DEFAULT_GRAPH_SPOTTER), providers=["CPUExecutionProvider"])
    state = np.zeros((1, int(session.get_inputs()[1].shape[1])), np.float32)
    for r in results:
        logits, state = session.run(None, {"input": r.regions[None], "state": state})
        p = np.exp(logits[0] - logits[0].max())
        assert np.allclose(p / p.sum(), list(r.spotting.values()), atol=1e-5)
    # The regions are the flow's per-region statistics: the first frame is compared with itself.
    assert np.abs(results[0].regions[:, :3]).max() < 0.01
    assert "spotter_model" in results[5].latency_ms


def test_run_spotter_graph_reports_macro_and_micro_events(mixed_clip, tmp_path, capsys):
    from microexp.cli import main
    from microexp.training.synth_eval import read_sheet
    out = tmp_path / "run"
    assert main(["run", str(mixed_clip), "--fps", "30", "--spotter", "graph", "--out", str(out), "--no-timeline",
                 "--emotion-model", "none"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert summary["events"] == len(events) == sum(summary["events_by_kind"].values())
    for e in events:  # a kind, by duration against the 500 ms boundary
        ms = (e["offset_frame"] - e["onset_frame"] + 1) / 30 * 1000
        assert e["kind"] == ("micro" if ms <= 500 + 1e-6 else "macro") and ms >= 200 - 1e-6
    truth = read_sheet(mixed_clip.parent.parent, kinds=True)[("001", "001_1_1")]
    # What it found on this generated clip (seed 3; the runtime's own figures are in docs/spotting.md):
    # every event overlaps a planted one of its kind.
    assert events and all(any(k == e["kind"] and a <= e["offset_frame"] and e["onset_frame"] <= b for a, b, k in truth)
                          for e in events)
    info = json.loads((out / "model_info.json").read_text())
    assert info["models"]["spotter"]["path"].endswith("graph_spotter.onnx")
    assert not any("fps" in n for n in info["notes"])  # the stream's rate is the model's


def test_a_stream_at_another_rate_is_noted(mixed_clip, tmp_path, capsys):
    from microexp.cli import main
    out = tmp_path / "run200"
    assert main(["run", str(mixed_clip), "--fps", "200", "--spotter", "graph", "--out", str(out), "--no-timeline",
                 "--emotion-model", "none", "--max-frames", "20"]) == 0
    capsys.readouterr()
    notes = json.loads((out / "model_info.json").read_text())["notes"]
    assert any("trained on clips at 30 fps and this stream runs at 200 fps" in n for n in notes)


def test_the_micro_macro_boundary_is_a_setting(mixed_clip, tmp_path, capsys):
    from microexp.cli import main
    out = tmp_path / "micro_only"
    assert main(["run", str(mixed_clip), "--fps", "30", "--spotter", "graph", "--out", str(out), "--no-timeline",
                 "--emotion-model", "none", "--macro-max-ms", "0"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events_by_kind"]["macro"] == 0
    # A shortest event above the boundary: macro-expressions only.
    out = tmp_path / "macro_only"
    assert main(["run", str(mixed_clip), "--fps", "30", "--spotter", "graph", "--out", str(out), "--no-timeline",
                 "--emotion-model", "none", "--min-event-ms", "600"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events_by_kind"]["micro"] == 0
    with pytest.raises(ValueError, match="micro_max_ms must be positive"):
        PipelineConfig(micro_max_ms=0)


def test_a_model_for_other_input_is_refused_in_the_au_or_emotion_role(tmp_path):
    for role in ("au_model", "emotion_model"):
        with pytest.raises(ValueError, match="graph_spotter.onnx: its input is 'region-flow'"):
            Pipeline(PipelineConfig(**{"au_model": None, "emotion_model": None, role: str(DEFAULT_GRAPH_SPOTTER)}))


def test_the_graph_spotter_is_refused_as_a_native_tensorrt_engine():
    from microexp.edge.backends import open_model
    with pytest.raises(ValueError, match="graph_spotter.onnx: the graph spotter .* runs on ONNX Runtime"):
        open_model(DEFAULT_GRAPH_SPOTTER, "tensorrt")


@pytest.mark.parametrize("key, value", [("frame_rate", -30.0), ("spot_min_ms", 0.0)])
def test_spotter_metadata_out_of_range_is_named(key, value):
    from dataclasses import replace

    from microexp.edge.backends import open_model
    from microexp.edge.model_spec import ModelSpecError
    spec = open_model(DEFAULT_GRAPH_SPOTTER, "onnxruntime").spec  # as shipped: valid
    with pytest.raises(ModelSpecError, match=f"graph: metadata '{key}'"):
        replace(spec, **{key: value}).validate("graph")
