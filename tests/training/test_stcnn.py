"""MicroExpSTCNN: its shape, its stacks built from frame folders with the runtime's alignment,
rotation augmentation, the LOSO and random-split protocols, and the export."""
import json

import numpy as np
import pytest
import torch

from microexp.training.models.stcnn import MicroExpSTCNN
from microexp.training.stcnn import augment, evaluate, train_model
from microexp.training.volumes import label_of, sample_indices


def test_the_model_maps_a_stack_to_class_logits():
    model = MicroExpSTCNN()
    assert model(torch.rand(2, 1, 18, 64, 64)).shape == (2, 3)
    # 32 filters of 15x3x3 leave 4 x 62 x 62; pooling by 3 leaves 1 x 20 x 20.
    assert model.head[0].in_features == 32 * 1 * 20 * 20
    with pytest.raises(ValueError, match="kernel depth 20 must be within 1..18"):
        MicroExpSTCNN(depth=20)


def test_sampling_spreads_the_frames_over_the_clip():
    assert sample_indices(35, 18)[[0, -1]].tolist() == [0, 34]
    assert np.all(np.diff(sample_indices(35, 18)) >= 1)
    assert sample_indices(5, 18).tolist()[:4] == [0, 0, 0, 1]  # short clips repeat frames
    assert [label_of(e) for e in ("Anger", "repression", "Happiness", "surprise", "Other", "others")] == \
        [0, 0, 1, 2, None, None]


def test_rotation_turns_every_frame_of_a_stack_alike():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 1, 4, 32, 32)
    x[..., 14:18, :] = 1.0  # a horizontal bar through the centre
    y = augment(x, 30.0, g)
    assert y.shape == x.shape
    assert torch.allclose(y[:, :, 0], y[:, :, 3])  # one angle per stack
    assert not torch.allclose(y, x.flip(-1)) and not torch.allclose(y, x)  # some stack was turned
    flat = torch.full((2, 1, 3, 16, 16), 0.5)
    assert torch.allclose(augment(flat, 45.0, g), flat)  # border padding: nothing enters from outside


def _bars(n, seed):
    """Stacks whose class is where a bar moves: down (0), up (1), sideways (2)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 18, 64, 64), np.uint8)
    y = np.arange(n) % 3
    for i in range(n):
        for t in range(18):
            p = 10 + 2 * t + int(rng.integers(-1, 2))
            if y[i] == 0:
                x[i, t, p:p + 4] = 200
            elif y[i] == 1:
                x[i, t, 60 - p:64 - p] = 200
            else:
                x[i, t, :, p:p + 4] = 200
    return x, y


def test_a_short_training_tells_motion_patterns_apart():
    x, y = _bars(36, 0)
    model = train_model(x, y, epochs=12, batch_size=6, lr=1e-3)
    xt, yt = _bars(12, 1)
    with torch.no_grad():
        pred = model(torch.from_numpy(xt).float()[:, None] / 255).argmax(1).numpy()
    assert (pred == yt).mean() >= 0.9


def test_loso_pools_folds_and_random_split_warns():
    x, y = _bars(24, 2)
    data = {"volumes": x, "labels": y, "subjects": np.array(["a", "b", "c", "d"] * 6)}
    loso = evaluate(data, "loso", epochs=1, batch_size=8)
    assert loso["protocol"] == "loso" and set(loso["folds"]) == {"a", "b", "c", "d"}
    assert loso["samples"] == 24 and sum(f["samples"] for f in loso["folds"].values()) == 24
    with pytest.warns(UserWarning, match="random-split mixes subjects"):
        split = evaluate(data, "random-split", epochs=1, batch_size=8)
    assert split["samples"] == 6 and "not subject-independent" in split["warning"]
    with pytest.raises(ValueError, match="at least two subjects"):
        evaluate(dict(data, subjects=np.array(["a"] * 24)), "loso", epochs=1)


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """Two subjects (the shipped photo twice), micro-expressions at 200 fps, SAMM layout."""
    from microexp.training.synth import PHOTOS, generate, load_photos
    root = tmp_path_factory.mktemp("stcnn")
    generate(load_photos([PHOTOS / "astronaut.png"] * 2), root, clips_per_photo=2, frames=120, fps=200.0,
             events_per_clip=2, seed=5, size=(256, 256))
    return root


def test_stacks_come_from_the_frame_folders_aligned(two_subjects):
    from microexp.training.volumes import build_volumes, clip_refs
    refs = clip_refs(two_subjects, "samm")
    data = build_volumes([two_subjects], "samm")
    kept = [r for r in refs if r.label is not None]
    assert data["volumes"].shape == (len(kept), 18, 64, 64) and data["volumes"].dtype == np.uint8
    assert data["left_out"]["no_class"] == len(refs) - len(kept)
    assert set(data["subjects"].tolist()) == {"001", "002"}
    # A micro-expression moves a few pixels: the aligned stack of one clip stays the same face.
    v = data["volumes"][0].astype(float)
    assert np.abs(v - v[0]).mean() < 12 and v.std() > 20


def test_cli_trains_loso_saves_and_exports(two_subjects, tmp_path, capsys):
    import onnxruntime as ort

    from microexp.cli import main
    from microexp.export.onnx_export import export_onnx
    out, ckpt = tmp_path / "run", tmp_path / "stcnn.pt"
    assert main(["train", "stcnn", "--data", str(two_subjects), "--out", str(out), "--epochs", "1",
                 "--rotate", "10", "--save-model", str(ckpt), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol"] == "loso" and set(summary["folds"]) == {"001", "002"}
    assert json.loads((out / "summary.json").read_text())["accuracy"] == summary["accuracy"]
    card = (tmp_path / "stcnn.md").read_text()
    assert "no licensed data set" in card and "loso" in card
    report = export_onnx(ckpt, tmp_path / "stcnn.onnx")
    assert report.parity_ok and report.metadata["input_encoding"] == "gray-volume"
    session = ort.InferenceSession(str(tmp_path / "stcnn.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 18, 64, 64]
    assert main(["train", "stcnn", "--data", str(two_subjects), "--out", str(tmp_path / "split"), "--epochs", "1",
                 "--protocol", "random-split"]) == 0
    assert "random-split mixes subjects" in capsys.readouterr().err


def test_the_same_clips_in_casme2_and_smic_layouts_give_the_same_stacks(two_subjects, tmp_path):
    """The generated clips copied into CASME II's layout (imgN.jpg, coding sheet) and SMIC's
    (image######.jpg under the emotion's folder, the whole clip): the readers find the same
    frames, so the stacks are the SAMM layout's."""
    import shutil

    from microexp.training.datasets.samm import read_samm_csv
    from microexp.training.volumes import build_volumes, label_of
    samm = build_volumes([two_subjects], "samm")
    rows = ["Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion"]
    smic = tmp_path / "smic"
    for c in read_samm_csv(two_subjects / "samm.csv"):
        if label_of(c.emotion) is None:
            continue
        name = f"{c.clip}_{c.onset}"
        casme_clip = tmp_path / "casme2" / f"sub{int(c.subject):02d}" / name
        smic_clip = smic / f"s{int(c.subject)}" / "micro" / ("negative", "positive", "surprise")[label_of(c.emotion)] / name
        casme_clip.mkdir(parents=True)
        smic_clip.mkdir(parents=True)
        for f in range(c.onset, c.offset + 1):
            src = two_subjects / c.subject / c.clip / f"{c.subject}_{f:05d}.jpg"
            shutil.copy(src, casme_clip / f"img{f}.jpg")
            shutil.copy(src, smic_clip / f"image{f:06d}.jpg")
        rows.append(f"{int(c.subject)},{name},{c.onset},{c.apex},{c.offset},{c.au_text},{c.emotion}")
    (tmp_path / "coding.csv").write_text("\n".join(rows) + "\n")
    casme = build_volumes([tmp_path / "casme2"], "casme2", sheet=tmp_path / "coding.csv")
    by_smic = build_volumes([smic], "smic")
    # SAMM-layout stacks in sheet order: (subject number, clip, onset) -> index
    order = [(int(c.subject), c.clip, c.onset) for c in read_samm_csv(two_subjects / "samm.csv")
             if label_of(c.emotion) is not None]
    assert len(casme["labels"]) == len(by_smic["labels"]) == len(samm["labels"]) == len(order)
    for other in (casme, by_smic):
        for name, volume, label in zip(other["names"], other["volumes"], other["labels"]):
            subject, clip = name.split("/")
            base, onset = clip.rsplit("_", 1)
            i = order.index((int("".join(ch for ch in subject if ch.isdigit())), base, int(onset)))
            assert label == samm["labels"][i] and np.array_equal(volume, samm["volumes"][i])
    with pytest.raises(ValueError, match="casme2: name the coding sheet"):
        build_volumes([tmp_path / "casme2"], "casme2")


def test_subjects_of_several_sets_stay_apart_and_bad_inputs_are_named(two_subjects, tmp_path):
    from microexp.training.volumes import build_volumes, clip_refs
    data = build_volumes([two_subjects, two_subjects], "samm")
    name = two_subjects.name
    assert set(data["subjects"].tolist()) == {f"{name}/001", f"{name}/002"}  # one folder twice: still its own ids
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no samm.csv .* name it with --sheet, or choose another --layout"):
        clip_refs(tmp_path / "empty", "samm")
    with pytest.raises(ValueError, match="no clip found in the smic layout"):
        clip_refs(two_subjects, "smic")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        clip_refs(tmp_path / "absent", "samm")
    with pytest.raises(FileNotFoundError, match="no coding.xlsx .* the casme2 layout's sheet"):
        clip_refs(tmp_path / "empty", "casme2", sheet=tmp_path / "coding.xlsx")
