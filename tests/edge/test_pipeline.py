import csv
import json

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.edge.backends.ort import OnnxModel
from microexp.edge.config import DEFAULT_SPOTTER
from microexp.edge.pipeline import MODELS, Pipeline, PipelineConfig
from microexp.edge.sources import FrameSource

from .clip import EVENT, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def results(clip):
    with Pipeline.from_defaults() as pipe:
        return list(pipe.stream(clip, fps=100))


def test_every_frame_has_a_tracked_face(results):
    assert len(results) == 60 and all(r.success for r in results)
    assert all(r.confidence > 0.9 for r in results[1:])
    assert results[0].latency_ms.keys() >= {"detect", "flow", "encode", "au_model", "total"}
    assert results[1].latency_ms.keys() >= {"align", "flow", "action", "encode", "au_model", "total"}
    reported = OnnxModel(MODELS / "au_edge.onnx").spec.reported_aus()
    assert tuple(results[5].au) == reported == tuple(results[5].au_present)
    assert all(0 <= p <= 1 for p in results[5].au.values()) and 0 <= results[5].action <= 1
    assert abs(sum(results[5].emotion.values()) - 1) < 1e-5 and "none" in results[5].emotion


def test_planted_mouth_motion_moves_the_lower_face_not_the_brows(results):
    apex = results[(EVENT[0] + EVENT[1]) // 2]
    calm = results[5]
    assert apex.motion["motion_lower"] > 5 * max(apex.motion["motion_upper"], 1e-3)
    assert apex.motion["motion"] > 10 * max(calm.motion["motion"], 1e-3)


def test_the_planted_event_is_spotted(results):
    events = [r.event for r in results if r.event is not None]
    assert len(events) == 1
    ev = events[0]
    inter = min(ev.offset_frame, EVENT[1]) - max(ev.onset_frame, EVENT[0]) + 1
    union = (ev.offset_frame - ev.onset_frame + 1) + (EVENT[1] - EVENT[0] + 1) - inter
    assert inter / union >= 0.5
    assert EVENT[0] <= ev.apex_frame <= EVENT[1]


def test_lag_reference_returns_to_zero_motion_after_the_event(clip):
    pipe = Pipeline(PipelineConfig(reference="lag", lag_ms=50, emotion_model=None))
    res = list(pipe.stream(clip, fps=100))
    assert res[-1].motion["motion"] < 0.2 * max(r.motion["motion"] for r in res)


def test_cli_writes_complete_rows_and_events(clip, tmp_path, capsys):
    assert main(["run", str(clip), "--out", str(tmp_path), "--fps", "100", "--max-frames", "30"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 30
    with open(tmp_path / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and rows[0]["frame"] == "0" and "lat_total" in rows[0] and "action" in rows[0]
    assert {f"{n}_c" for n in summary["aus"]} <= set(rows[0]) and "emotion_none" in rows[0]
    assert all(r["success"] == "1" for r in rows)
    png = cv2.imread(summary["timeline"])
    assert png is not None and png.shape[1] > 1000


def test_run_without_a_source_uses_the_sample_clip(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--max-frames", "40", "--emotion-model", "none"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 40 and summary["lost"] == 0


def test_frames_without_a_face_are_reported_not_dropped():
    pipe = Pipeline(PipelineConfig(emotion_model=None))
    r = pipe.process(np.full((240, 320, 3), 90, np.uint8))
    assert not r.success and r.box is None and all(v != v for v in r.au.values())  # NaN: unknown


def test_a_weak_detection_does_not_start_a_track(monkeypatch):
    # MTCNN scored lettering in a real no-face video 0.73; real faces score >= 0.94.
    from microexp.edge.detect import Face
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    landmarks = np.array([[130, 100], [170, 100], [150, 120], [135, 140], [165, 140]], np.float64)
    for score, tracked in ((0.73, False), (0.95, True)):
        pipe = Pipeline(PipelineConfig(emotion_model=None, au_model=None))
        monkeypatch.setattr(pipe.detector, "detect",
                            lambda f, s=score: [Face(np.array([100.0, 70, 200, 170]), s, landmarks)])
        r = pipe.process(frame)
        assert r.success is tracked and (r.box is not None) is tracked
    loose = Pipeline(PipelineConfig(emotion_model=None, au_model=None, detect_score=0.7))
    monkeypatch.setattr(loose.detector, "detect", lambda f: [Face(np.array([100.0, 70, 200, 170]), 0.73, landmarks)])
    assert loose.process(frame).success
    with pytest.raises(ValueError, match="detect_score must be within 0..1"):
        PipelineConfig(detect_score=1.5)


def test_bad_inputs_are_named(tmp_path):
    pipe = Pipeline(PipelineConfig(emotion_model=None))
    with pytest.raises(TypeError, match="frame"):
        pipe.process(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="frame"):
        pipe.process(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FrameSource(tmp_path / "nowhere.mp4")
    with pytest.raises(ValueError, match="reference"):
        PipelineConfig(reference="sometimes")
    with pytest.raises(ValueError, match="track_level must be 0 to 4"):
        PipelineConfig(track_level=5)
    with pytest.raises(ValueError, match="track_level > 0 needs match_mode 'pyramid'"):
        PipelineConfig(track_level=1, match_mode="exact")
    with pytest.raises(ValueError, match="flow must be one of"):
        Pipeline(PipelineConfig(flow="magic"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        FrameSource(tmp_path / "empty")
    assert main(["run", str(tmp_path / "nowhere.mp4"), "--out", str(tmp_path / "o")]) == 2


def test_folder_frames_are_ordered_by_frame_number(tmp_path):
    for n in (5562, 999, 10000):
        cv2.imwrite(str(tmp_path / f"006_{n:05d}.jpg"), np.full((8, 8), n % 255, np.uint8))
    src = FrameSource(tmp_path, fps=200)
    assert [p.name for p in src.files] == ["006_00999.jpg", "006_05562.jpg", "006_10000.jpg"]
    frames = list(src)
    assert [f.timestamp for f in frames] == [0.0, 0.005, 0.01]


def test_video_file_source(tmp_path):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    with FrameSource(path) as src:
        frames = list(src)
        assert len(src) == 5 and src.fps == pytest.approx(25)
    assert [f.index for f in frames] == list(range(5)) and frames[1].timestamp == pytest.approx(0.04)


def test_bench_reports_stages_for_ours_and_the_baseline(capsys):
    assert main(["bench", "--frames", "8", "--fast-flow", "dis-ultrafast", "--fast-crop", "112", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for column in ("baseline", "ours_reference", "ours_dis-ultrafast@112/track1"):  # half-resolution tracking by default
        assert report[column]["total"]["p50"] > 0
        assert {"align", "flow", "encode", "au_model", "total"} <= set(report[column])
    assert 350 < report["face_box"][2] - report["face_box"][0] < 450  # SAMM-like ~400 px face
    assert report["speedup_total_p50_reference"] > 0 and report["speedup_total_p50_fast"] > 0
    # The baseline keeps the seed's AU model (an HTNet in eager) whatever model the runtime ships.
    import importlib.util
    assert report["baseline_model"] == ("pytorch-eager HTNet (seed size)" if importlib.util.find_spec("torch")
                                        else "onnxruntime (torch not installed)")
    # The planted motion peaks mid-clip: fidelity is measured on those frames. The seed-style
    # baseline computes the reference maps with cv2's Farneback; ours must agree with it.
    fid = report["fidelity_vs_reference"]
    assert fid["baseline"]["frames"] >= 1 and fid["baseline"]["min_r"] > 0.99
    assert -1 <= fid["ours_dis-ultrafast@112/track1"]["median_r"] <= 1
    same = report["same_face_box_as_reference"]
    assert same["frames"] == 7 and 0 <= same["ours_dis-ultrafast@112/track1"] <= 7


def test_planted_motion_moves_the_face_in_the_bench_frames():
    from microexp.edge.bench import planted_profile, samm_like_frames
    strength = planted_profile(10)
    assert strength[0] == 0 and strength.max() > 0.9
    frames = samm_like_frames(10)
    peak = int(np.argmax(strength))
    mouth = (slice(600, 670), slice(880, 940))  # around a mouth corner of the canvas face
    calm = np.abs(frames[1][mouth].astype(int) - frames[0][mouth]).mean()
    moved = np.abs(frames[peak][mouth].astype(int) - frames[0][mouth]).mean()
    assert moved > 2 * calm


def test_unopenable_device_and_foreign_models_are_named(tmp_path):
    from microexp.edge.backends.ort import OnnxModel
    from microexp.edge.detect import MODEL_DIR
    from microexp.edge.sources import SourceUnavailable
    with pytest.raises(SourceUnavailable, match="video99"):
        FrameSource("/dev/video99")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxModel(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.onnx"):
        OnnxModel(bad)
    with pytest.raises(ValueError, match="not a microexp model"):
        OnnxModel(MODEL_DIR / "pnet.onnx")


def test_cli_annotated_video_and_every_au_column(clip, tmp_path, capsys):
    assert main(["run", str(clip), "--out", str(tmp_path), "--fps", "100", "--max-frames", "12",
                 "--video", "--all-aus", "--emotion-model", "none"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cap = cv2.VideoCapture(summary["video"])
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert not list(tmp_path.glob("*.tmp*"))  # the temporary name was renamed away
    with open(tmp_path / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["AU12_c"] for r in rows} <= {"0", "1"} and "AU12" in rows[0]


def test_fixed_reference_reuses_the_onset_expansions_and_fast_mode_runs(tmp_path):
    folder = make_clip(tmp_path / "clip", frames=8)
    pipe = Pipeline(PipelineConfig(flow="farneback", emotion_model=None))
    results = list(pipe.stream(str(folder)))
    assert all(r.success for r in results)
    # frame 0 sets the reference and expands it once; every later frame finds it unchanged
    assert pipe.tracks[0].flow._native.reference_reuses == len(results) - 1  # the face's own flow
    fast = Pipeline(PipelineConfig(flow="farneback-fast", crop_size=144, emotion_model=None, track_level=1))
    fast_results = list(fast.stream(str(folder)))
    assert [r.success for r in fast_results] == [True] * len(results)
    assert set(fast_results[-1].au) == set(results[-1].au)
    # Half-resolution tracking places the face within a pixel of the full-resolution search.
    for full, half in zip(results[1:], fast_results[1:]):
        assert max(abs(a - b) for a, b in zip(full.box, half.box)) <= 1
        assert half.confidence > 0.9


SPOTTER = str(MODELS / "cnn_lstm.onnx")


def test_learned_spotter_carries_its_state_and_restarts_with_the_reference(clip):
    pipe = Pipeline(PipelineConfig(emotion_model=None, spotter_model=SPOTTER))
    # Trained on sequences made from the published composite maps: the run says so, in words.
    assert any("spotter model (cnn_lstm.onnx)" in note for note in pipe.flow_mismatches())
    frames = [f.image for f in FrameSource(clip, fps=100)]
    run = [pipe.process(f) for f in frames[:12]]
    labels = {"none", "negative", "positive", "surprise"}
    assert all(set(r.spotting) == labels and abs(sum(r.spotting.values()) - 1) < 1e-5 for r in run)
    assert "spotter_model" in run[1].latency_ms
    # A new sequence after reset(): the same frames give the same probabilities again.
    pipe.reset()
    again = [pipe.process(f) for f in frames[:12]]
    assert [r.spotting for r in again] == [r.spotting for r in run]
    # The state is carried: frame 11 right after the onset frame (frames 1-10 skipped) meets
    # the same reference and flow but a fresh state, and scores differently.
    pipe.reset()
    pipe.process(frames[0])
    skipped = pipe.process(frames[11])
    assert skipped.spotting != run[11].spotting


def test_learned_spotter_errors_are_named(tmp_path):
    # The learned score without a model named takes the shipped one, in the library as in the CLI.
    assert PipelineConfig(spot_score="learned").spotter_model == str(DEFAULT_SPOTTER)
    au_model = str(MODELS / "au_edge.onnx")
    with pytest.raises(ValueError, match="au_edge.onnx: not a streaming spotting model"):
        Pipeline(PipelineConfig(emotion_model=None, spotter_model=au_model))


def test_cli_learned_spotter_writes_its_columns_and_drives_events(clip, tmp_path, capsys, recwarn):
    # --spot-score learned alone loads the shipped spotter, whose inputs were made with the
    # runtime's own reference flow: no flow-mismatch note. It was trained on 200 fps clips, so
    # this 100 fps stream gets the frame-rate note, and only that.
    args = ["run", str(clip), "--out", str(tmp_path), "--fps", "100", "--max-frames", "20",
            "--emotion-model", "none", "--spot-score", "learned", "--no-timeline"]
    assert main(args) == 0
    (note,) = json.loads((tmp_path / "model_info.json").read_text())["notes"]
    assert note.startswith("the spotter model (spotter.onnx) was trained on clips at 200 fps and this stream runs at 100 fps")
    with open(tmp_path / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20
    probs = [sum(float(r[f"spot_{n}"]) for n in ("none", "negative", "positive", "surprise")) for r in rows]
    assert all(abs(p - 1) < 1e-3 for p in probs) and all(r["lat_spotter_model"] for r in rows)
    assert (tmp_path / "events.jsonl").exists()


class _FedInputs:
    """A bound spotter model that records each input it is stepped on."""

    def __init__(self, bound):
        self.bound, self.input, self.fed = bound, bound.input, []

    def __call__(self):
        self.fed.append(self.input[0].copy())
        return self.bound()

    def reset_state(self):
        self.bound.reset_state()

    def read_state(self):
        return self.bound.read_state()

    def load_state(self, *state):
        self.bound.load_state(*state)


def test_the_uvs28_map_handed_out_is_the_one_the_spotter_steps_on(clip):
    frames = [f.image for f in FrameSource(clip, fps=100)][:25]
    pipe = Pipeline(PipelineConfig(emotion_model=None, spotter_model=SPOTTER, return_uvs28=True))
    spy = _FedInputs(pipe._spot)
    pipe._spot = spy
    with_model = [pipe.process(f) for f in frames]
    assert len(spy.fed) == 25 and all(np.array_equal(r.uvs28, x) for r, x in zip(with_model, spy.fed))
    # Without any uvs28 model the map is encoded for the caller alone, identically.
    plain = Pipeline(PipelineConfig(au_model=None, emotion_model=None, return_uvs28=True))
    alone = [plain.process(f) for f in frames]
    assert all(np.array_equal(a.uvs28, b.uvs28) for a, b in zip(alone, with_model))
    assert alone[22].uvs28.shape == (3, 28, 28) and alone[22].uvs28.max() > 200  # the planted motion
    assert alone[22].uvs28 is not alone[23].uvs28  # a copy per frame, not the pipeline's buffer
    assert Pipeline(PipelineConfig(au_model=None, emotion_model=None)).process(frames[0]).uvs28 is None


def test_the_shipped_learned_spotter_finds_the_planted_event(clip):
    """The test clip's mouth motion is made here, not by the generator the spotter was trained
    on; the learned detector still reports one event matching it (MEGC IoU >= 0.5)."""
    from microexp.edge.pipeline import DEFAULT_SPOTTER
    from microexp.training.metrics import interval_iou
    pipe = Pipeline(PipelineConfig(emotion_model=None, spotter_model=str(DEFAULT_SPOTTER), spot_score="learned"))
    assert pipe.spot_threshold == pipe.spotter_model.spec.spot_threshold == 0.8
    events = [r.event for r in pipe.stream(clip, fps=100) if r.event is not None]
    assert len(events) == 1
    assert interval_iou((events[0].onset_frame, events[0].offset_frame), EVENT) >= 0.5
    assert EVENT[0] <= events[0].apex_frame <= EVENT[1]


def two_faces():
    """A 1200x600 frame with the portrait twice: a large face on the left, a small one right."""
    from .clip import PHOTO
    img = cv2.imread(str(PHOTO))
    canvas = np.full((600, 1200, 3), 90, np.uint8)
    canvas[40:552, 40:552] = cv2.resize(img, (512, 512))
    canvas[150:450, 800:1100] = cv2.resize(img, (300, 300))
    return canvas


def test_the_tracked_face_is_the_largest_or_the_chosen_one(tmp_path, capsys):
    frame = two_faces()

    def centre_x(face):
        pipe = Pipeline(PipelineConfig(emotion_model=None, au_model=None, face=face))
        r = pipe.process(frame)
        assert r.success
        return (r.box[0] + r.box[2]) / 2, pipe

    assert centre_x("largest")[0] < 600
    assert centre_x("930,220")[0] > 600  # a point on the small face
    assert centre_x("1150,580")[0] > 600  # on no face: the nearest one
    assert centre_x("100,300")[0] < 600
    # 'central': the frame's centre (600, 300) is nearer the small face's centre here.
    x, pipe = centre_x("central")
    assert x > 600
    # After a tracking loss the chosen person is re-acquired, not the largest face.
    pipe.reset_track()
    r = pipe.process(frame)
    assert r.success and (r.box[0] + r.box[2]) / 2 > 600
    # A new stream starts from the configured choice again; 'largest' re-acquires the largest.
    big = Pipeline(PipelineConfig(emotion_model=None, au_model=None))
    big.process(frame)
    big.reset_track()
    box = big.process(frame).box
    assert (box[0] + box[2]) / 2 < 600
    for bad in ("left", "1,2,3", "x,1"):
        with pytest.raises(ValueError, match="face must be 'largest', 'central' or 'X,Y'"):
            PipelineConfig(face=bad)
    cv2.imwrite(str(tmp_path / "two.png"), frame)
    assert main(["run", str(tmp_path / "two.png"), "--out", str(tmp_path / "out"), "--face", "left"]) == 2
    assert "face must be" in capsys.readouterr().err


def test_a_tracked_frame_allocates_no_image_sized_buffer(clip):
    # Crop, gray crop, flow and model inputs live in buffers made once; what a frame allocates
    # is its result (dicts, a few small arrays). Traced: Python and NumPy memory, whose peak
    # during one frame stays far below the smallest per-frame image (the 224x224 gray crop, 50 KB).
    import tracemalloc
    frames = [f.image for f in FrameSource(clip, fps=100)][:30]
    pipe = Pipeline.from_defaults()
    for f in frames[:10]:
        pipe.process(f)
    tracemalloc.start()
    try:
        peaks = []
        for f in frames[10:]:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            assert pipe.process(f).success
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks) < 32_000, peaks


@pytest.mark.parametrize("name", ["annotated.mp4", "annotated.webm"])
def test_the_annotated_video_has_frames_without_a_face(tmp_path, name):
    """Frames where nobody is in view (NaN motion) are drawn too, in both containers."""
    from microexp.edge.analysis import AnalysisOptions, analyse
    folder = make_clip(tmp_path / "clip", frames=6)
    for i, path in enumerate(sorted(folder.iterdir())):
        if i % 2:
            cv2.imwrite(str(path), np.full((768, 768, 3), 90, np.uint8))  # nobody in view
    with Pipeline(PipelineConfig(emotion_model=None)) as pipe:
        result = analyse(pipe, FrameSource(str(folder), fps=30), AnalysisOptions(tmp_path / "out", video=True,
                                                                                  video_name=name, timeline=False))
    assert result.summary["lost"] == 3
    cap = cv2.VideoCapture(result.summary["video"])
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 6
