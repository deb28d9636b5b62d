import pytest

from microexp.training.datasets.au_codes import parse_action_units


@pytest.mark.parametrize("text, intensity, qualifier", [
    ("4+7+43A", {4: 1.0, 7: 1.0, 43: 0.2}, {}),
    ("L12", {12: 1.0}, {12: "L"}),
    ("R14B", {14: 0.4}, {14: "R"}),
    ("A/L12", {12: 1.0}, {12: "A/L"}),
    ("A12B+T18+B18", {12: 0.4, 18: 1.0}, {12: "A", 18: "B"}),
    ("10A/B", {10: 0.4}, {}),
    ("4D+9B+5C+2E", {4: 0.8, 9: 0.4, 5: 0.6, 2: 1.0}, {}),
])
def test_notations(text, intensity, qualifier):
    parsed = parse_action_units(text)
    assert parsed.intensity == intensity
    assert parsed.qualifier == qualifier
    assert not parsed.unknown and not parsed.uncertain


def test_references_count_as_present_and_are_listed():
    parsed = parse_action_units("ref(7B)+ref(L10)+4")
    assert parsed.intensity == {7: 0.4, 10: 1.0, 4: 1.0}
    assert parsed.references == [7, 10]
    assert parsed.qualifier == {10: "L"}


def test_alternatives_are_reported_as_uncertain_not_set():
    parsed = parse_action_units("(R6 or R12) + R15")
    assert parsed.intensity == {15: 1.0}
    assert parsed.uncertain == ["R6 or R12"]


def test_unknown_tokens_are_reported_not_dropped():
    parsed = parse_action_units("12+soft focus+X99")
    assert parsed.intensity == {12: 1.0}
    assert parsed.unknown == ["soft focus", "X99"]


@pytest.mark.parametrize("text", ["", None, "-", " + "])
def test_empty_cells(text):
    parsed = parse_action_units(text)
    assert parsed.present == [] and not parsed.unknown
