"""A short synthetic clip made inside the tests from the committed public-domain photo: the
mouth corners are pulled up and out (AU12-like) between two known frames."""
from pathlib import Path

import cv2
import numpy as np

PHOTO = Path(__file__).resolve().parents[2] / "training" / "faces" / "astronaut.png"
EVENT = (20, 40)  # first and last frame of the planted motion


def make_clip(folder: Path, frames: int = 60, size: int = 768) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    img = cv2.resize(cv2.imread(str(PHOTO)), (size, size))
    k = size / 512
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(frames):
        a = np.sin((i - EVENT[0]) / (EVENT[1] - EVENT[0]) * np.pi) if EVENT[0] <= i <= EVENT[1] else 0.0
        dx, dy = np.zeros_like(xx), np.zeros_like(yy)
        for cx, cy, side in ((202, 140, -1), (245, 142, 1)):  # mouth corners on the 512 photo
            g = np.exp(-((xx - cx * k) ** 2 + (yy - cy * k) ** 2) / (2 * (12 * k) ** 2))
            dx += -side * 3 * k * a * g
            dy += 3 * k * a * g
        frame = cv2.remap(img, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(folder / f"001_{1000 + i:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder
