"""Several faces at once: each tracked with its own face_id, reference, gate, spotter and events;
ids kept across frames and re-acquisitions; a row per face per frame."""
import csv
import json

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.edge.pipeline import Pipeline, PipelineConfig
from microexp.edge.track import FaceTrack, appearance

from .clip import EVENT, PHOTO, make_clip

PORTRAIT = cv2.imread(str(PHOTO))


def two_faces(left=None):
    """1200x600: a 512 px face on the left (`left`, a frame of the planted-motion clip, or the
    portrait), a 300 px one on the right."""
    canvas = np.full((600, 1200, 3), 90, np.uint8)
    canvas[40:552, 40:552] = cv2.resize(PORTRAIT if left is None else left, (512, 512))
    canvas[150:450, 800:1100] = cv2.resize(PORTRAIT, (300, 300))
    return canvas


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory):
    folder = make_clip(tmp_path_factory.mktemp("clip"))
    return [cv2.imread(str(p)) for p in sorted(folder.iterdir())]


def test_every_face_is_tracked_with_its_own_id():
    pipe = Pipeline(PipelineConfig(emotion_model=None))
    frame = two_faces()
    per_frame = [pipe.process_faces(np.roll(frame, i % 3, axis=1), i) for i in range(6)]
    for results in per_frame:
        assert [r.face_id for r in results] == [0, 1] and all(r.success for r in results)
        assert results[0].box[0] < 600 < results[1].box[0]  # largest first: id 0 is the left face
    assert all(r.au.keys() == per_frame[0][0].au.keys() for results in per_frame for r in results)
    assert pipe.process(frame).face_id == 0  # the single-face API: the first face


def test_a_face_that_leaves_and_comes_back_gets_its_id_again():
    # The right-hand face is about 55 px: looks for newcomers must look for faces that small.
    pipe = Pipeline(PipelineConfig(emotion_model=None, au_model=None, scan_interval_ms=20, idle_min_face=40))
    frame = two_faces()
    gone = frame.copy()
    gone[150:450, 800:1100] = 90  # the right-hand person steps out of view
    seen = []
    for i, f in enumerate([frame] * 4 + [gone] * 6 + [frame] * 10):
        seen.append([r.face_id for r in pipe.process_faces(f, i, i / 100)])
    assert seen[:4] == [[0, 1]] * 4
    assert all(ids == [0] for ids in seen[5:10])
    assert seen[-1] == [0, 1]  # found again by a look for newcomers, recognised: id 1, not 2


def test_faces_1_tracks_only_the_chosen_face():
    pipe = Pipeline(PipelineConfig(emotion_model=None, au_model=None, faces=1, face="central"))
    results = pipe.process_faces(two_faces())
    assert len(results) == 1 and results[0].box[0] > 600  # the centre (600, 300) is nearer the small face


def test_another_person_in_the_same_place_is_not_taken_for_the_first():
    frame = two_faces()
    track = FaceTrack(0, None, None, None)
    track.box = (40, 40, 552, 552)
    track.look = appearance(frame, track.box)
    track.lost_at = 1.0
    assert track.same_person(frame, (44, 42, 556, 554), 2.0) > 0.9  # later, the same face, moved a little
    other = frame.copy()
    other[40:552, 40:552] = cv2.resize(cv2.flip(PORTRAIT, 0), (512, 512))  # someone else there
    assert track.same_person(other, track.box, 2.0) == 0.0
    assert track.same_person(other, track.box, 1.0) == 1.0  # on the frame it was lost: continuity
    assert track.same_person(frame, (700, 40, 1212, 552), 2.0) == 0.0  # elsewhere: not matched by looks


def test_each_face_has_its_own_events_and_rows(clip_frames, tmp_path, capsys):
    # The planted motion (mouth corners, frames EVENT) is on the left face only.
    folder = tmp_path / "two"
    folder.mkdir()
    for i, left in enumerate(clip_frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), two_faces(left))
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--fps", "100", "--faces", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["faces"] == 2 and summary["frames"] == len(clip_frames)
    with open(tmp_path / "out" / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(clip_frames)
    assert [(int(r["frame"]), int(r["face_id"])) for r in rows[:4]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert events and all(e["face_id"] == 0 for e in events)
    assert any(e["onset_frame"] <= (EVENT[0] + EVENT[1]) // 2 <= e["offset_frame"] for e in events)
    marked = {int(r["face_id"]) for r in rows if r["event"] != "0"}
    assert marked == {0}  # the still face's rows carry no event
