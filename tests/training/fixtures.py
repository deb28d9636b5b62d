"""Tiny synthetic data sets in the real on-disk layouts, written into a temporary folder.

Class- and AU-dependent patterns are planted so that a model can learn them; nothing here is
derived from the licensed data sets."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np


def _pattern(rng, label: int) -> np.ndarray:
    """A 28x28x3 uint8 map whose layout depends on the label."""
    img = rng.integers(90, 140, (28, 28, 3)).astype(np.float32)
    r0 = 3 + 8 * label
    img[r0:r0 + 6, 4:24, :] += 90
    return np.clip(img, 0, 255).astype(np.uint8)


def make_megc(root: Path, subjects=("006", "sub01", "s1", "s2"), per_subject=6, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    flows = root / "datasets" / "STSNet_whole_norm_u_v_os"
    faces = root / "datasets" / "combined_datasets_whole"
    flows.mkdir(parents=True)
    faces.mkdir(parents=True)
    rows = []
    for s in subjects:
        dataset = "samm" if s.isdigit() else "casme2" if s.startswith("sub") else "smic"
        for k in range(per_subject):
            label = k % 3
            clip = f"{s}_clip{k}"
            cv2.imwrite(str(flows / f"{s}_{clip} .png"), _pattern(rng, label))  # the space is real
            cv2.imwrite(str(faces / f"{s}_{clip}.jpg"), rng.integers(0, 255, (60, 50, 3), dtype=np.uint8))
            rows.append({"dataset": dataset, "sub": s, "filename_o": clip, "label": label, "apex": "",
                         "imagename": f"{s}_{clip}.jpg", "sub_filename": ""})
    with open(root / "combined_3_class2_for_optical_flow.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


AU_COLUMNS = ["AU_04", "AU_07", "AU_12", "AU_02"]


def make_samm_au(root: Path, subjects=("sub006", "sub007", "sub008"), per_subject=8, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    flows = root / "dataset" / "SAMM_FLOWS"
    flows.mkdir(parents=True)
    rows = []
    for s in subjects:
        for k in range(per_subject):
            present = [int(rng.random() < 0.5) for _ in AU_COLUMNS]
            img = rng.integers(0, 40, (28, 28, 3)).astype(np.float32)
            for j, on in enumerate(present):
                if on:
                    img[2 + 6 * j:6 + 6 * j, :, j % 3] += 200
            name = f"{s}_{s[3:]}_{k}.png"
            cv2.imwrite(str(flows / name), np.clip(img, 0, 255).astype(np.uint8))
            row = {"dataset": "samm", "sub": s, "filename_o": f"{s[3:]}_{k}", "label": 0,
                   "sub_filename": name, "Action Units": "+".join(c[3:] for c, on in zip(AU_COLUMNS, present) if on)}
            row.update({c: (0.6 if on else 0.0) for c, on in zip(AU_COLUMNS, present)})
            rows.append(row)
    with open(root / "samm_multilabel_au_expanded.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root
