"""`microexp batch` on a local process pool: the same rows as `microexp run` per input, a corrupt
input reported while the rest finish, a rerun that skips what is done, and no half-written
output left by an earlier attempt."""
import csv
import json
import os

import pytest

from microexp.cli import main
from microexp.edge.batch import DONE, FAILED, expand_inputs, folder_name, load_manifest, run_batch
from microexp.edge.config import PipelineConfig

from .clip import make_clip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_clip(root / "s1" / "001", frames=16, size=384)  # two clips with the same name, different subjects
    make_clip(root / "s2" / "001", frames=16, size=384)
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    return root


def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.startswith("lat_")} for r in csv.DictReader(f)]


def test_inputs_expand_from_folders_patterns_and_lists(data, tmp_path):
    clips = [str((data / s / "001").resolve()) for s in ("s1", "s2")]
    assert expand_inputs([str(data)]) == sorted([str((data / "bad.mp4").resolve())] + clips)
    assert expand_inputs([str(data / "s*" / "001")]) == clips
    listing = tmp_path / "list.txt"
    listing.write_text(f"# clips\n{data / 's2' / '001'}\n")
    assert expand_inputs([f"@{listing}"]) == clips[1:]
    assert folder_name(clips[0]) != folder_name(clips[1])
    with pytest.raises(ValueError, match="matches nothing"):
        expand_inputs([str(data / "*.avi")])
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_inputs([str(data / "missing.mp4")])


def test_batch_gives_run_rows_reports_a_corrupt_input_and_resumes(data, tmp_path, capsys):
    out = tmp_path / "out"
    inputs = expand_inputs([str(data)])
    manifest = run_batch(inputs, out, PipelineConfig(), workers=2)
    bad = str((data / "bad.mp4").resolve())
    assert manifest[bad]["state"] == FAILED and manifest[bad]["error"].startswith("SourceUnavailable: source ")
    for uri in inputs:
        if uri == bad:
            continue
        assert manifest[uri]["state"] == DONE and manifest[uri]["frames"] == 16
        assert main(["run", uri, "--out", str(tmp_path / "run"), "--overwrite", "--no-timeline"]) == 0
        assert rows(out / manifest[uri]["folder"] / "frames.csv") == rows(tmp_path / "run" / "frames.csv")
    capsys.readouterr()
    with open(out / "summary.csv", newline="") as f:
        summary = {r["input"]: r for r in csv.DictReader(f)}
    clip = next(u for u in inputs if u != bad)
    assert summary[bad]["state"] == FAILED and summary[clip]["state"] == DONE and summary[clip]["frames"] == "16"
    with open(out / manifest[clip]["folder"] / "frames.csv", newline="") as f:
        present = sum(r["AU04_c"] == "1" for r in csv.DictReader(f))
    assert summary[clip]["AU04_present"] == str(present) and summary[bad]["AU04_present"] == ""
    import cv2
    assert cv2.imread(str(out / "summary.png")).shape == (26 * 5, 1100, 3)  # a header and 3 inputs
    assert not (out / ".partial").exists()
    # A rerun leaves finished inputs alone and tries the failed one again.
    done_file = out / manifest[clip]["folder"] / "frames.csv"
    stamp = done_file.stat().st_mtime_ns
    again = run_batch(inputs, out, PipelineConfig(), workers=1)
    assert done_file.stat().st_mtime_ns == stamp and again[bad]["state"] == FAILED
    assert load_manifest(out) == again


def test_an_earlier_attempts_leftovers_are_replaced_whole(data, tmp_path):
    """What a killed run leaves (a half-written folder under .partial, a stale output folder of an
    input the manifest does not call done) is replaced by one whole output."""
    out = tmp_path / "out"
    uri = str((data / "s1" / "001").resolve())
    name = folder_name(uri)
    (out / ".partial" / f"{name}.12345").mkdir(parents=True)
    (out / ".partial" / f"{name}.12345" / "frames.csv").write_text("frame\n0\n")
    (out / name).mkdir()
    (out / name / "frames.csv").write_text("half")
    manifest = run_batch([uri], out, PipelineConfig(), workers=1)
    assert manifest[uri]["state"] == DONE
    assert len(rows(out / name / "frames.csv")) == 16 and not (out / ".partial").exists()


def test_the_command(data, tmp_path, capsys):
    assert main(["batch", str(data / "s1" / "001"), "--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["done"] == 1
    assert main(["batch", str(data / "bad.mp4"), "--out", str(tmp_path / "c")]) == 1


def test_an_output_folder_with_a_foreign_manifest_is_refused(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json: not a batch manifest"):
        run_batch([str((data / "s1" / "001").resolve())], out, PipelineConfig())
    assert main(["batch", str(data / "s1" / "001"), "--out", str(out), "--workers", "0"]) == 2


def test_an_image_is_written_whole_or_not_at_all(tmp_path):
    import numpy as np

    from microexp.edge.atomic_io import atomic_write_image
    path = atomic_write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    with pytest.raises(OSError, match="cannot write"):
        atomic_write_image(tmp_path / "b.png", np.zeros((0, 0), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
