"""The region graph's edges from AU co-occurrence: how often the AUs of two facial regions
(edge/face_regions.py) are coded together in an annotation sheet's events (SAMM's public
samm.csv), as prior knowledge for a spotter trained on little data.

Each region is active in an event when any of its AUs is coded there (sides ignored: 'L12' counts
for both mouth corners, since a face moves both more often than the coders split them). The
edge weight between regions i and j is the symmetrised conditional co-occurrence
(P(j | i) + P(i | j)) / 2 over the events, the diagonal 1; a region whose AUs never occur keeps
only its self-loop. The spotter normalises it as D^-1/2 A D^-1/2.

    python -m microexp.training.au_graph SAMM_SHEET --out au_graph.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from microexp.edge.face_regions import NAMES

# Which AUs move the skin inside each region (FACS): brows 1/2/4, lids 6/7/43/45/46, nose
# wrinkler and upper-lip raiser 9/10/11, lip corners 12/13/14/15/20, chin 17 and jaw/lips 24-26.
REGION_AUS: Dict[str, Tuple[int, ...]] = {
    "brow_left_outer": (2,), "brow_right_outer": (2,),
    "brow_left_inner": (1, 4), "brow_right_inner": (1, 4),
    "glabella": (4,),
    "eye_left": (6, 7, 43, 45, 46), "eye_right": (6, 7, 43, 45, 46),
    "nose_left": (9, 10, 11), "nose_right": (9, 10, 11),
    "mouth_left": (12, 13, 14, 15, 20), "mouth_right": (12, 13, 14, 15, 20),
    "chin": (17, 24, 25, 26),
}


def region_activity(events: Sequence[Sequence[int]]) -> np.ndarray:
    """(events, regions) bool: which regions' AUs each event codes."""
    active = np.zeros((len(events), len(NAMES)), bool)
    for e, aus in enumerate(events):
        present = set(aus)
        for r, name in enumerate(NAMES):
            active[e, r] = bool(present & set(REGION_AUS[name]))
    return active


def cooccurrence(events: Sequence[Sequence[int]]) -> np.ndarray:
    """The (regions, regions) edge weights from events' AU lists (see the module docstring)."""
    active = region_activity(events).astype(np.float64)
    together = active.T @ active  # events where both regions are active
    count = np.diag(together)
    with np.errstate(divide="ignore", invalid="ignore"):
        given = np.where(count[:, None] > 0, together / count[:, None], 0.0)  # P(j | i)
    weights = (given + given.T) / 2
    np.fill_diagonal(weights, 1.0)
    return weights


def from_sheet(path) -> Dict[str, object]:
    """The edge weights of a samm.csv-style sheet, with what they were computed from."""
    from .datasets.samm import read_samm_csv
    clips = read_samm_csv(path)
    events = [c.action_units.present for c in clips]
    if not events:
        raise ValueError(f"{path}: no events to count AUs in")
    weights = cooccurrence(events)
    return {"regions": list(NAMES), "region_aus": {k: list(v) for k, v in REGION_AUS.items()},
            "weights": np.round(weights, 4).tolist(), "events": len(events),
            "region_events": region_activity(events).sum(0).astype(int).tolist(),
            "source": Path(path).name}


def load(path) -> np.ndarray:
    """The weights a JSON written by this module holds, checked against the regions."""
    data = json.loads(Path(path).read_text())
    if data.get("regions") != list(NAMES):
        raise ValueError(f"{path}: its regions {data.get('regions')} are not {list(NAMES)}")
    weights = np.asarray(data["weights"], np.float64)
    if weights.shape != (len(NAMES),) * 2 or not np.allclose(weights, weights.T) or (weights < 0).any():
        raise ValueError(f"{path}: weights must be a symmetric non-negative {len(NAMES)}x{len(NAMES)} matrix")
    return weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m microexp.training.au_graph", description=__doc__.split("\n\n")[0])
    p.add_argument("sheet", help="a samm.csv-style sheet (';'-separated, with an Action Units column)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    from microexp.edge.atomic_io import atomic_write_text
    graph = from_sheet(args.sheet)
    graph["command"] = f"python -m microexp.training.au_graph {Path(args.sheet).name} --out {Path(args.out).name}"
    atomic_write_text(args.out, json.dumps(graph, indent=1) + "\n")
    print(json.dumps({"out": args.out, "events": graph["events"], "region_events": graph["region_events"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
