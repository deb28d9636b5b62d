import json
import warnings

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.training import synth
from microexp.training.datasets.samm import read_samm_csv, samm_clip_frames, samm_frame_path

from ..edge.clip import PHOTO

# MTCNN landmarks of the committed photo (le, re, nose, lm, rm), rounded: fixed here so the
# generator's tests do not depend on the detector.
LANDMARKS = np.array([[204.5, 101.3], [247.0, 103.3], [225.0, 129.1], [202.1, 139.8], [245.5, 142.0]])


@pytest.fixture(scope="module")
def photo():
    return cv2.imread(str(PHOTO))


def _apex_flow(photo, aus, size=(256, 256)):
    spec = synth.ClipSpec(frames=12, events=[synth.PlantedEvent(aus, 2, 6, 10)], jitter_px=0, jitter_deg=0,
                          noise=0, flicker=0, size=size)
    frames, flows = synth.render_clip(photo, LANDMARKS, spec, seed=0)
    return frames, flows[6].astype(np.float32), LANDMARKS * [size[0] / 512, size[1] / 512] / 4


def _mag(flow, p):
    x, y = int(round(p[0])), int(round(p[1]))
    return float(np.hypot(*flow[y, x]))


def test_au12_moves_the_mouth_corners_up_and_out_not_the_brows(photo):
    _, flow, lm = _apex_flow(photo, {12: "E"})
    left, right = flow[int(lm[3][1]), int(lm[3][0])], flow[int(lm[4][1]), int(lm[4][0])]
    assert left[0] < -0.3 and right[0] > 0.3 and left[1] < -0.3 and right[1] < -0.3  # out and up
    brow = lm[0] + [0, -0.45 * (lm[1][0] - lm[0][0])]
    assert _mag(flow, brow) < 0.05 * min(_mag(flow, lm[3]), _mag(flow, lm[4]))


@pytest.mark.parametrize("au, anchor, direction", [(1, 0, (0, -1)), (4, 0, (0, 1)), (15, 3, (0, 1)),
                                                   (43, 0, (0, 1)), (26, None, (0, 1))])
def test_each_au_moves_its_region_in_the_muscle_direction(photo, au, anchor, direction):
    _, flow, lm = _apex_flow(photo, {au: "E"})
    if anchor is None:
        mags = np.linalg.norm(flow, axis=-1)
        y, x = np.unravel_index(np.argmax(mags), mags.shape)
        v = flow[y, x]
        assert y > lm[3][1]  # below the mouth corners
    else:
        mags = np.linalg.norm(flow, axis=-1)
        y, x = np.unravel_index(np.argmax(mags), mags.shape)
        v = flow[y, x]
        assert np.hypot(x - lm[anchor][0], y - lm[anchor][1]) < 0.8 * (lm[1][0] - lm[0][0])
    assert np.dot(v, direction) > 0.7 * np.linalg.norm(v)


def test_intensity_scales_the_motion_and_the_profile_returns_to_rest(photo):
    _, weak, _ = _apex_flow(photo, {12: "A"})
    _, strong, _ = _apex_flow(photo, {12: "E"})
    # E is 5x A in the planted field; the ground truth solves F = D(p + F), which bends the
    # peak slightly, so the measured ratio is close to, not exactly, 5.
    assert 4.0 < np.abs(strong).max() / np.abs(weak).max() < 5.5
    p = synth.profile(20, 4, 8, 14)
    assert p[:4].sum() == 0 and p[15:].sum() == 0 and p[8] == 1.0


def test_generated_set_is_deterministic_and_in_the_samm_layout(photo, tmp_path):
    a = synth.generate([(photo, LANDMARKS)], tmp_path / "a", clips_per_photo=1, frames=60, events_per_clip=1,
                       seed=3, size=(192, 192))
    b = synth.generate([(photo, LANDMARKS)], tmp_path / "b", clips_per_photo=1, frames=60, events_per_clip=1,
                       seed=3, size=(192, 192))
    assert (a / "samm.csv").read_text() == (b / "samm.csv").read_text()
    fa, fb = (cv2.imread(str(samm_frame_path(r, "001", "001_1_1", 30))) for r in (a, b))
    assert np.array_equal(fa, fb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own reader takes the sheet without complaint
        clips = read_samm_csv(a / "samm.csv")
    assert len(clips) == 1 and clips[0].onset <= clips[0].apex <= clips[0].offset
    assert json.loads(clips[0].notes)["synthetic"] is True
    assert samm_clip_frames(a, "001", "001_1_1") == list(range(1, 61))
    flows = np.load(a / "001" / "001_1_1" / "flows.npz")
    assert flows["flow"].shape == (60, 48, 48, 2) and float(flows["scale"]) == 4.0
    assert np.abs(flows["flow"][0]).max() == 0  # the first frame is the reference


def test_ground_truth_flow_predicts_the_rendered_frames(photo):
    spec = synth.ClipSpec(frames=8, events=[synth.PlantedEvent({12: "E", 26: "D"}, 1, 4, 7)],
                          noise=0, flicker=0, size=(256, 256))
    frames, flows = synth.render_clip(photo, LANDMARKS, spec, seed=1)
    gt = cv2.resize(flows[4].astype(np.float32), (256, 256)) * 1.0
    est = cv2.calcOpticalFlowFarneback(cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY),
                                       cv2.cvtColor(frames[4], cv2.COLOR_BGR2GRAY), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    moving = np.linalg.norm(gt, axis=-1) > 0.5
    assert moving.sum() > 100
    e, g = est[moving], gt[moving]
    # Farneback smooths these small bumps (it recovers about half the amplitude here), but it
    # agrees with the ground truth in direction: far closer to it than to its opposite.
    assert np.linalg.norm(e - g, axis=-1).mean() < 0.5 * np.linalg.norm(e + g, axis=-1).mean()
    assert (e * g).sum(1).mean() / (g * g).sum(1).mean() > 0.3


def test_unknown_au_and_bad_landmarks_are_named(photo):
    with pytest.raises(ValueError, match="AU99"):
        synth.au_field(99, LANDMARKS, (64, 64))
    with pytest.raises(ValueError, match="landmarks"):
        synth.au_field(12, np.zeros((5, 2)), (64, 64))


def test_cli_synth_and_spot_eval(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--clips", "1", "--frames", "120", "--events", "1",
                 "--size", "256x256", "--seed", "2"]) == 0
    capsys.readouterr()
    assert main(["spot-eval", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_true"] == 1 and 0 <= report["f1"] <= 1
    # The learned spotter (the shipped one unless a model is named) drives the detector.
    assert main(["spot-eval", str(out), "--spot-score", "learned", "--spot-threshold", "0.6"]) == 0
    learned = json.loads(capsys.readouterr().out)
    assert learned["config"]["spot_score"] == "learned" and learned["config"]["spot_threshold"] == 0.6
    assert learned["config"]["spotter_model"].endswith("spotter.onnx") and 0 <= learned["f1"] <= 1
    with pytest.raises(SystemExit):
        main(["spot-eval", str(out), "--spot-score", "magic"])
    assert "invalid choice: 'magic'" in capsys.readouterr().err
    # AU decisions at the planted apex, against the AUs the sheet says were planted there.
    assert main(["au-eval", str(out)]) == 0
    au = json.loads(capsys.readouterr().out)
    sheet = (out / "samm.csv").read_text().splitlines()[1].split(";")
    planted = {f"AU{int(t.rstrip('ABCDE')):02d}" for t in sheet[8].split("+")}
    assert au["events"] == 1 and set(au["per_au"]) == planted
    assert all(v["events"] == 1 and v["fired"] in (0, 1) for v in au["per_au"].values())
    assert 0 <= au["calm_fire_rate"] <= 1 and au["fired_per_event"] >= 0
    assert main(["flow-report", str(out)]) == 0
    epe = json.loads(capsys.readouterr().out)["mean_epe_px"]
    assert set(epe) == {"farneback", "dis-ultrafast", "dis-fast", "dis-medium", "tvl1"}


def test_au_eval_names_a_missing_sheet(tmp_path):
    from microexp.training.synth_eval import au_eval
    with pytest.raises(FileNotFoundError, match="samm.csv"):
        au_eval(tmp_path)


def test_mixed_events_are_micro_or_larger_longer_macro():
    rng = np.random.default_rng(0)
    events = [e for _ in range(20) for e in synth.random_events(rng, 1200, 30.0, 8, kind="mixed")]
    kinds = {e.kind for e in events}
    assert kinds == {"micro", "macro"}
    for e in events:
        frames = e.offset - e.onset + 1
        if e.kind == "micro":
            assert 4 <= frames <= 15 and e.gain == 1.0  # 150-500 ms at 30 fps
        else:
            assert 15 < frames <= 120 and e.gain == synth.MACRO_GAIN  # over 500 ms, up to 4 s
        assert e.onset <= e.apex <= e.offset
    # The same seed with the default kind gives the micro-expressions it always gave.
    assert synth.random_events(np.random.default_rng(1), 200, 200.0, 2) == \
        synth.random_events(np.random.default_rng(1), 200, 200.0, 2, micro=True)
    with pytest.raises(ValueError, match="kind must be one of"):
        synth.random_events(rng, 100, 30.0, 1, kind="both")


def test_a_mixed_set_says_each_events_kind(tmp_path, photo):
    synth.generate([(photo, LANDMARKS)], tmp_path, clips_per_photo=1, frames=240, fps=30.0, events_per_clip=4, seed=3,
                   size=(128, 128), kind="mixed")
    rows = (tmp_path / "samm.csv").read_text().splitlines()[1:]
    kinds = {r.split(";")[7] for r in rows}
    assert kinds == {"Micro - 1/2", "Macro"}
    assert json.loads((tmp_path / "set.json").read_text())["kind"] == "mixed"
