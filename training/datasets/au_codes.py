"""Parser for FACS action-unit strings as the SAMM and CASME II sheets write them.

Notation seen in samm.csv: AUs joined by '+' ('4+7+43'); intensity letters A..E after the
number ('12B'); side or region prefixes L, R, T, B and A ('L12', 'R14B', 'T18', 'A12B');
'A/L12'; intensity ranges ('10A/B'); alternatives ('L12 or L14', '(R6 or R12)'); references
('ref(7B)'); free text ('soft focus').

Choices (documented, not silent):
* intensity A..E -> 0.2, 0.4, 0.6, 0.8, 1.0; no letter -> 1.0; a range 'A/B' takes the higher;
* a prefix is kept as the AU's qualifier ('L', 'R', 'T', 'B', 'A'; 'A/L' keeps 'A/L');
* 'ref(...)' marks an AU the coder noted by reference: it counts as present and is listed in
  ``references``;
* alternatives ('X or Y') are ambiguous: none of them is set, the text goes to ``uncertain``;
* anything else goes to ``unknown``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List

INTENSITY = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}
_TOKEN = re.compile(r"^(?P<prefix>A/[LR]|[LRTBA])?(?P<au>\d{1,2})(?P<grade>[A-E](?:/[A-E])?)?$")
_REF = re.compile(r"^ref\((?P<inner>[^()]+)\)$", re.IGNORECASE)


@dataclass
class ParsedAUs:
    intensity: Dict[int, float] = field(default_factory=dict)  # AU number -> 0.2 .. 1.0
    qualifier: Dict[int, str] = field(default_factory=dict)  # AU number -> 'L', 'R', ...
    references: List[int] = field(default_factory=list)
    uncertain: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)

    @property
    def present(self) -> List[int]:
        return sorted(self.intensity)


def _grade(grade: str) -> float:
    return max(INTENSITY[g] for g in grade.split("/")) if grade else 1.0


def _parse_single(token: str, out: ParsedAUs) -> bool:
    ref = _REF.match(token)
    if ref:
        inner = ParsedAUs()
        if not _parse_single(ref.group("inner").strip(), inner):
            return False
        for au, value in inner.intensity.items():
            out.intensity[au] = max(out.intensity.get(au, 0.0), value)
            out.references.append(au)
            if au in inner.qualifier:
                out.qualifier[au] = inner.qualifier[au]
        return True
    m = _TOKEN.match(token)
    if not m:
        return False
    au = int(m.group("au"))
    out.intensity[au] = max(out.intensity.get(au, 0.0), _grade(m.group("grade") or ""))
    if m.group("prefix"):
        out.qualifier[au] = m.group("prefix")
    return True


def parse_action_units(text: str) -> ParsedAUs:
    """Parse one 'Action Units' cell. Never raises; see ParsedAUs for what is reported."""
    out = ParsedAUs()
    if text is None:
        return out
    for raw in str(text).split("+"):
        token = raw.strip()
        if not token or token in {"-", "/"}:
            continue
        if re.search(r"\bor\b", token):
            out.uncertain.append(token.strip("()").strip())
            continue
        if token.startswith("(") and token.endswith(")"):  # a grouping, not 'ref(...)'
            token = token[1:-1].strip()
        if not _parse_single(token, out):
            out.unknown.append(token)
    return out
