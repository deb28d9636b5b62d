"""Frame sources: video files, folders of frames (SAMM / CASME II / SMIC layouts), cameras,
V4L2 devices, RTSP and GStreamer pipelines, named with the URIs Jetson users know
(csi://0, v4l2:///dev/video0, /dev/video0, rtsp://..., file://clip.mp4, a path, a folder).

Every frame comes with its index and a timestamp in seconds: frame / fps for files and
folders, time since the first frame for live sources (which also carry the wall-clock time).

Faults: a live source that stops delivering (camera unplugged, stream dropped) is reopened a
bounded number of times, then SourceLost is raised; a truncated video ends at its last
readable frame where the container allows it (MKV, AVI, an MP4 whose index comes first), while
an MP4/MOV cut before its index was written is refused with a message that says so; an
unreadable image in a folder is skipped with a warning, the frame numbering kept."""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Union

import cv2
import numpy as np

from .capture import SourceUnavailable, open_gstreamer  # noqa: F401  (SourceUnavailable is part of this API)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


class SourceLost(RuntimeError):
    """A live source stopped delivering frames and could not be reopened."""


@dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray
    wall_time: Optional[float] = None  # live sources: time.time() when the frame arrived


def mp4_index_missing(path: Path) -> bool:
    """An ISO media file (MP4, MOV: top-level boxes from 'ftyp') without a 'moov' box: the
    index a recorder writes at the end, lost when the recording was cut short."""
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            pos, kinds = 0, []
            while pos + 8 <= size and len(kinds) < 1000:
                f.seek(pos)
                header = f.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1:  # a 64-bit size follows
                    length = int.from_bytes(header[8:16], "big")
                elif length == 0:  # the box runs to the end of the file
                    length = size - pos
                if length < 8:
                    break
                kinds.append(kind)
                pos += length
    except OSError:
        return False
    return bool(kinds) and kinds[0] == b"ftyp" and b"moov" not in kinds


def _frame_number(path: Path) -> int:
    """The last run of digits in the name: 006_05562.jpg -> 5562, img46.jpg -> 46."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


class FrameSource:
    """Iterate with `for frame in source`; `len(source)` is known for files and folders."""

    def __init__(self, uri: Union[str, int, Path], fps: Optional[float] = None,
                 width: Optional[int] = None, height: Optional[int] = None, loop: bool = False,
                 reconnect_attempts: int = 5, reconnect_delay_s: float = 1.0, start: int = 0):
        """`loop`: start a file or folder again at its end (demos, soak tests); timestamps keep
        increasing. `start`: a file's or folder's first frame to give (its index and time are
        those it has in the whole input; a video is sought to it).
        `reconnect_attempts`, `reconnect_delay_s`: how often, and how far apart, a
        live source that stopped delivering is reopened before SourceLost."""
        self.uri = str(uri)
        self.start = int(start)
        if self.start < 0:
            raise ValueError(f"source {uri}: start frame must be >= 0, got {start}")
        self.live = False
        self.loop = loop
        self.reconnect_attempts, self.reconnect_delay_s = int(reconnect_attempts), float(reconnect_delay_s)
        self.files: List[Path] = []
        self.capture = None
        self.skipped: List[Path] = []  # unreadable images of a folder
        self._open = None  # reopens a live source
        text = self.uri
        if isinstance(uri, int) or text.isdigit():
            self._open = lambda: cv2.VideoCapture(int(text))
        elif text.startswith("csi://"):
            sensor = int(text[len("csi://"):] or 0)
            w, h, r = width or 1280, height or 720, int(fps or 30)
            pipeline = (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={w},"
                        f"height={h},framerate={r}/1 ! nvvidconv ! video/x-raw,format=BGRx ! "
                        "videoconvert ! video/x-raw,format=BGR ! appsink drop=1")
            self._open = lambda: open_gstreamer(pipeline, text, w, h, r)
        elif text.startswith("v4l2://") or text.startswith("/dev/video"):
            device = text[len("v4l2://"):] if text.startswith("v4l2://") else text
            self._open = lambda: cv2.VideoCapture(device, cv2.CAP_V4L2)
        elif "!" in text:  # a GStreamer pipeline string
            self._open = lambda: open_gstreamer(text)
        elif re.match(r"^(rtsp|rtp|http|https)://", text):
            self._open = lambda: cv2.VideoCapture(text)
        if self._open is not None:
            self.live = True
            self.capture = self._open()
        else:
            path = Path(text[len("file://"):] if text.startswith("file://") else text)
            if path.is_dir():
                self.files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                                    key=lambda p: (_frame_number(p), p.name))
                if not self.files:
                    raise ValueError(f"source {path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
                self.fps = float(fps or 200.0)  # SAMM and CASME II are 200 fps
                return
            if not path.exists():
                raise FileNotFoundError(f"source {text}: no such file, folder or device")
            if path.suffix.lower() in IMAGE_SUFFIXES:
                self.files = [path]
                self.fps = float(fps or 1.0)
                return
            self.capture = cv2.VideoCapture(str(path))
            if not self.capture.isOpened() and mp4_index_missing(path):
                raise SourceUnavailable(
                    f"source {text}: the file is truncated: it is an MP4/MOV whose index ('moov' box) is "
                    "missing, which a recorder writes last, so no frame can be located (a recording cut off "
                    "by power loss). A tool such as untrunc can rebuild the index from a complete file of "
                    "the same camera; recording to .mkv, .avi or fragmented MP4 keeps a cut file readable "
                    "up to the cut")
        if self.capture is None or not self.capture.isOpened():
            hint = "; `microexp cameras` lists the devices that can be opened" if self.live else ""
            raise SourceUnavailable(f"source {text}: OpenCV could not open it{hint}")
        if width:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.live and fps:
            self.capture.set(cv2.CAP_PROP_FPS, float(fps))
        reported = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps or (reported if reported and reported > 0 else 30.0))

    def unrelated_images(self, pairs: int = 4, threshold: float = 30.0) -> Optional[str]:
        """Why a folder's images look like unrelated photos rather than one clip's frames, or
        None. A clip's frames share one size and follow one another closely (consecutive frames
        of a 30-200 fps video differ by a few grey levels on average); photos of different
        people or places differ in size or by tens of levels. Reads the first `pairs` + 1."""
        if len(self.files) < 2:
            return None
        thumbs, sizes = [], set()
        for p in self.files[: pairs + 1]:
            image = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if image is None:
                continue
            sizes.add(image.shape)
            thumbs.append(cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32))
        if len(sizes) > 1:
            return f"its first images differ in size ({', '.join(f'{w}x{h}' for h, w in sorted(sizes))})"
        steps = [float(np.abs(a - b).mean()) for a, b in zip(thumbs, thumbs[1:])]
        if steps and float(np.median(steps)) > threshold:
            return (f"its consecutive images differ by {np.median(steps):.0f} grey levels on average "
                    f"(a clip's frames by a few)")
        return None

    def __len__(self) -> int:
        if self.files:
            return len(self.files)
        if self.capture is not None and not self.live:
            return max(0, int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        raise TypeError(f"source {self.uri}: a live source has no length")

    def __iter__(self) -> Iterator[Frame]:
        return self._live_frames() if self.live else self._recorded_frames()

    def _recorded_frames(self) -> Iterator[Frame]:
        """Files and folders, once or (loop) again and again; index and time run on."""
        i = first = self.start
        if first and not self.files:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        while True:
            start = i
            if self.files:
                for p in self.files[first if i == first else 0:]:
                    image = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
                    if image is None:
                        if p not in self.skipped:
                            self.skipped.append(p)
                            warnings.warn(f"source {self.uri}: cannot read image {p}; skipped", stacklevel=2)
                    else:
                        yield Frame(i, i / self.fps, image)
                    i += 1
            else:
                if i != first:
                    self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                while True:
                    ok, image = self.capture.read()
                    if not ok:  # the end, or the first unreadable frame of a truncated file
                        break
                    yield Frame(i, i / self.fps, image)
                    i += 1
            if not self.loop or i == start or (self.files and len(self.skipped) == len(self.files)):
                return

    def _live_frames(self) -> Iterator[Frame]:
        start = None
        i = 0
        while True:
            ok, image = self.capture.read()
            if not ok:
                image = self._reconnect()
            now = time.monotonic()
            start = now if start is None else start
            yield Frame(i, now - start, image, time.time())
            i += 1

    def _reconnect(self) -> np.ndarray:
        """The next frame after reopening the source, or SourceLost after the attempts."""
        for attempt in range(self.reconnect_attempts):
            time.sleep(self.reconnect_delay_s)
            self.capture.release()
            self.capture = self._open()
            if self.capture is not None and self.capture.isOpened():
                ok, image = self.capture.read()
                if ok:
                    warnings.warn(f"source {self.uri}: stopped delivering frames; reopened "
                                  f"(attempt {attempt + 1})", stacklevel=2)
                    return image
        raise SourceLost(f"source {self.uri}: stopped delivering frames and did not come back after "
                         f"{self.reconnect_attempts} reopen attempts {self.reconnect_delay_s:g} s apart "
                         "(camera unplugged or stream gone?)")

    def close(self):
        if self.capture is not None:
            self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
