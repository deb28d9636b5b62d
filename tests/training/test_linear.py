"""The pooled linear model: its fit is the penalised optimum, its penalty is chosen inside the
training subjects, and it travels through LOSO, checkpoints and ONNX like the deep models."""
import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from microexp.training import fitting, inputs, linear_fit, loso
from microexp.training.experiment import Experiment
from microexp.training.metrics import binary_f1
from microexp.training.models.linear import PooledLinear, colour_wheel

LINEAR = dict(model="linear", input="whole",
              model_args=dict(pool=4, features="raw", c_grid=[0.01, 0.1, 1.0]))


def _objective_gradient(features, y, task, inverse_penalty, w, b):
    """The objective's gradient at (w, b), by autograd on its own written-out form."""
    x = torch.tensor(features, dtype=torch.float64)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    weights = torch.tensor(linear_fit.balanced_weights(task, y, 3))
    z = x @ wt.T + bt
    if task == "emotion":
        data = (weights * torch.nn.functional.cross_entropy(z, torch.tensor(y), reduction="none")).sum()
    else:
        data = (weights * torch.nn.functional.binary_cross_entropy_with_logits(
            z, torch.tensor(y, dtype=torch.float64), reduction="none")).sum()
    penalty = torch.tensor(np.broadcast_to(np.asarray(inverse_penalty, np.float64), (len(w),)).copy())
    (data + 0.5 * ((wt ** 2).sum(1) / penalty).sum()).backward()
    return wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("task", ["emotion", "au"])
def test_the_fit_is_the_penalised_optimum(task):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 12))
    if task == "emotion":
        y = rng.integers(0, 3, 90)
        x[:, 0] += y
        c = 0.3
    else:
        y = np.stack([(x[:, 0] + rng.normal(size=90) > 1).astype(np.int64),
                      (x[:, 1] - x[:, 2] > 0).astype(np.int64)], 1)
        c = np.array([0.05, 2.0])  # each AU its own penalty
    w, b = linear_fit.solve(x, y, task, c, 3)
    gw, gb = _objective_gradient(x, y, task, c, w, b)
    assert np.abs(gw).max() < 1e-6 and np.abs(gb).max() < 1e-6
    assert np.abs(w).max() > 0.1  # and not the trivial point


def test_many_aus_on_finely_pooled_features_fit_with_two_threads():
    # 2x2 pooling: 588 features per AU, solved as a batch; batched LU failed here (MKL, 2 threads).
    rng = np.random.default_rng(2)
    x = rng.normal(size=(140, 588))
    y = (x[:, :4] + rng.normal(size=(140, 4)) > 0.5).astype(np.int64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        w, b = linear_fit.solve(x, y, "au", 0.01, 4)
    finally:
        torch.set_num_threads(threads)
    gw, gb = _objective_gradient(x, y, "au", 0.01, w, b)
    assert np.abs(gw).max() < 1e-6 and np.abs(gb).max() < 1e-6


def test_an_au_constant_in_training_never_or_always_fires():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = np.stack([np.zeros(40, np.int64), np.ones(40, np.int64), (x[:, 0] > 0).astype(np.int64)], 1)
    w, b = linear_fit.solve(x, y, "au", 1.0, 2)
    assert np.all(w[:2] == 0) and b[0] < -10 and b[1] > 10
    assert w[2, 0] > 0.5


def test_balanced_weights_give_each_class_the_same_total():
    y = np.array([0, 0, 0, 0, 1, 2])
    w = linear_fit.balanced_weights("emotion", y, 3)
    assert [w[y == c].sum() for c in range(3)] == pytest.approx([2.0, 2.0, 2.0])
    au = np.array([[1, 0], [0, 0], [0, 0], [0, 0]])
    wa = linear_fit.balanced_weights("au", au, 2)
    assert wa[:, 0].tolist() == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3])
    assert np.all(wa[:, 1] == 0)  # an AU without positives carries no weight


def test_the_penalty_is_chosen_on_held_out_subjects_with_ties_going_to_the_stronger_one():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.array(list("abcdef")), 10)
    y = np.arange(60) % 2
    x = (np.where(y == 1, 3.0, -3.0) + rng.normal(0, 0.3, 60))[:, None]
    # Cleanly separated: every C in the grid predicts every held-out subject right, so the
    # smallest C wins the tie.
    chosen = linear_fit.choose_inverse_penalty(x, y, subjects, "emotion", [1.0, 0.1, 10.0], 2)
    assert chosen.tolist() == [0.1, 0.1]


def test_choosing_the_penalty_calls_no_fit_that_sees_the_held_out_subject(monkeypatch):
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.array(list("abcd")), 8)
    x = rng.normal(size=(64, 4))  # 32 originals, then their mirrored copies
    y = np.concatenate([rng.integers(0, 2, (32, 2))] * 2)
    groups = np.concatenate([subjects, subjects])
    calls = []
    original = linear_fit.fit_predict_scores

    def spy(train_x, train_y, test_x, *args):
        rows_train = [int(np.flatnonzero((x == r).all(1))[0]) for r in train_x]
        rows_test = [int(np.flatnonzero((x == r).all(1))[0]) for r in test_x]
        calls.append((set(groups[rows_train]), set(groups[rows_test])))
        return original(train_x, train_y, test_x, *args)

    monkeypatch.setattr(linear_fit, "fit_predict_scores", spy)
    linear_fit.choose_inverse_penalty(x, y, subjects, "au", [0.1, 1.0], 2, groups=groups)
    assert len(calls) == 2 * 4
    for train_subjects, test_subjects in calls:
        assert len(test_subjects) == 1 and not (train_subjects & test_subjects)


def test_colour_wheel_recovers_the_flow_direction_of_hsv_colours():
    angles = np.arange(0, 360, 5.0)
    hsv = np.zeros((1, len(angles), 3), np.uint8)
    hsv[0, :, 0] = (angles / 2).astype(np.uint8)
    hsv[0, :, 1] = 255
    hsv[0, :, 2] = 200
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32)
    decoded = colour_wheel(torch.from_numpy(bgr.transpose(2, 0, 1)[None].copy()))[0, :, 0].numpy()
    direction = np.degrees(np.arctan2(decoded[1], decoded[0])) % 360
    error = (direction - angles + 180) % 360 - 180
    assert np.abs(error).max() < 2.5  # hexagon vs circle, plus uint8 rounding
    length = np.hypot(decoded[0], decoded[1])
    assert length.min() > 0.85 * 200 and length.max() <= 200 + 1
    assert np.all(decoded[2] == 200)


def _au_maps(n_subjects=6, per_subject=10, seed=0):
    """HSV-like maps whose AU is marked by a colour patch in one region, and noise."""
    rng = np.random.default_rng(seed)
    maps, labels, subjects = [], [], []
    for s in range(n_subjects):
        for _ in range(per_subject):
            on = [int(rng.random() < 0.4), int(rng.random() < 0.4)]
            m = rng.uniform(0, 60, (3, 28, 28)).astype(np.float32)
            if on[0]:
                m[2, 0:12, :] += 150  # red: motion to the right, upper face
            if on[1]:
                m[1, 16:28, :] += 150  # green: lower face
            maps.append(m), labels.append(on), subjects.append(f"s{s}")
    return np.stack(maps), np.array(labels), np.array(subjects)


def test_linear_loso_learns_planted_aus_and_reports_its_penalties(tmp_path):
    maps, labels, subjects = _au_maps()
    exp = Experiment(task="au", **dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma")))
    folds = loso.run_loso(exp, maps, labels, subjects, out_dir=tmp_path, progress=False)
    pred = np.concatenate([f["pred"] for f in folds])
    true = np.concatenate([f["true"] for f in folds])
    assert np.mean(pred == true) > 0.95
    assert all(len(f["inverse_penalty"]) == 2 for f in folds)
    assert json.loads((tmp_path / "folds" / "s0.json").read_text())["inverse_penalty"] == folds[0]["inverse_penalty"]


def test_inner_thresholds_come_from_the_same_held_out_subjects_and_decide_the_folds(tmp_path):
    maps, labels, subjects = _au_maps()
    chroma = dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma"))
    exp = Experiment(task="au", inner_thresholds=True, **chroma)
    model = linear_fit.fit_linear(exp, maps, labels, subjects)
    assert len(model.thresholds) == 2 and all(t in linear_fit.THRESHOLD_GRID for t in model.thresholds)
    # The threshold is the grid value with the best pooled F1 of the inner held-out predictions:
    # recomputed here from the same C and folds, independently of choose_inverse_penalty.
    features = model.pooled(inputs.prepare_inputs(exp, maps)).double().numpy()
    for j in range(2):
        c = model.inverse_penalty[j]
        logits = np.zeros(len(maps))
        for s in sorted(set(subjects)):
            test = subjects == s
            logits[test] = linear_fit.fit_predict_scores(features[~test], labels[~test], features[test], "au", c, 2)[:, j]
        probs = 1 / (1 + np.exp(-logits))
        f1 = [np.nan_to_num(binary_f1(labels[:, j], probs >= t), nan=-1) for t in linear_fit.THRESHOLD_GRID]
        assert max(f1) == pytest.approx(binary_f1(labels[:, j], probs >= model.thresholds[j]))
    folds = loso.run_loso(exp, maps, labels, subjects, progress=False)
    for f in folds:  # each fold decides at the thresholds its own training subjects chose
        probs = np.asarray(f["probs"])
        assert np.array_equal(np.asarray(f["pred"]), (probs >= np.asarray(f["thresholds"])).astype(int))


def test_extra_rows_train_every_fold_and_are_never_tested():
    maps, labels, subjects = _au_maps()
    chroma = dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma"))
    extra_maps, extra_labels, _ = _au_maps(n_subjects=2, seed=9)
    plain = linear_fit.fit_linear(Experiment(task="au", **chroma), maps, labels, subjects)
    with_extra = linear_fit.fit_linear(Experiment(task="au", extra_maps="x.npz", **chroma), maps, labels, subjects,
                                       extra=(extra_maps, extra_labels))
    assert not torch.equal(plain.linear.weight, with_extra.linear.weight)
    folds = loso.run_loso(Experiment(task="au", extra_maps="x.npz", **chroma), maps, labels, subjects,
                          progress=False, extra=(extra_maps, extra_labels))
    tested = np.concatenate([f["indices"] for f in folds])
    assert sorted(tested.tolist()) == list(range(len(maps)))  # only the set's own rows, each once
    with pytest.raises(ValueError, match="extra_maps are extra training rows for the linear AU model"):
        Experiment(task="emotion", extra_maps="x.npz", **LINEAR)


def test_mirrored_copies_join_the_emotion_fit():
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 255, (24, 3, 28, 28)).astype(np.float32)
    labels = np.arange(24) % 3
    subjects = np.repeat(np.array(list("abcd")), 6)
    exp = Experiment(task="emotion", flip=True, **LINEAR)
    model = linear_fit.fit_linear(exp, maps, labels, subjects)
    plain = linear_fit.fit_linear(Experiment(task="emotion", **LINEAR), maps, labels, subjects)
    assert not torch.equal(model.linear.weight, plain.linear.weight)
    with pytest.raises(ValueError, match="one subject per map"):
        linear_fit.fit_linear(exp, maps, labels, None)


def test_linear_checkpoint_exports_to_onnx_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from microexp.export.onnx_export import export_onnx
    from microexp.training.checkpoint import load_checkpoint, save_checkpoint
    maps, labels, subjects = _au_maps(n_subjects=4)
    exp = Experiment(task="au", **dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma")))
    model = fitting.train_model(exp, maps, labels, subjects=subjects)
    ckpt = save_checkpoint(tmp_path / "lin.pt", model, exp, dataset="samm-au", labels=["AU04", "AU12"],
                           metrics={}, provenance="test fixture")
    loaded = load_checkpoint(ckpt)
    again, meta = loaded.model, loaded.metadata
    assert list(meta["inverse_penalty"]) == ["AU04", "AU12"]  # the chosen C travels with the model
    x = inputs.prepare_inputs(exp, maps[:5])
    assert torch.equal(again(x), model(x))  # the standardisation travels with the weights
    report = export_onnx(ckpt, tmp_path / "lin.onnx")
    assert report.parity_ok and report.metadata["input_encoding"] == "hsv28"


@pytest.mark.parametrize("settings, message", [
    (dict(task="emotion", model_args=dict(features="chroma")), "decode HSV-encoded maps"),
    (dict(task="au", protocol="oracle-epoch"), "oracle-epoch"),
    (dict(task="au", ensemble=3), "ensemble > 1"),
    (dict(task="au", pos_weight_cap=5.0), "pos_weight_cap"),
    (dict(task="emotion", inner_thresholds=True), "inner_thresholds on the emotion task"),
])
def test_linear_settings_that_cannot_hold_are_named(settings, message):
    kw = dict(LINEAR, **settings)
    with pytest.raises(ValueError, match=message):
        Experiment(**kw)


def test_pooled_linear_arguments_are_checked():
    with pytest.raises(ValueError, match="pool must divide 28"):
        PooledLinear(3, pool=5)
    with pytest.raises(ValueError, match="features must be one of"):
        PooledLinear(3, features="hue")
    with pytest.raises(ValueError, match="c_grid"):
        PooledLinear(3, c_grid=[0.1, 0.0])


def test_inner_split_deals_sorted_subjects_round_robin():
    subjects = np.array(["d", "c", "b", "a", "e", "d"])
    assert linear_fit.inner_split(subjects, None) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert linear_fit.inner_split(subjects, 2) == [["a", "c", "e"], ["b", "d"]]
    assert linear_fit.inner_split(subjects, 9) == [["a"], ["b"], ["c"], ["d"], ["e"]]


def test_jittered_copies_join_the_fit_with_their_subjects(monkeypatch):
    rng = np.random.default_rng(0)
    maps = rng.uniform(0, 255, (12, 3, 28, 28)).astype(np.float32)
    labels = np.arange(12) % 3
    subjects = np.repeat(np.array(list("abcd")), 3)
    seen = {}
    original = linear_fit.choose_inverse_penalty

    def spy(features, y, subs, *args, **kw):
        seen.update(rows=len(features), groups=args[-2] if len(args) >= 5 else kw.get("groups"),
                    folds=args[-1] if len(args) >= 6 else kw.get("folds"), features=features)
        return original(features, y, subs, *args, **kw)

    monkeypatch.setattr(linear_fit, "choose_inverse_penalty", spy)
    args = dict(LINEAR, input="composite", model_args=dict(LINEAR["model_args"], inner_folds=2, jitter_copies=2))
    linear_fit.fit_linear(Experiment(task="emotion", flip=True, landmark_jitter=2, **args), maps, labels, subjects)
    assert seen["rows"] == 12 * (2 + 2 * 2)  # originals, mirrors, then two jittered copies of each
    assert seen["groups"].tolist() == subjects.tolist() * 6 and seen["folds"] == 2
    f = seen["features"]
    assert not np.allclose(f[24:36], f[:12])  # the copies' regions moved
    with pytest.raises(ValueError, match="inner_folds must be >= 2"):
        PooledLinear(3, inner_folds=1)


def test_mirrored_chroma_features_are_those_of_the_mirrored_flow():
    from microexp import kernels
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:112, 0:112]
    flow = np.zeros((112, 112, 2), np.float32)
    flow[..., 0] = 2.0 * np.exp(-((yy - 30) ** 2 + (xx - 25) ** 2) / 200)  # one corner moves right
    flow[..., 1] = -1.5 * np.exp(-((yy - 80) ** 2 + (xx - 70) ** 2) / 300)  # another up
    flow += rng.normal(0, 0.05, flow.shape).astype(np.float32)
    mirror = flow[:, ::-1].copy()
    mirror[..., 0] *= -1

    def encode(f):
        hsv = kernels.encode_hsv28(np.ascontiguousarray(f)).transpose(2, 0, 1)[None]
        return torch.from_numpy(hsv.astype(np.float32) / 255)
    model = PooledLinear(2, features="chroma")
    want = model.pooled(encode(mirror))
    got = model.pooled(encode(flow), mirrored=True)
    # Equal up to the encoding's uint8 steps (hue truncated to 2 degrees, BGR rounded): the
    # features reach 0.66, the differences 0.03.
    assert torch.allclose(got, want, atol=0.03)
    assert np.corrcoef(got.numpy().ravel(), want.numpy().ravel())[0, 1] > 0.999
    assert np.corrcoef(model.pooled(encode(flow)).numpy().ravel(), want.numpy().ravel())[0, 1] < 0.5
    with pytest.raises(ValueError, match="features 'chroma'"):
        PooledLinear(2).pooled(encode(flow), mirrored=True)


def test_au_flip_is_refused_unless_the_model_mirrors_decoded_flow():
    with pytest.raises(ValueError, match="does not mirror by a channel operation"):
        Experiment(task="au", input="whole", flip=True)  # the HTNet on HSV maps
    with pytest.raises(ValueError, match="does not mirror by a channel operation"):
        Experiment(task="au", flip=True, **LINEAR)
    Experiment(task="au", flip=True, **dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma")))


def test_au_flip_doubles_the_fit_with_mirrored_features(monkeypatch):
    maps, labels, subjects = _au_maps(n_subjects=3)
    seen = {}
    original = linear_fit.choose_inverse_penalty

    def spy(features, y, subs, *args, **kw):
        seen.update(rows=len(features), y=y)
        return original(features, y, subs, *args, **kw)

    monkeypatch.setattr(linear_fit, "choose_inverse_penalty", spy)
    exp = Experiment(task="au", flip=True, **dict(LINEAR, model_args=dict(LINEAR["model_args"], features="chroma")))
    linear_fit.fit_linear(exp, maps, labels, subjects)
    assert seen["rows"] == 2 * len(maps) and np.array_equal(seen["y"], np.concatenate([labels, labels]))
