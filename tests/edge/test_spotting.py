"""The interval detector on hand-made motion traces (no video, no models)."""
import numpy as np
import pytest

from microexp.edge.spotting import IntervalSpotter, _median


@pytest.mark.parametrize("n", [1, 2, 5, 8, 199, 200])
def test_median_is_numpys(n):
    values = np.random.default_rng(n).normal(size=n)
    assert _median(values) == np.median(values)


def test_baseline_is_median_and_mad_of_the_last_calm_frames():
    rng = np.random.default_rng(0)
    spotter = IntervalSpotter(fps=100, baseline_frames=50)
    fed = []  # an independent account: a frame feeds the baseline while there are fewer than
    # 5 calm frames or when it is at most median + 2 MAD of the last 50 of them
    for i, m in enumerate(np.abs(rng.normal(0.2, 0.01, 400))):
        window = np.asarray(fed[-50:])
        if len(fed) < 5:
            assert spotter.baseline() is None
            fed.append(float(m))
        else:
            med = np.median(window)
            mad = np.median(np.abs(window - med)) * 1.4826
            assert spotter.baseline() == pytest.approx((med, mad), rel=1e-12)
            assert spotter.threshold() == pytest.approx(med + max(spotter.k * mad, spotter.floor))
            if m <= med + 2 * mad:
                fed.append(float(m))
        spotter.update(i, i / 100, float(m))
    assert len(fed) > 120  # the ring wrapped more than twice


def _run(trace, fps=100.0, **kw):
    spotter = IntervalSpotter(fps=fps, **kw)
    return [e for i, m in enumerate(trace) if (e := spotter.update(i, i / fps, float(m))) is not None]


def _trace(bump_start, bump_len, n=300, seed=1):
    rng = np.random.default_rng(seed)
    trace = 0.2 + rng.normal(0, 0.005, n)
    t = np.arange(bump_len)
    trace[bump_start:bump_start + bump_len] += 2.0 * np.sin(np.pi * (t + 0.5) / bump_len)
    return trace


def test_a_bump_becomes_one_event_with_its_onset_apex_and_offset():
    events = _run(_trace(150, 20), k=6.0)
    assert len(events) == 1
    e = events[0]
    assert 150 <= e.onset_frame <= 152 and 167 <= e.offset_frame <= 169
    assert e.apex_frame in (159, 160) and e.peak_motion > 2.0
    assert e.onset_time == pytest.approx(e.onset_frame / 100) and e.offset_time == pytest.approx(e.offset_frame / 100)


def test_too_short_and_too_long_bumps_are_dropped():
    assert _run(_trace(150, 2), min_ms=40) == []  # 20 ms at 100 fps
    assert _run(_trace(100, 80), max_ms=500) == []  # 800 ms
    assert _run(_trace(20, 260, n=400), max_ms=2000) == []  # 2.6 s


def test_events_up_to_the_boundary_are_micro_longer_ones_macro():
    (short,) = _run(_trace(150, 20))  # about 200 ms at 100 fps
    (long,) = _run(_trace(100, 80))  # about 800 ms
    assert short.kind == "micro" and long.kind == "macro"
    assert long.offset_frame - long.onset_frame + 1 > 50
    # The boundary is a setting: with 1 s, the 800 ms event is a micro-expression.
    assert [e.kind for e in _run(_trace(100, 80), micro_max_ms=1000)] == ["micro"]
    # An event of exactly micro_max_ms is micro, one frame more is macro (fixed threshold: exact lengths).
    def block(length):
        trace = np.zeros(200)
        trace[50:50 + length] = 1.0
        return [(e.offset_frame - e.onset_frame + 1, e.kind) for e in _run(trace, threshold=0.5)]
    assert block(50) == [(50, "micro")] and block(51) == [(51, "macro")]
    # A shortest event above the boundary: macro-expressions only.
    assert [e.kind for e in _run(_trace(150, 20), min_ms=100, micro_max_ms=50)] == ["macro"]
    with pytest.raises(ValueError, match="min_ms must be positive"):
        IntervalSpotter(100.0, min_ms=0)


def test_a_fixed_threshold_replaces_the_baseline_for_probability_scores():
    # A probability that idles at 0.6 (above any baseline + k * MAD floor would sit) and
    # rises to 0.95 for 20 frames: only the fixed threshold separates the two.
    trace = np.full(300, 0.6)
    trace[150:170] = 0.95
    events = _run(trace, threshold=0.8)
    assert [(e.onset_frame, e.offset_frame) for e in events] == [(150, 169)]
    spotter = IntervalSpotter(100.0, threshold=0.8)
    assert spotter.threshold() == 0.8  # from the first frame on, no baseline needed
    assert _run(trace, threshold=0.97) == []


def test_an_interval_without_facial_action_is_dropped():
    trace = _trace(150, 20)
    spotter = IntervalSpotter(fps=100.0, k=6.0)
    # The action gate saw nothing anywhere: the rise was head drift or noise, not the face.
    assert [e for i, m in enumerate(trace) if (e := spotter.update(i, i / 100, float(m), action=False))] == []
    spotter = IntervalSpotter(fps=100.0, k=6.0)
    gated = [e for i, m in enumerate(trace) if (e := spotter.update(i, i / 100, float(m), action=(i == 160)))]
    assert len(gated) == 1 and gated[0].apex_frame in (159, 160)  # one frame of action inside is enough
