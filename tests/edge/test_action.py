"""The action gate and what it conditions: a still face reads neutral, the first frame of a
track reports nothing, a planted AU turns on at its apex, the model's metadata decides the AU
columns, and the gate file is checked like a model."""
import csv
import json

import numpy as np
import onnx
import pytest

from microexp.edge.action import GATE_KIND, ActionGate, GateParams, RollingWindow
from microexp.edge.config import DEFAULT_GATE, MODELS
from microexp.edge.model_spec import ModelSpec
from microexp.edge.pipeline import Pipeline, PipelineConfig
from microexp.training.synth import ClipSpec, PlantedEvent, load_photos, render_clip, write_clip

from .clip import PHOTO

PARAMS = GateParams(weights=(1.0, 0.5), bias=-1.0, threshold=0.5, prior=(0.2, 0.05), spread_floor=0.02)


def test_the_gate_reads_motion_against_the_face_s_own_noise_floor():
    gate = ActionGate(PARAMS, crop_size=224, fps=100)
    rng = np.random.default_rng(0)
    calm = [gate(0.2 + rng.normal(0, 0.02), 224) for _ in range(60)]
    assert max(calm) < 0.5
    jump = gate(1.5, 224)  # far above this face's calm spread
    assert jump > 0.95
    # The same absolute motion on a face whose calm frames are noisier reads as less action.
    noisy = ActionGate(PARAMS, crop_size=224, fps=100)
    for _ in range(60):
        noisy(0.8 + rng.normal(0, 0.3), 224)
    assert noisy(1.5, 224) < jump


def test_motion_is_measured_in_pixels_of_the_camera_frame():
    # A fast-mode crop (152 px) of the same face shows the same motion in fewer crop pixels.
    fast = ActionGate(PARAMS, crop_size=152, fps=100).features(0.2 * 152 / 224, 180)
    assert fast[0] == pytest.approx(ActionGate(PARAMS, 224, 100).features(0.2, 180)[0])
    # A small face is enlarged to the crop, and its sensor noise with it: 1 crop px on a 56 px
    # face is a quarter of a frame pixel.
    small = ActionGate(PARAMS, 224, 100).features(1.0, 56)[0]
    assert small == pytest.approx(np.log(0.25 + PARAMS.log_offset))


def test_the_rolling_window_is_the_median_and_quartiles_of_its_last_values():
    rng = np.random.default_rng(1)
    window = RollingWindow(size=50, min_count=5)
    values = np.round(rng.normal(0, 1, 400), 2)  # ties too
    for i, v in enumerate(values):
        assert (window.estimate() is None) == (i < 5)
        window.add(float(v))
        last = np.sort(values[max(0, i - 49):i + 1])
        if len(last) >= 5:
            median, spread = window.estimate()
            q1, q3 = last[(len(last) - 1) // 4], last[(3 * (len(last) - 1)) // 4]
            assert median == pytest.approx(np.median(last)) and spread == pytest.approx((q3 - q1) / 1.349)
    window.reset()
    assert window.estimate() is None


def test_before_its_own_calm_frames_a_track_uses_the_prior_then_its_own_and_reset_starts_over():
    gate = ActionGate(PARAMS, crop_size=224, fps=100)
    _, z_first = gate.features(0.3, 224)
    assert z_first == pytest.approx((0.3 - 0.2) / 0.05)  # the prior's median and spread
    for _ in range(20):
        gate.features(1.0, 224)  # this face's level is higher
    _, z_own = gate.features(1.0, 224)
    assert abs(z_own) < 1
    gate.reset()
    assert gate.features(0.3, 224)[1] == pytest.approx(z_first)
    assert gate.features(float("nan"), 224)[0] == pytest.approx(np.log(PARAMS.log_offset))  # no evidence


def test_gate_files_are_checked_and_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.json"):
        GateParams.from_file(tmp_path / "gone.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(ValueError, match="foreign.json: not a microexp-action-gate"):
        GateParams.from_file(foreign)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": GATE_KIND, "parameters": {**PARAMS.to_dict(), "threshold": 1.5}}))
    with pytest.raises(ValueError, match="bad.json.*threshold must be within"):
        GateParams.from_file(bad)
    with pytest.raises(ValueError, match="bad.json"):
        Pipeline(PipelineConfig(action_gate=str(bad)))
    shipped = GateParams.from_file(DEFAULT_GATE)
    assert 0 < shipped.threshold < 1 and shipped.prior[1] > 0


def _clip(tmp_path, events, frames=80, fps=100.0, seed=3, size=None):
    """A generated clip of the committed photo (a face of about 90 px, or smaller at `size`):
    JPEG frames on disk, head wander and sensor noise of 2 grey levels, the planted events."""
    (photo, landmarks), = load_photos([PHOTO])
    spec = ClipSpec(frames=frames, fps=fps, events=events, size=size)
    images, flows = render_clip(photo, landmarks, spec, seed=seed)
    write_clip(tmp_path, "001", "001_1_1", images, flows, spec)
    return tmp_path / "001" / "001_1_1"


def test_a_still_face_reads_neutral(tmp_path):
    folder = _clip(tmp_path, events=[], frames=120)
    with Pipeline(PipelineConfig(all_aus=True)) as pipe:
        results = list(pipe.stream(folder, fps=100))
    assert all(r.success for r in results)
    assert np.mean([any(r.au_present.values()) for r in results]) <= 0.02  # the product's target
    none = [r.emotion["none"] > max(v for k, v in r.emotion.items() if k != "none") for r in results]
    assert np.mean(none) >= 0.95 and np.mean([r.action_present for r in results]) <= 0.02
    assert not any(r.event for r in results)  # nothing happened: no event either
    # Without the gate, the same frames read as expressions: what the gate is for.
    with Pipeline(PipelineConfig(all_aus=True, action_gate=None)) as raw:
        ungated = list(raw.stream(folder, fps=100))
    assert np.mean([any(r.au_present.values()) for r in ungated]) > 0.5


def test_the_first_frame_of_a_track_reports_no_au(tmp_path):
    folder = _clip(tmp_path, events=[], frames=5, size=(320, 320))
    with Pipeline(PipelineConfig(all_aus=True)) as pipe:
        first = next(pipe.stream(folder, fps=100))
    assert first.success and first.action == 0.0 and not first.action_present
    assert not any(first.au_present.values()) and all(p == 0.0 for p in first.au.values())
    assert first.emotion["none"] == 1.0


def test_a_folder_of_unrelated_photos_with_stills_reports_no_action(tmp_path):
    import cv2
    (photo, _), = load_photos([PHOTO])
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, shift in enumerate((0, 12, 24)):  # the same size, the face elsewhere: tracked as one face
        cv2.imwrite(str(folder / f"img{i + 1}.jpg"), np.roll(photo, (shift, -shift), axis=(0, 1)))
    with Pipeline(PipelineConfig(all_aus=True, stills=True)) as pipe:
        results = list(pipe.stream(folder))
    assert all(r.success and r.action == 0.0 and not any(r.au_present.values()) for r in results)
    assert all("detect" in r.latency_ms for r in results)  # every image detected on its own


def test_a_planted_au12_turns_on_at_its_apex_and_unrelated_aus_stay_off(tmp_path):
    event = PlantedEvent({12: "C"}, onset=30, apex=45, offset=65)
    folder = _clip(tmp_path, events=[event], frames=80)
    with Pipeline(PipelineConfig(all_aus=True)) as pipe:
        results = list(pipe.stream(folder, fps=100))
    apex = results[event.apex]
    assert apex.action_present and apex.au_present["AU12"]
    upper_face = ("AU01", "AU02", "AU04", "AU05", "AU07", "AU43")  # nothing moved there
    assert not any(apex.au_present[n] for n in upper_face)
    assert not any(any(r.au_present.values()) for r in results[5:25])  # calm before the onset


def _with_quality(tmp_path, per_au, bar):
    """The shipped AU model with its au_quality replaced."""
    proto = onnx.load(str(MODELS / "au_edge.onnx"))
    spec = ModelSpec.from_props({p.key: p.value for p in proto.metadata_props})
    props = ModelSpec(**{**spec.__dict__, "au_quality": {"per_au": per_au, "bar": bar}}).to_props()
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
    path = tmp_path / "au_quality.onnx"
    onnx.save(proto, str(path))
    return path


def test_the_model_s_metadata_decides_the_au_columns(tmp_path, capsys):
    from microexp.cli import main
    path = _with_quality(tmp_path, {"AU04": {"f1": 0.8, "positives": 18}, "AU12": {"f1": 0.2, "positives": 25},
                                    "AU31": {"f1": 0.67, "positives": 2}}, {"min_positives": 10, "min_f1": 0.3})
    folder = _clip(tmp_path / "clip", events=[], frames=6, size=(320, 320))
    assert main(["run", str(folder), "--fps", "100", "--au-model", str(path), "--out", str(tmp_path / "o"),
                 "--emotion-model", "none", "--no-timeline"]) == 0
    with open(tmp_path / "o" / "frames.csv") as f:
        header = next(csv.reader(f))
    assert [c for c in header if c.startswith("AU")] == ["AU04", "AU04_c"]
    info = json.loads((tmp_path / "o" / "model_info.json").read_text())
    assert info["aus"]["columns"] == ["AU04"] and info["aus"]["figures"]["AU04"]["f1"] == 0.8
    assert "AU12" in info["aus"]["not_reported"] and info["licence"]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["aus"] == ["AU04"] and summary["licence"] == info["licence"]
    # --all-aus: every output, the ones below the bar named as experimental.
    assert main(["run", str(folder), "--fps", "100", "--au-model", str(path), "--out", str(tmp_path / "a"),
                 "--emotion-model", "none", "--no-timeline", "--all-aus"]) == 0
    info = json.loads((tmp_path / "a" / "model_info.json").read_text())
    assert len(info["aus"]["columns"]) == 25 and "AU12" in info["aus"]["experimental"]
    assert "AU04" not in info["aus"]["experimental"]
    assert "experimental AU columns" in capsys.readouterr().err


def test_au_quality_is_part_of_the_contract():
    spec = ModelSpec(task="au", labels=("AU04", "AU12"), input_encoding="hsv28", input_scale=1 / 255,
                     au_quality={"per_au": {"AU04": {"f1": 0.79, "positives": 18}}, "bar": {"min_positives": 10,
                                                                                         "min_f1": 0.3}},
                     licence="research use only")
    assert spec.reported_aus() == ("AU04",)
    again = ModelSpec.from_props(spec.to_props(), "x.onnx")
    assert again.au_quality == spec.au_quality and again.licence == "research use only"
    with pytest.raises(ValueError, match="x.onnx: metadata 'au_quality'"):
        ModelSpec.from_props({**spec.to_props(), "au_quality": json.dumps({"per_au": {"AU99": {}}})}, "x.onnx")
    # No figures: nothing to judge the AUs by, so every one is reported.
    assert ModelSpec(task="au", labels=("AU04", "AU12"), input_encoding="hsv28", input_scale=1.0).reported_aus() \
        == ("AU04", "AU12")
