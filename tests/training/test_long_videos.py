"""Readers of the long-video spotting sets (CAS(ME)^2, SAMM Long Videos) on fixtures written in
their layouts, and `microexp spot-eval` on them: the same clip in the generated layout and in
either set's layout gives the same truth, the same events and the same scores."""
import json
import shutil
import warnings

import pytest

openpyxl = pytest.importorskip("openpyxl", reason="the long-video sheets are .xlsx: needs openpyxl ([train] extra)")

from microexp.training.datasets.long_videos import read_casme_sq, read_long_videos, read_samm_lv  # noqa: E402


@pytest.fixture(scope="module")
def mixed_set(tmp_path_factory):
    """One generated clip (30 fps, 8 s) with macro- and micro-expressions."""
    from microexp.training.synth import PHOTOS, generate, load_photos
    root = tmp_path_factory.mktemp("mixed")
    generate(load_photos([PHOTOS / "astronaut.png"]), root, clips_per_photo=1, frames=240, fps=30.0,
             events_per_clip=4, seed=3, size=(256, 256), kind="mixed")
    return root


def _events(root):
    from microexp.training.synth_eval import read_sheet
    return read_sheet(root, kinds=True)[("001", "001_1_1")]


def _book(path, sheets):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets:
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)


def casme_sq_layout(mixed_set, root):
    """The clip as CAS(ME)^2 distributes it: frames under rawpic/s15/15_0401anger1/img<N>.jpg, the
    three-sheet workbook, plus rows the reader must report: no offset, an unknown participant,
    an unknown video; and a second video without expressions."""
    frames = sorted((mixed_set / "001" / "001_1_1").glob("*.jpg"))
    clip = root / "rawpic" / "s15" / "15_0401anger1"
    clip.mkdir(parents=True)
    for i, f in enumerate(frames, start=1):
        shutil.copy(f, clip / f"img{i}.jpg")
    empty = root / "rawpic" / "s15" / "15_0502happy2"
    empty.mkdir()
    for i in range(1, 31):  # a still face
        shutil.copy(frames[0], empty / f"img{i}.jpg")
    kinds = {"micro": "micro-expression", "macro": "macro-expression"}
    rows = [[1, f"anger1_{n}", a + 1, (a + b) // 2 + 1, b + 1, "4+7", "anger", kinds[k], "anger"]
            for n, (a, b, k) in enumerate(_events(mixed_set), start=1)]
    rows += [[1, "anger1_9", 200, 205, 0, "12", "happy", "macro-expression", "happy"],  # no offset: the apex
             [7, "anger1_10", 10, 12, 14, "12", "happy", "micro-expression", "happy"],  # participant 7: unknown
             [1, "disgust3_1", 10, 12, 14, "9", "disgust", "micro-expression", "disgust"]]  # no such video
    _book(root / "CAS(ME)^2code_final(Updated).xlsx",
          [("Sheet1", rows), ("naming rule1", [["participant", "subject", "number"], ["x", "s15", 1]]),
           ("naming rule2", [["0401", "anger1"], ["0502", "happy2"]])])
    return root


def samm_lv_layout(mixed_set, root):
    frames = sorted((mixed_set / "001" / "001_1_1").glob("*.jpg"))
    clip = root / "006_1"
    clip.mkdir(parents=True)
    for i, f in enumerate(frames, start=1):
        shutil.copy(f, clip / f"006_1_{i:04d}.jpg")
    kinds = {"micro": "Micro - 1/2", "macro": "Macro"}
    rows = [["SAMM Long Videos"], ["release notes, text above the header"], [],
            ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
             "Action Units", "Notes"]]
    rows += [["006", f"006_1_{n}", 1, a + 1, (a + b) // 2 + 1, b + 1, b - a + 1, kinds[k], "4+7", ""]
             for n, (a, b, k) in enumerate(_events(mixed_set), start=1)]
    rows += [["006", "006_1_9", 1, 200, 205, -1, 6, "Macro", "12", ""],  # offset -1: the apex
             ["007", "007_2_1", 1, 10, 12, 14, 5, "Micro - 1/2", "12", ""]]  # no frame folder 007_2
    _book(root / "SAMM_LongVideos_V3_Release.xlsx", [("FACS", rows)])
    return root


def test_casme_sq_reader_maps_sheets_to_videos_and_reports_bad_rows(mixed_set, tmp_path):
    root = casme_sq_layout(mixed_set, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        videos = read_casme_sq(root)
    said = " | ".join(str(w.message) for w in caught)
    truth = _events(mixed_set)
    assert f"(row {len(truth) + 1}, anger1_9): no offset given (0); the apex 205 is taken" in said
    assert "participant 7 is not on the participants sheet" in said
    assert "video 'disgust3' is not on the videos sheet" in said
    assert [(v.subject, v.name, v.fps) for v in videos] == [("s15", "15_0401anger1", 30.0), ("s15", "15_0502happy2", 30.0)]
    truth = truth + [(199, 204, "macro")]
    assert sorted((e.onset, e.offset, e.kind) for e in videos[0].events) == sorted(truth)
    assert videos[1].events == []  # counted: whatever is spotted there is a false positive


def test_samm_lv_reader_finds_the_header_below_text_rows(mixed_set, tmp_path):
    root = samm_lv_layout(mixed_set, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        videos = read_long_videos(root)
    said = " | ".join(str(w.message) for w in caught)
    assert f"(row {len(_events(mixed_set)) + 5}, 006_1_9): no offset given (-1)" in said and "no frame folder 007_2/" in said
    assert [(v.subject, v.name, v.fps) for v in videos] == [("006", "006_1", 200.0)]
    assert sorted((e.onset, e.offset, e.kind) for e in videos[0].events) == sorted(_events(mixed_set) + [(199, 204, "macro")])
    assert {e.kind for e in videos[0].events} == {"micro", "macro"}


def test_readers_name_a_missing_or_foreign_workbook(tmp_path):
    with pytest.raises(FileNotFoundError, match="no annotation workbook"):
        read_samm_lv(tmp_path)
    (tmp_path / "SAMM_LongVideos_V3_Release.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(ValueError, match="not a readable .xlsx workbook"):
        read_samm_lv(tmp_path)
    with pytest.raises(ValueError, match="layout must be"):
        read_long_videos(tmp_path, "casme3")


def test_spot_eval_gives_the_same_scores_in_every_layout(mixed_set, tmp_path, capsys):
    """The generated clip and its copies in the CAS(ME)^2 and SAMM-LV layouts (without the extra
    rows): one runtime, the same events and counts, macro and micro separately."""
    from microexp.cli import main
    casme = casme_sq_layout(mixed_set, tmp_path / "casme")
    samm = samm_lv_layout(mixed_set, tmp_path / "samm")
    for root, name in ((casme, "CAS(ME)^2code_final(Updated).xlsx"), (samm, "SAMM_LongVideos_V3_Release.xlsx")):
        book = openpyxl.load_workbook(root / name)  # drop the quirk rows: same truth as the generated sheet
        sheet = book.worksheets[0]
        sheet.delete_rows(sheet.max_row - (2 if root == casme else 1), 3)
        book.save(root / name)
    shutil.rmtree(casme / "rawpic" / "s15" / "15_0502happy2")
    reports = {}
    for label, args in (("synth", [str(mixed_set)]), ("casme", [str(casme)]), ("samm", [str(samm), "--fps", "30"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["spot-eval", *args, "--per-video"]) == 0
        reports[label] = json.loads(capsys.readouterr().out)
    assert reports["synth"]["layout"] == "synth" and reports["casme"]["layout"] == "casme-sq"
    assert reports["samm"]["layout"] == "samm-lv"
    truth = _events(mixed_set)
    assert {k for *_, k in truth} == {"micro", "macro"}
    for r in reports.values():
        (video,) = r["videos"].values()
        assert sorted(map(tuple, video["truth"])) == sorted(truth)
        assert video["predicted"] == next(iter(reports["synth"]["videos"].values()))["predicted"]
        assert r["by_kind"] == reports["synth"]["by_kind"] and r["f1"] == reports["synth"]["f1"]
        assert r["by_kind"]["micro"]["n_true"] + r["by_kind"]["macro"]["n_true"] == r["n_true"] == len(truth)


def test_casme_sq_raw_videos_are_read_as_videos(mixed_set, tmp_path):
    """CAS(ME)^2 ships raw long videos (rawvideo/s15/15_0401...avi): the reader takes the file, and
    the runtime reads every frame of it at the set's 30 fps."""
    import cv2

    from microexp.edge.sources import FrameSource
    from microexp.training.synth import write_video
    frames = [cv2.imread(str(p)) for p in sorted((mixed_set / "001" / "001_1_1").glob("*.jpg"))[:45]]
    (tmp_path / "rawvideo" / "s15").mkdir(parents=True)
    write_video(tmp_path / "rawvideo" / "s15" / "15_0401anger1.mp4", frames, 30.0)
    _book(tmp_path / "CAS(ME)^2code_final.xlsx",
          [("Sheet1", [[1, "anger1_1", 10, 15, 20, "12", "happy", "micro-expression", "happy"]]),
           ("naming rule1", [["x", 15, 1]]), ("naming rule2", [["401", "anger1"]])])
    (video,) = read_long_videos(tmp_path)
    assert video.source.suffix == ".mp4" and video.subject == "s15" and video.fps == 30.0
    assert [(e.onset, e.offset, e.kind) for e in video.events] == [(9, 19, "micro")]
    with FrameSource(video.source, fps=video.fps) as src:
        assert sum(1 for _ in src) == 45


def test_a_workbook_none_of_whose_rows_can_be_used_is_an_error(mixed_set, tmp_path):
    root = casme_sq_layout(mixed_set, tmp_path)
    # The participants sheet with its columns swapped: no row finds its subject.
    _book(root / "CAS(ME)^2code_final(Updated).xlsx",
          [("Sheet1", [[1, "anger1_1", 10, 15, 20, "12", "happy", "micro-expression", "happy"]]),
           ("naming rule1", [["x", 1, "s15"]]), ("naming rule2", [["0401", "anger1"]])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="none of its 1 annotation rows could be used"):
            read_casme_sq(root)


def test_spot_eval_reports_the_rate_notes_and_faces(mixed_set, capsys):
    """The graph spotter (30 fps) on the 30 fps clip read at 200 fps: the report and stderr carry
    the frame-rate note, the rate, the detector's effective shortest event and each video's faces."""
    from microexp.cli import main
    assert main(["spot-eval", str(mixed_set), "--spotter", "graph", "--fps", "200", "--per-video"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["fps"] == [200.0] and report["config"]["min_event_ms"] == 200.0
    assert any("trained on clips at 30 fps and this stream runs at 200 fps" in n for n in report["notes"])
    assert "microexp spot-eval: note: the spotter model (graph_spotter.onnx)" in captured.err
    (video,) = report["videos"].values()
    assert video["faces"] == 1 and video["fps"] == 200.0
