"""Fitting the action gate on generated calibration sets, and the evaluation command that reads
the outputs where the answer is known."""
import json

import numpy as np
import pytest

from microexp.cli import main
from microexp.edge.action import GATE_KIND, GateParams
from microexp.edge.config import SAMPLE_CLIP
from microexp.training.action_fit import choose_threshold, logistic, read_clips, set_fps

from ..edge.clip import PHOTO


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    common = ["--photos", str(PHOTO), "--size", "320x320", "--fps", "100"]
    assert main(["synth", "--out", str(root / "events"), "--clips", "2", "--frames", "90", "--events", "1",
                 "--seed", "5", *common]) == 0
    assert main(["synth", "--out", str(root / "still"), "--clips", "1", "--frames", "60", "--events", "0",
                 "--no-blinks", "--seed", "6", *common]) == 0
    return root


def test_a_generated_set_says_its_frame_rate_and_every_clip_s_blinks(sets):
    assert set_fps(sets / "events") == 100.0 and set_fps(sets / "nowhere", 30.0) == 30.0
    clips = read_clips(sets / "still")
    assert list(clips) == [("001", "001_1_1")] and clips[("001", "001_1_1")] == {"events": [], "blinks": []}
    events = read_clips(sets / "events")
    assert all(len(v["events"]) == 1 and v["events"][0][3] for v in events.values())  # planted AU numbers


def test_fit_gate_writes_a_gate_the_runtime_loads(sets, tmp_path, capsys):
    out = tmp_path / "gate.json"
    capsys.readouterr()
    assert main(["fit-gate", str(sets / "events"), str(sets / "still"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == GATE_KIND and "microexp fit-gate" in doc["provenance"]["command"]
    cal = doc["calibration"]
    assert cal["still_clips"] == 1 and cal["frames"]["action"] > 0
    assert cal["still_frames_at_or_above"] <= 0.005  # the rule the threshold was chosen by
    params = GateParams.from_file(out)
    assert params.weights[0] > 0  # more motion, more action
    assert main(["fit-gate", str(sets / "still"), "--out", str(tmp_path / "x.json")]) == 2
    assert "needs clips with planted events and still clips" in capsys.readouterr().err


def test_the_threshold_rule_and_the_logistic_fit():
    still = np.concatenate([np.full(990, 0.1), np.full(10, 0.97)])
    assert choose_threshold(still, 0.005) == 0.98  # 1% of still frames at 0.97: the next step up
    assert choose_threshold(still, 0.02) == 0.11
    x = np.r_[np.random.default_rng(0).normal(0, 1, 200), np.random.default_rng(1).normal(3, 1, 200)][:, None]
    y = np.r_[np.zeros(200), np.ones(200)]
    w, b = logistic(x, y)
    assert w[0] > 1 and abs(b / w[0] + 1.5) < 0.3  # the boundary half-way between the classes


def test_eval_outputs_reports_every_part(sets, capsys):
    capsys.readouterr()
    assert main(["eval-outputs", "--still", str(PHOTO), "--talking", str(SAMPLE_CLIP), "--generated",
                 str(sets / "events"), "--all-aus", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    still = report["still"]
    assert still["faces"] == 1 and still["tracked_frames"] == 200 and 0 <= still["any_au_present"] <= 1
    talking = report["talking"]
    assert talking["minutes"] > 0 and talking["events_per_minute"] >= 0
    generated = report["generated"]
    assert generated["apexes"] == 2 and len(generated["reported_aus"]) == 25
    assert all(0 <= a["hit_rate"] <= 1 and a["planted"] >= 1 for a in generated["per_au"].values())
    classifier = report["classifier"]  # the AU model's own figures and bar
    assert classifier["reported"] and classifier["mean_f1_min10"] > 0
    assert set(classifier["per_au"]) == set(classifier["reported"])
    assert main(["eval-outputs"]) == 2


def test_extra_training_rows_are_read_in_the_set_s_label_order_and_bad_files_are_named(tmp_path):
    from microexp.training.au_maps import load_maps, save_maps
    maps = np.zeros((2, 3, 28, 28), np.float32)
    path = save_maps(tmp_path / "rows.npz", maps, np.array([[1, 0], [0, 1]]), np.array(["a", "b"]),
                     ["AU04", "AU12"], {"command": "test"})
    _, targets, subjects = load_maps(path, ["AU12", "AU01", "AU04"])
    assert targets.tolist() == [[0, 0, 1], [1, 0, 0]] and subjects.tolist() == ["a", "b"]  # AU01 never planted
    with pytest.raises(FileNotFoundError, match="gone.npz"):
        load_maps(tmp_path / "gone.npz", ["AU04"])
    (tmp_path / "junk.npz").write_bytes(b"not a file of rows")
    with pytest.raises(ValueError, match="junk.npz: not a file written by"):
        load_maps(tmp_path / "junk.npz", ["AU04"])
