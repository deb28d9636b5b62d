"""A long input split into time ranges gives exactly the rows and events of one sequential run:
with stretches without a face (the ranges take over at their boundaries) and with a face
throughout (no boundary can sync, the run is carried on). Also: a source started mid-way gives
the frames, indices and times it has in the whole input."""
import csv
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from microexp.edge.analysis import AnalysisOptions, analyse
from microexp.edge.batch import DONE, run_batch
from microexp.edge.config import PipelineConfig
from microexp.edge.pipeline import Pipeline
from microexp.edge.ranges import least_overlap_s, plan
from microexp.edge.sources import FrameSource

from .clip import PHOTO

FPS = 25.0
# Short memories, so a test clip can hold stretches long enough to forget a face.
CONFIG = dict(forget_s=0.6, idle_after_ms=200.0, idle_interval_ms=120.0, idle_max_interval_ms=400.0,
              idle_min_face=40)  # the face is about 60 px


def write_video(path: Path, pattern: str, size: int = 320) -> Path:
    """An MJPG video at 25 fps: per character of `pattern` 10 frames, 'F' the face (swaying a
    little), 'E' the face pulling its mouth corners up and out and back (an event), '.' an empty
    wall with a little noise."""
    face = cv2.resize(cv2.imread(str(PHOTO)), (size, size))
    rng = np.random.default_rng(1)
    k = size / 512
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pull = np.zeros((2, size, size), np.float32)
    for cx, cy, side in ((202, 140, -1), (245, 142, 1)):  # mouth corners on the 512 photo
        g = np.exp(-((xx - cx * k) ** 2 + (yy - cy * k) ** 2) / (2 * (12 * k) ** 2))
        pull += np.stack([-side * 6 * k * g, 6 * k * g])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (size, size))
    i = 0
    for c in pattern:
        for j in range(10):
            if c in "FE":
                a = np.sin(j / 9 * np.pi) if c == "E" else 0.0
                mx = (xx + a * pull[0] + 0.5 * np.sin(i / 3)).astype(np.float32)
                frame = cv2.remap(face, mx, (yy + a * pull[1]).astype(np.float32), cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT)
            else:
                frame = np.clip(120 + rng.normal(0, 2, (size, size, 3)), 0, 255).astype(np.uint8)
            writer.write(frame)
            i += 1
    writer.release()
    return path


def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("lat_")} for r in csv.DictReader(f)]


def sequential(uri, out):
    with Pipeline(PipelineConfig(**CONFIG)) as pipe:
        analyse(pipe, FrameSource(uri), AnalysisOptions(out, timeline=False))
    return rows(out / "frames.csv"), (out / "events.jsonl").read_text()


def test_a_source_started_mid_way_gives_the_same_frames(tmp_path):
    video = write_video(tmp_path / "v.avi", "F.F.")
    whole = list(FrameSource(str(video)))
    part = list(FrameSource(str(video), start=17))
    assert [f.index for f in part] == list(range(17, 40)) and part[0].timestamp == whole[17].timestamp
    assert all(np.array_equal(a.image, b.image) for a, b in zip(part, whole[17:]))


def test_the_plan_covers_every_frame_once():
    parts = plan(1000, 25.0, 10.0, 3.0)
    assert [(p.start, p.end) for p in parts] == [(0, 250), (250, 500), (500, 750), (750, None)]
    assert [p.run_from for p in parts] == [0, 175, 425, 675]
    assert len(plan(300, 25.0, 10.0, 3.0)) == 1  # not longer than a range and a half
    with pytest.raises(ValueError, match="positive range length"):
        plan(10, 25.0, 0.0, 1.0)


@pytest.mark.parametrize("pattern, synced", [
    # 0.4 s a character; the ranges' boundaries at 2, 4, 6, 8 s (characters 5, 10, 15, 20).
    ("FE...FE...FE...FE...FFEF", "all"),  # 1.2 s without a face before each boundary
    ("FFEF....FEF.....FFEF....FEF", "some"),  # a face across some boundaries: carried on there
    ("FFFEFFFFFFEFFFFFFEFFFFFFEF", "none"),  # a face throughout: no boundary can sync
])
def test_split_ranges_give_the_sequential_rows_and_events(tmp_path, pattern, synced):
    video = write_video(tmp_path / "in.avi", pattern)
    want_rows, want_events = sequential(str(video), tmp_path / "seq")
    assert want_events.count("\n") >= 3  # the planted events are found (and so merged below)
    config = PipelineConfig(**CONFIG)
    out = tmp_path / "batch"
    manifest = run_batch([str(video)], out, config, workers=2, split_s=2.0, overlap_s=least_overlap_s(config) + 0.2)
    (entry,) = manifest.values()
    assert entry["state"] == DONE, entry.get("error")
    split = entry["split"]
    assert split["ranges"] == round(len(pattern) * 10 / 50)
    if synced == "all":
        assert split["taken_over"] == split["ranges"] - 1 and split["recomputed_frames"] == 0
        # Each face after a stretch is a new one: the later ranges' ids were shifted into place.
        assert sorted({r["face_id"] for r in want_rows} - {""}) == ["0", "1", "2", "3", "4"]
    elif synced == "some":
        assert split["taken_over"] >= 1 and 0 < split["recomputed_frames"] < len(pattern) * 10
    else:
        assert split["taken_over"] == 0 and split["recomputed_frames"] > 0
    got = rows(out / entry["folder"] / "frames.csv")
    assert [r["frame"] for r in got] == [str(i) for i in range(len(pattern) * 10)]
    assert got == want_rows
    assert (out / entry["folder"] / "events.jsonl").read_text() == want_events
    assert not (out / ".ranges").exists() or not any((out / ".ranges").iterdir())


def test_split_ranges_on_ray_give_the_sequential_rows(tmp_path, ray_address):
    video = write_video(tmp_path / "in.avi", "FFEF....FEF.....FFEF....FEF")
    want_rows, want_events = sequential(str(video), tmp_path / "seq")
    config = PipelineConfig(**CONFIG)
    out = tmp_path / "batch"
    manifest = run_batch([str(video)], out, config, workers=2, split_s=2.0, overlap_s=least_overlap_s(config) + 0.2,
                         ray_address=ray_address)
    (entry,) = manifest.values()
    assert entry["state"] == DONE and entry["split"]["ranges"] == 5, entry.get("error")
    assert rows(out / entry["folder"] / "frames.csv") == want_rows
    assert (out / entry["folder"] / "events.jsonl").read_text() == want_events


def _left_by_a_killed_run(video, config, out, overlap, k, edit):
    """Range k's records written as a killed run leaves them, after `edit(saved)` changed them."""
    from dataclasses import asdict

    from microexp.edge import batch
    from microexp.edge.ranges import analyse_range
    parts = batch.split_plan(video, config, 2.0, overlap)
    where = batch._ranges_folder(out, batch.folder_name(video), parts, asdict(config))
    where.mkdir(parents=True)
    path = analyse_range(video, asdict(config), parts[k], str(where / f"{k}.pkl"))
    with open(path, "rb") as f:
        saved = pickle.load(f)
    edit(saved)
    with open(path, "wb") as f:
        pickle.dump(saved, f)
    return where


def test_a_resumed_split_input_keeps_its_finished_ranges(tmp_path):
    """Ranges whose records a killed run left whole are not run again: a mark put into one of
    them shows up in the merged rows."""
    video = str(write_video(tmp_path / "in.avi", "FE...FE...FE...FE...FFEF"))
    config = PipelineConfig(**CONFIG)
    out = tmp_path / "batch"
    overlap = least_overlap_s(config) + 0.2

    def mark(saved):
        saved["records"][3].results[0].motion["motion"] = 123.0
    where = _left_by_a_killed_run(video, config, out, overlap, 0, mark)
    manifest = run_batch([video], out, config, workers=1, split_s=2.0, overlap_s=overlap)
    (entry,) = manifest.values()
    assert entry["state"] == DONE
    assert rows(out / entry["folder"] / "frames.csv")[3]["motion"] == "123.0"
    assert not where.exists()  # merged: the records are gone


def test_a_range_whose_pictures_are_not_the_runs_is_never_taken(tmp_path):
    """A video sought to a range's start can land on another frame (variable frame rate); such a
    range is detected by its pictures' digests and the run is carried on past it instead."""
    video = str(write_video(tmp_path / "in.avi", "FE...FE...FE...FE...FFEF"))
    want_rows, want_events = sequential(video, tmp_path / "seq")
    config = PipelineConfig(**CONFIG)
    out = tmp_path / "batch"
    overlap = least_overlap_s(config) + 0.2

    def one_frame_off(saved):
        saved["records"] = [r._replace(digest=r.digest + 1) for r in saved["records"]]
    _left_by_a_killed_run(video, config, out, overlap, 2, one_frame_off)
    manifest = run_batch([video], out, config, workers=1, split_s=2.0, overlap_s=overlap)
    (entry,) = manifest.values()
    assert entry["state"] == DONE and entry["split"]["recomputed_frames"] > 0
    assert entry["split"]["taken_over"] == entry["split"]["ranges"] - 2  # the boundary into range 2 is carried over
    assert rows(out / entry["folder"] / "frames.csv") == want_rows
    assert (out / entry["folder"] / "events.jsonl").read_text() == want_events
