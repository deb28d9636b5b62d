"""A short fuzz run in every test run (CI's sanitizer job runs a longer one), and the harness
shown to catch each kind of defect it is meant to catch."""
import numpy as np
import pytest

from microexp import kernels as K

from . import fuzz


def test_random_calls_find_nothing():
    report = fuzz.run_range(seed=7, start=0, stop=3000)
    assert report["findings"] == []
    assert set(report["counts"]) == set(fuzz.CASES)
    for name, outcome in report["counts"].items():  # each function both runs and refuses
        assert outcome.get("returned", 0) > 0 and outcome.get("refused", 0) > 0, (name, outcome)


def test_every_kernel_has_a_case():
    public = {"match_template", "ncc_map", "template_matcher", "align_crop", "resize_linear",
              "resize_area", "encode_hsv28", "encode_uvs28", "compose_regions", "region_motion",
              "farneback"}
    assert public <= set(fuzz.CASES)
    raw = {n for n in dir(fuzz.R) if not n.startswith("__") and n not in ("cpu_has_fma",)}
    named = {"PyramidTemplate": "raw_pyramid_template", "Farneback": "raw_farneback",
             "_hsv_to_bgr": "raw_hsv_to_bgr"}
    for n in raw:
        assert named.get(n, f"raw_{n}") in fuzz.CASES, n


def _first(seed, function, count=2000):
    return [i for i in range(count) if fuzz.make_case(seed, i).function == function]


@pytest.mark.parametrize("defect, kind", [
    (lambda *a, **k: (_ for _ in ()).throw(OverflowError("planted")), "wrong exception type OverflowError"),
    (lambda *a, **k: np.full((3, 28, 28), np.nan, np.float32), "non-finite output for finite input"),
])
def test_the_harness_reports_planted_defects(monkeypatch, defect, kind):
    monkeypatch.setattr(K, "encode_uvs28", defect)
    found = [fuzz.run_case(3, i) for i in _first(3, "encode_uvs28")[:40]]
    assert any(f and f["kind"] == kind for f in found)


def test_the_harness_reports_a_layout_that_changes_the_result(monkeypatch):
    real = K.encode_hsv28

    def refuses_misaligned(flow, *a, **k):
        if isinstance(flow, np.ndarray) and not flow.flags.aligned:
            raise TypeError("planted: misaligned refused")
        return real(flow, *a, **k)
    monkeypatch.setattr(K, "encode_hsv28", refuses_misaligned)
    found = [fuzz.check_layouts(5, i) for i in _first(5, "encode_hsv28", 6000)]
    assert any(f and f["kind"].startswith("layout changed the result") for f in found)


def test_a_case_replays_from_its_seed_and_index():
    a, b = fuzz.make_case(11, 123), fuzz.make_case(11, 123)
    assert a.function == b.function
    ra, rb = fuzz._outcome(a.call), fuzz._outcome(b.call)
    assert ra[0] == rb[0] and fuzz._same(ra[1], rb[1])
