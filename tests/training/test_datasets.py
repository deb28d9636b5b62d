import csv
import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from microexp.training.datasets import MegcComposite, SammAUMaps, read_samm_csv
from microexp.training.datasets.casme2 import casme2_frame_path, read_casme2_sheet
from microexp.training.datasets.samm import samm_clip_frames, samm_frame_path
from microexp.training.datasets.smic import scan_smic
from microexp.training.regions import compose_batch, flip_maps

from .fixtures import AU_COLUMNS, make_megc, make_samm_au


def test_megc_reader_reads_the_official_layout(tmp_path):
    make_megc(tmp_path)
    ds = MegcComposite(tmp_path)
    assert len(ds) == 24 and sorted(set(ds.subjects)) == ["006", "s1", "s2", "sub01"]
    maps = ds.load_maps()
    assert maps.shape == (24, 3, 28, 28) and maps.dtype == np.float32
    # channels come back as (u, v, strain): the reverse of cv2's (B, G, R) read
    raw = cv2.imread(str(ds.samples[0].flow_file))
    np.testing.assert_array_equal(maps[0, 0], raw[..., 2])
    assert set(ds.datasets) == {"samm", "casme2", "smic"}


def test_megc_reader_reports_missing_flow_files(tmp_path):
    make_megc(tmp_path)
    (tmp_path / "datasets" / "STSNet_whole_norm_u_v_os" / "006_006_clip0 .png").unlink()
    with pytest.warns(UserWarning, match="006/006_clip0"):
        ds = MegcComposite(tmp_path)
    assert len(ds) == 23


def test_megc_reader_names_a_missing_sheet(tmp_path):
    with pytest.raises(FileNotFoundError, match="combined_3_class2"):
        MegcComposite(tmp_path)


def test_samm_au_maps(tmp_path):
    make_samm_au(tmp_path)
    ds = SammAUMaps(tmp_path)
    assert ds.au_names == sorted(AU_COLUMNS, key=lambda c: int(c[3:]))
    assert ds.load_maps().shape == (24, 3, 28, 28)
    assert set(np.unique(ds.labels)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="AU_99"):
        SammAUMaps(tmp_path, aus=["AU_99"])


def _write_samm_csv(path, rows):
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
              "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(header)
        w.writerows(rows)


def test_samm_csv_quirks_are_reported_and_kept(tmp_path):
    sheet = tmp_path / "samm.csv"
    _write_samm_csv(sheet, [
        ["006", "006_1_2", "1", "5562", "5588", "5632", "71", "Micro - 1/2", "4+7", "Anger", "3", ""],
        ["028", "028_4_1", "1", "100", "300", "200", "101", "Micro - 1/2", "(R6 or R12)+soft focus", "Other", "7", ""],
        ["030", "030_1_1", "1", "x", "3", "4", "", "", "12", "Happiness", "1", ""],
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = read_samm_csv(sheet)
    messages = " | ".join(str(w.message) for w in caught)
    assert [c.clip for c in clips] == ["006_1_2", "028_4_1"]
    assert "028_4_1" in messages and "outside" in messages
    assert "soft focus" in messages and "030_1_1" in messages
    assert clips[1].action_units.uncertain == ["R6 or R12"]


def test_samm_frames_with_four_and_five_digit_numbers(tmp_path):
    for name in ("006_1_2/006_05562.jpg", "006_1_2/006_05563.jpg", "011_2_1/011_0217.jpg"):
        p = tmp_path / name.split("_")[0] / name
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), np.zeros((4, 4), np.uint8))
    assert samm_frame_path(tmp_path, "006", "006_1_2", 5562).name == "006_05562.jpg"
    assert samm_frame_path(tmp_path, "011", "011_2_1", 217).name == "011_0217.jpg"
    assert samm_clip_frames(tmp_path, "006", "006_1_2") == [5562, 5563]
    with pytest.raises(FileNotFoundError, match="frame 9"):
        samm_frame_path(tmp_path, "006", "006_1_2", 9)


def test_casme2_sheet_and_layout(tmp_path):
    sheet = tmp_path / "coding.csv"
    with open(sheet, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"])
        w.writerow(["1", "EP02_01f", "46", "59", "86", "12", "happiness"])
        w.writerow(["2", "EP03_02", "10", "/", "40", "4+L7", "disgust"])
    with pytest.warns(UserWarning, match="sub02/EP03_02"):
        clips = read_casme2_sheet(sheet)
    assert (clips[0].subject, clips[0].apex) == ("sub01", 59)
    assert clips[1].apex is None and clips[1].action_units.qualifier == {7: "L"}
    p = tmp_path / "sub01" / "EP02_01f" / "img46.jpg"
    p.parent.mkdir(parents=True)
    cv2.imwrite(str(p), np.zeros((4, 4), np.uint8))
    assert casme2_frame_path(tmp_path, "sub01", "EP02_01f", 46) == p


def test_smic_layout(tmp_path):
    clip = tmp_path / "s1" / "micro" / "negative" / "s1_ne_01"
    clip.mkdir(parents=True)
    for k in (123, 124, 125, 126):
        cv2.imwrite(str(clip / f"image{k:06d}.jpg"), np.zeros((4, 4), np.uint8))
    (c,) = scan_smic(tmp_path)
    assert (c.subject, c.emotion, c.onset, c.apex, c.offset) == ("s1", "negative", 123, 125, 126)
    assert c.frame_path(tmp_path, 124).is_file()


def test_flip_negates_u_and_composite_uses_the_kernel():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 256, (2, 3, 28, 28)).astype(np.float32)
    flipped = flip_maps(maps)
    np.testing.assert_array_equal(flipped[:, 0], 255 - maps[:, 0, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 1:], maps[:, 1:, :, ::-1])
    np.testing.assert_array_equal(flip_maps(flipped), maps)
    comp = compose_batch(maps)
    assert comp.shape == maps.shape and not np.array_equal(comp, maps)


def _astronaut_face():
    """The public-domain photo in training/faces, cropped to its face with a margin (as the
    apex faces of the composite are stored)."""
    import cv2

    from microexp.training.synth import PHOTOS
    return cv2.imread(str(PHOTOS / "astronaut.png"))[41:194, 160:288]


def test_apex_landmarks_follow_the_official_detection(tmp_path):
    import cv2

    from microexp.training.datasets.megc import FALLBACK_LANDMARKS_28
    root = make_megc(tmp_path)
    ds = MegcComposite(root)
    cv2.imwrite(str(ds.samples[1].apex_file), _astronaut_face())
    landmarks, found = ds.apex_landmarks()
    # The real face is found on its 28x28 thumbnail; the noise images fall back to HTNet's points.
    assert found.tolist() == [i == 1 for i in range(len(ds))]
    np.testing.assert_array_equal(landmarks[0], FALLBACK_LANDMARKS_28)
    eyes, mouth = landmarks[1][:2], landmarks[1][3:]
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left before right
    assert eyes[:, 1].max() < mouth[:, 1].min()  # eyes above the mouth
    assert ((landmarks[1] > 0) & (landmarks[1] < 28)).all()


def test_apex_landmarks_feed_the_detector_the_official_channel_order(tmp_path):
    import cv2

    from microexp.edge.detect import Face
    root = make_megc(tmp_path, subjects=("s1",), per_subject=2)
    ds = MegcComposite(root)
    seen = []

    class Spy:
        def detect(self, frame):
            seen.append(frame.copy())
            small = Face(np.array([5.0, 5, 15, 15]), 0.9, np.full((5, 2), 10.0))
            large = Face(np.array([0.0, 0, 27, 27]), 0.8, np.full((5, 2), 14.0))
            return [small, large]

    landmarks, found = ds.apex_landmarks(Spy())
    thumb = cv2.resize(cv2.imread(str(ds.samples[0].apex_file)), (28, 28), interpolation=cv2.INTER_AREA)
    # cv2's BGR array reaches the network as if it were RGB: reversed before detect() turns it over
    np.testing.assert_array_equal(seen[0], thumb[..., ::-1])
    assert found.all() and (landmarks == 14.0).all()  # the largest face's points


def test_apex_landmarks_name_a_missing_face_image(tmp_path):
    root = make_megc(tmp_path, subjects=("s1",), per_subject=2)
    ds = MegcComposite(root)
    ds.samples[1].apex_file.unlink()
    with pytest.raises(ValueError, match=ds.samples[1].apex_file.name):
        ds.apex_landmarks()


def test_mirrored_landmarks_are_what_the_detector_finds_on_the_mirrored_face():
    from microexp.edge.detect import FaceDetector
    from microexp.training.regions import flip_landmarks
    face = _astronaut_face()
    detector = FaceDetector()
    original = detector.detect(face)[0].landmarks
    mirrored = detector.detect(np.ascontiguousarray(face[:, ::-1]))[0].landmarks
    np.testing.assert_allclose(flip_landmarks(original, size=face.shape[1]), mirrored, atol=4.0)
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(original)), original)
