"""The runtime's contract where new users tripped: the same keys on every frame, the event
column, SIGTERM, an earlier run's folder, progress in logs, truncated MP4s, folders of
unrelated photos, and the idle state of a device that waits for someone."""
import csv
import io
import json
import math
import os
import signal

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.cli.run import Progress
from microexp.edge.detect import Face
from microexp.edge.pipeline import Pipeline, PipelineConfig

from .clip import PHOTO, make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"))


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_frame_without_a_face_has_every_key_of_one_with_a_face(clip):
    with Pipeline.from_defaults() as pipe:
        face = pipe.process(cv2.imread(str(sorted(clip.iterdir())[0])))
        pipe.reset()
        empty = pipe.process(np.full((240, 320, 3), 90, np.uint8))
    assert face.success and not empty.success
    for name in ("au", "au_present", "emotion", "motion", "spotting"):
        assert getattr(empty, name).keys() == getattr(face, name).keys(), name
    assert all(math.isnan(v) for v in empty.au.values()) and empty.au  # the documented loop works
    assert all(v is None for v in empty.au_present.values())  # unknown, not absent
    assert all(math.isnan(v) for v in empty.emotion.values()) and empty.action is None


def test_the_event_column_marks_the_frames_inside_each_event(clip, tmp_path, capsys):
    for fmt in ("csv", "jsonl"):
        out = tmp_path / fmt
        assert main(["run", str(clip), "--out", str(out), "--fps", "100", "--format", fmt]) == 0
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1)) and events
        if fmt == "csv":
            rows = [(int(r["frame"]), int(r["event"])) for r in read_rows(out / "frames.csv")]
        else:
            rows = [(r["frame"], r["event"]) for r in map(json.loads, (out / "frames.jsonl").read_text().splitlines())]
        assert [f for f, _ in rows] == list(range(60))  # every frame once, in order
        for frame, event_id in rows:
            inside = [e["id"] for e in events if e["onset_frame"] <= frame <= e["offset_frame"]]
            assert event_id == (inside[0] if inside else 0), frame


def test_rows_without_a_face_are_empty_in_csv_and_null_in_jsonl(tmp_path, capsys):
    folder = tmp_path / "nobody"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((120, 160, 3), 80 + i, np.uint8))
    assert main(["run", str(folder), "--out", str(tmp_path / "c"), "--no-timeline"]) == 0
    row = read_rows(tmp_path / "c" / "frames.csv")[0]
    assert row["success"] == "0" and row["action"] == "" and all(row[k] == "" for k in row if k.startswith("AU"))
    assert main(["run", str(folder), "--out", str(tmp_path / "j"), "--format", "jsonl", "--no-timeline"]) == 0
    record = json.loads((tmp_path / "j" / "frames.jsonl").read_text().splitlines()[0])
    assert all(record[k] is None for k in record if k.startswith(("AU", "emotion_", "motion")))


def test_sigterm_ends_the_run_like_ctrl_c(clip, tmp_path, capsys, monkeypatch):
    real = Pipeline.process_faces

    def process(self, frame, index=None, timestamp=None):
        if index == 10:
            os.kill(os.getpid(), signal.SIGTERM)  # what systemd sends to stop a service
        return real(self, frame, index, timestamp)
    monkeypatch.setattr(Pipeline, "process_faces", process)
    assert main(["run", str(clip), "--out", str(tmp_path), "--format", "jsonl"]) == 130
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert "terminated (SIGTERM)" in captured.err and summary["ended"] == "interrupted"
    lines = (tmp_path / "frames.jsonl").read_text().splitlines()
    assert 9 <= len(lines) <= 11 and all(json.loads(line)["lat_total"] is not None for line in lines)
    assert (tmp_path / "timeline.png").exists() and (tmp_path / "model_info.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the run's only


def test_an_earlier_runs_folder_is_not_overwritten_silently(clip, tmp_path, capsys):
    argv = ["run", str(clip), "--out", str(tmp_path), "--max-frames", "5", "--no-timeline", "--emotion-model", "none"]
    assert main(argv) == 0
    before = (tmp_path / "frames.csv").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "frames.csv").read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0


def test_an_output_path_that_is_a_file_is_refused(clip, tmp_path, capsys):
    target = tmp_path / "results.csv"
    target.write_text("someone's file")
    assert main(["run", str(clip), "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and target.read_text() == "someone's file"


def test_progress_in_a_log_is_one_line_per_update_with_rate_and_time_left():
    log = io.StringIO()  # not a TTY
    progress = Progress(log, every_s=0.0)
    for done in (25, 50, 75, 100):
        progress(done, 100)
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and all("frames/s" in line for line in lines) and "\r" not in log.getvalue()
    assert "left" in lines[0] and "left" not in lines[-1]
    quiet = io.StringIO()
    limited = Progress(quiet, every_s=3600)
    for done in range(25, 1000, 25):
        limited(done, 1000)
    limited(1000, 1000)
    assert len(quiet.getvalue().splitlines()) == 2  # the first and the last


def test_an_mp4_cut_before_its_index_is_named_truncated(tmp_path, capsys):
    path = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for i in range(30):
        writer.write(np.full((120, 160, 3), 5 * i, np.uint8))
    writer.release()
    data = path.read_bytes()
    assert b"moov" in data[len(data) // 2:]  # the index comes last, as recorders write it
    path.write_bytes(data[: len(data) // 2])
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "moov" in err


def test_a_folder_of_unrelated_photos_is_refused_unless_stills(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = cv2.imread(str(PHOTO))
    ramp = np.broadcast_to(np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None, :, None], photo.shape)
    # The same size, nothing in common from one to the next.
    for i, image in enumerate((photo, 255 - photo, np.ascontiguousarray(ramp), photo[::-1])):
        cv2.imwrite(str(folder / f"holiday_{i}.jpg"), image)
    assert main(["run", str(folder), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "does not look like one clip's frames" in err and "--stills" in err
    assert main(["run", str(folder), "--out", str(tmp_path / "b"), "--stills", "--no-timeline"]) == 0


def test_camera_mode_options_are_refused_for_a_file(clip, tmp_path, capsys):
    assert main(["run", str(clip), "--out", str(tmp_path), "--rate", "60"]) == 2
    assert "--fps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(clip), "--size", "1280by720"])


LANDMARKS = np.array([[130, 100], [170, 100], [150, 120], [135, 140], [165, 140]], np.float64)


def test_idle_looks_are_cheap_and_spaced_and_a_newcomer_is_found_soon(monkeypatch):
    """Nobody in view: after the first full look, looks happen on a shrunk frame: on every frame
    for idle_after_ms (500 ms), then once per idle_interval_ms slot (150 ms) while the picture
    changes and once per idle_max_interval_ms slot (1 s) while it does not."""
    pipe = Pipeline(PipelineConfig(emotion_model=None, au_model=None, action_gate=None, fps=50))
    looks = []
    moving, arrive = 100, 160  # something (not a face) moves through from `moving`; a face at `arrive`

    def detect(frame, min_face=None):
        looks.append((current[0], frame.shape[:2], min_face))
        if current[0] < arrive:
            return []
        if min_face == 12:  # a cheap look, on the frame shrunk 80/12 times
            return [Face(np.array([500.0, 300, 700, 500]) * 12 / 80, 0.99, LANDMARKS * 12 / 80)]
        return []  # the full-resolution look around it finds nothing: the shrunk look's box is kept
    monkeypatch.setattr(pipe.detector, "detect", detect)
    still = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    current = [0]
    results = []
    for i in range(arrive + 10):
        current[0] = i
        frame = still.copy()
        if moving <= i < arrive:
            frame[200:400, (i - moving) * 15:(i - moving) * 15 + 100] = 255
        results.append(pipe.process(frame, i, i / 50))
    frames = [frame for frame, _, _ in looks]
    assert frames[0] == 0 and looks[0][2] is None and looks[0][1] == (720, 1280)  # the first: full
    cheap = [look for look in looks[1:] if look[0] < arrive]
    assert all(look[2] == 12 and look[1][1] == round(1280 / (80 / 12)) for look in cheap)  # faces >= 80 px
    assert [f for f in frames if 0 < f < 25] == list(range(1, 25))  # every frame for 500 ms
    assert [f for f in frames if 25 <= f < moving] == [50]  # unchanged: once per 1 s slot of source time
    spaced = [f for f in frames if moving <= f < arrive]
    slots = [int(f / 50 * 1000 // 150) for f in spaced]  # at most one look per 150 ms slot, and one in each
    assert len(set(slots)) == len(slots) and len(spaced) >= 7
    tracked = next(r.frame for r in results if r.success)
    assert tracked - arrive <= 8  # within idle_interval_ms (150 ms = 7.5 frames)
    assert results[tracked].box is not None


def test_an_event_closed_by_a_later_face_marks_its_rows(tmp_path):
    # Face 1's interval (frame 69) closes at frame 70, after face 0's row of that frame: the
    # frame's events mark the held rows before any row of the frame is written.
    from microexp.edge.outputs import Columns, FrameWriter
    from microexp.edge.pipeline import FrameResult
    from microexp.edge.spotting import Event

    def result(frame, face, event=None):
        return FrameResult(frame, frame / 100, True, 1.0, (0, 0, 10, 10), face_id=face, event=event)
    event = Event(69, 69, 69, 0.69, 0.69, 0.69, 1.0, face_id=1)
    with FrameWriter(tmp_path / "frames.csv", Columns()) as writer:
        assert writer.write([result(68, 0), result(68, 1)]) == [None, None]
        writer.write([result(69, 0), result(69, 1)], hold=True)  # face 1's interval is open
        assert writer.write([result(70, 0), result(70, 1, event)]) == [None, 1]
    marks = {(int(r["frame"]), int(r["face_id"])): int(r["event"]) for r in read_rows(tmp_path / "frames.csv")}
    assert marks == {(68, 0): 0, (68, 1): 0, (69, 0): 0, (69, 1): 1, (70, 0): 0, (70, 1): 0}


def test_overwrite_leaves_no_earlier_file_beside_the_new_results(clip, tmp_path, capsys):
    base = ["run", str(clip), "--out", str(tmp_path), "--max-frames", "5", "--emotion-model", "none"]
    assert main(base) == 0
    assert (tmp_path / "frames.csv").exists() and (tmp_path / "timeline.png").exists()
    assert main(base + ["--overwrite", "--format", "jsonl", "--no-timeline"]) == 0
    assert not (tmp_path / "frames.csv").exists() and not (tmp_path / "timeline.png").exists()
    assert (tmp_path / "frames.jsonl").exists()
