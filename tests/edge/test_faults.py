"""The runtime's fault cases, each as a user meets it: a camera that goes away, truncated and
corrupt videos, unreadable frames, a frame size that changes mid-stream, gray and BGRA frames,
a face lost and found again, missing or corrupt models, Ctrl-C or an error mid-run, and a long
run's memory."""
import csv
import json
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.edge import sources
from microexp.edge.pipeline import Pipeline, PipelineConfig
from microexp.edge.sources import FrameSource, SourceLost

from .clip import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"), frames=30)


@pytest.fixture(scope="module")
def images(clip):
    return [f.image for f in FrameSource(clip)]


class FakeCamera:
    """cv2.VideoCapture for a camera that delivers `frames` and then, after `fail_after`
    reads, nothing until it has been reopened `recover_after` times (never by default)."""
    opened = 0

    def __init__(self, frames, fail_after, recover_after=None):
        self.frames, self.fail_after, self.recover_after = frames, fail_after, recover_after
        self.reads = 0

    def __call__(self, *args):  # cv2.VideoCapture(...) opens the camera
        FakeCamera.opened += 1
        return self

    def isOpened(self):
        return True

    def read(self):
        reopened = FakeCamera.opened - 1
        if self.reads >= self.fail_after and (self.recover_after is None or reopened < self.recover_after):
            return False, None
        image = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        return True, image

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, *args):
        return True

    def release(self):
        pass


@pytest.fixture
def camera(monkeypatch, images):
    def install(fail_after, recover_after=None):
        FakeCamera.opened = 0
        fake = FakeCamera(images, fail_after, recover_after)
        monkeypatch.setattr(sources.cv2, "VideoCapture", fake)
        monkeypatch.setattr(sources.time, "sleep", lambda s: None)
        return fake
    return install


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_camera_that_goes_away_is_reopened_a_bounded_number_of_times(camera):
    camera(fail_after=4)
    src = FrameSource(0, reconnect_attempts=3, reconnect_delay_s=0)
    got = []
    with pytest.raises(SourceLost, match="source 0: stopped delivering frames .* after 3 reopen attempts"):
        for frame in src:
            got.append(frame.index)
    assert got == [0, 1, 2, 3] and FakeCamera.opened == 1 + 3


def test_a_camera_that_comes_back_goes_on_counting(camera):
    camera(fail_after=4, recover_after=2)
    src = FrameSource("/dev/video0", reconnect_attempts=3, reconnect_delay_s=0)
    with pytest.warns(UserWarning, match="reopened \\(attempt 2\\)"):
        frames = [f for _, f in zip(range(8), src)]
    assert [f.index for f in frames] == list(range(8))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))


def test_cli_keeps_the_rows_when_the_camera_goes(camera, tmp_path, capsys):
    camera(fail_after=12)
    assert main(["run", "0", "--out", str(tmp_path), "--emotion-model", "none"]) == 1
    captured = capsys.readouterr()
    assert "stopped delivering frames" in captured.err and "rows written so far are complete" in captured.err
    rows = read_rows(tmp_path / "frames.csv")
    assert len(rows) == 12 and all(r["success"] == "1" and r["lat_total"] for r in rows)
    assert json.loads(captured.out.strip().splitlines()[-1])["frames"] == 12
    # A live source's rows carry the wall clock (UTC, ISO 8601), increasing.
    stamps = [datetime.fromisoformat(r["timestamp_utc"]) for r in rows]
    assert all(s.tzinfo is not None and s.utcoffset().total_seconds() == 0 for s in stamps)
    assert stamps == sorted(stamps) and abs((datetime.now(timezone.utc) - stamps[-1]).total_seconds()) < 600


def write_video(path, images):
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 100, (w, h))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def test_a_truncated_video_ends_at_its_last_readable_frame(images, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", images)
    data = video.read_bytes()
    video.write_bytes(data[:int(len(data) * 0.6)])
    assert main(["run", str(video), "--out", str(tmp_path / "out"), "--emotion-model", "none"]) == 0
    captured = capsys.readouterr()
    assert "ended after" in json.loads(captured.out.strip().splitlines()[-1])["ended_early"]
    assert "truncated or damaged" in captured.err
    rows = read_rows(tmp_path / "out" / "frames.csv")
    assert 5 < len(rows) < len(images)
    assert all(r["success"] == "1" and r["lat_total"] != "" for r in rows)  # whole rows only


def test_a_corrupt_video_is_named(tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, np.uint8).tobytes())
    assert main(["run", str(junk), "--out", str(tmp_path / "out")]) == 2
    assert "junk.mp4" in capsys.readouterr().err


def test_an_unreadable_image_in_a_folder_is_skipped_and_counted(clip, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, p in enumerate(sorted(clip.iterdir())[:10]):
        (folder / p.name).write_bytes(b"not a jpeg" if i == 4 else p.read_bytes())
    with pytest.warns(UserWarning, match="cannot read image .*skipped"):
        assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--emotion-model", "none"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = read_rows(tmp_path / "out" / "frames.csv")
    assert summary["unreadable_images"] == 1 and [r["frame"] for r in rows] == [str(i) for i in range(10) if i != 4]


def test_frame_size_changing_mid_stream(images):
    pipe = Pipeline(PipelineConfig(emotion_model=None))
    sizes = [768] * 5 + [512] * 5 + [1024] * 5 + [300] * 3
    results = [pipe.process(cv2.resize(img, (s, s))) for img, s in zip(images, sizes)]
    for r, s in zip(results, sizes):
        assert r.success and 0 <= r.box[0] < r.box[2] <= s and 0 <= r.box[1] < r.box[3] <= s
    assert all(np.isfinite(list(r.au.values())).all() for r in results)
    # Each new size starts a new track from a detection; frames of one size are tracked.
    assert [i for i, r in enumerate(results) if "detect" in r.latency_ms] == [0, 5, 10, 15]


def test_gray_and_bgra_frames(images):
    bgr = Pipeline(PipelineConfig(emotion_model=None))
    bgra = Pipeline(PipelineConfig(emotion_model=None))
    gray = Pipeline(PipelineConfig(emotion_model=None))
    for img in images[:25]:
        a = bgr.process(img)
        b = bgra.process(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
        g = gray.process(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        assert a.au == b.au and a.box == b.box  # the alpha channel is dropped, nothing else
        assert g.success and g.au.keys() == a.au.keys()
    assert abs(g.box[0] - a.box[0]) <= 4


def test_a_face_lost_and_found_again(images):
    blank = np.full_like(images[0], 90)
    frames = images[:8] + [blank] * 4 + images[8:16]
    pipe = Pipeline(PipelineConfig(emotion_model=None))
    results = [pipe.process(f) for f in frames]
    assert [r.success for r in results] == [True] * 8 + [False] * 4 + [True] * 8
    assert all(r.box is None and r.face_id is None and all(v != v for v in r.au.values()) for r in results[8:12])
    assert {r.face_id for r in results if r.success} == {0}  # found again: the same person, the same id
    assert "detect" in results[12].latency_ms  # re-detected, then tracked again
    assert abs(results[12].box[0] - results[7].box[0]) <= 4


def test_missing_or_corrupt_models_are_named_by_the_cli(clip, tmp_path, capsys):
    assert main(["run", str(clip), "--out", str(tmp_path / "o"), "--au-model", str(tmp_path / "gone.onnx")]) == 2
    assert "gone.onnx" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["run", str(clip), "--out", str(tmp_path / "o"), "--emotion-model", str(bad)]) == 2
    assert "bad.onnx" in capsys.readouterr().err


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_an_interruption_mid_run_leaves_whole_rows(clip, tmp_path, capsys, monkeypatch, fault):
    real = Pipeline.process_faces

    def process(self, frame, index=None, timestamp=None):
        if index == 10:
            raise fault("stopped at frame 10")
        return real(self, frame, index, timestamp)
    monkeypatch.setattr(Pipeline, "process_faces", process)
    argv = ["run", str(clip), "--out", str(tmp_path), "--format", "jsonl"]
    if fault is KeyboardInterrupt:
        assert main(argv) == 130
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 10
    else:
        with pytest.raises(RuntimeError, match="frame 10"):
            main(argv)
    lines = (tmp_path / "frames.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(10))
    assert (tmp_path / "events.jsonl").exists()


def test_a_long_run_keeps_its_memory_flat():
    # microexp run on the looping sample clip in a child process, its resident memory sampled.
    # The timeline kept whole (before it merged points) grew 1361 KiB per 1000 frames here.
    from microexp.edge.soak import soak
    report = soak(6000, extra=["--flow", "farneback-fast"])
    assert report["frames"] == 6000 and report["samples"] >= 10
    assert report["slope_kib_per_1000_frames"] < 600, report
