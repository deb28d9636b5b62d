"""Jetson capture, simulated on a machine without one: pip's OpenCV (no GStreamer) with stand-ins
for jetson-utils and GStreamer's Python bindings; the error when neither is there; the V4L2
device listing against a stand-in of the kernel's enumeration calls; the Jetson install's
requirements against pyproject.toml."""
import csv
import errno
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from microexp.cli import main
from microexp.edge import cameras, capture
from microexp.edge.sources import FrameSource, SourceUnavailable

from .clip import PHOTO

ROOT = Path(__file__).resolve().parents[2]


def fake_jetson_utils(rgb_frames):
    """A jetson_utils module whose videoSource delivers `rgb_frames` (RGB, as jetson-utils does)."""
    module = types.ModuleType("jetson_utils")
    module.opened = []

    class VideoSource:
        def __init__(self, uri, argv=()):
            self.uri, self.argv, self.i = uri, list(argv), 0
            module.opened.append(self)

        def Capture(self):
            if self.i >= len(rgb_frames):
                return None
            self.i += 1
            return ("cuda image", self.i - 1)

        def GetFrameRate(self):
            return 30.0

        def Close(self):
            self.closed = True

    module.videoSource = VideoSource
    module.cudaToNumpy = lambda image: rgb_frames[image[1]]
    module.cudaDeviceSynchronize = lambda: None
    return module


@pytest.fixture
def pip_opencv(monkeypatch):
    """This machine's OpenCV as pip installs it (checked), with no other way in unless a test adds one."""
    monkeypatch.setattr(capture, "jetson_utils_module", lambda: None)
    monkeypatch.setattr(capture, "gst_module", lambda: None)
    monkeypatch.setattr(capture, "opencv_has_gstreamer", lambda: False)


def test_opencv_build_information_is_read_for_gstreamer(monkeypatch):
    monkeypatch.setattr(capture.cv2, "getBuildInformation", lambda: "  Video I/O:\n    GStreamer:   YES (1.20.3)\n")
    assert capture.opencv_has_gstreamer()
    monkeypatch.setattr(capture.cv2, "getBuildInformation", lambda: "  Video I/O:\n    GStreamer:   NO\n")
    assert not capture.opencv_has_gstreamer()


def test_without_any_gstreamer_the_error_says_what_to_install(pip_opencv, tmp_path, capsys):
    with pytest.raises(SourceUnavailable, match="docs/jetson.md") as caught:
        FrameSource("csi://0")
    assert "python3-gi" in str(caught.value) and "jetson-utils" in str(caught.value)
    assert main(["run", "csi://0", "--out", str(tmp_path)]) == 2
    assert "built without it" in capsys.readouterr().err


def test_csi_camera_through_jetson_utils(pip_opencv, monkeypatch, tmp_path, capsys):
    photo = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    frames = [np.ascontiguousarray(photo) for _ in range(8)]
    module = fake_jetson_utils(frames)
    monkeypatch.setitem(sys.modules, "jetson_utils", module)
    monkeypatch.setattr(capture, "jetson_utils_module", lambda: module)
    with FrameSource("csi://0", width=640, height=480, fps=30) as src:
        first = next(iter(src))
    assert module.opened[0].uri == "csi://0"
    assert module.opened[0].argv == ["--input-width=640", "--input-height=480", "--input-rate=30"]
    np.testing.assert_array_equal(first.image, cv2.imread(str(PHOTO)))  # RGB in, BGR out
    assert first.wall_time is not None
    out = tmp_path / "out"
    assert main(["run", "csi://0", "--out", str(out), "--max-frames", "6", "--size", "640x480", "--rate", "30",
                 "--emotion-model", "none", "--no-timeline"]) == 0
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["success"] == "1" and r["timestamp_utc"] for r in rows)
    assert module.opened[-1].argv[:2] == ["--input-width=640", "--input-height=480"]


def test_a_pipeline_through_gstreamer_python_bindings(pip_opencv, monkeypatch):
    bgr = cv2.imread(str(PHOTO))
    h, w = bgr.shape[:2]
    launched = []

    class Buffer:
        def map(self, flags):
            return True, types.SimpleNamespace(data=bgr.tobytes())

        def unmap(self, info):
            pass

    class Sample:
        def get_caps(self):
            values = {"width": w, "height": h}
            return types.SimpleNamespace(get_structure=lambda i: types.SimpleNamespace(get_value=values.get))

        def get_buffer(self):
            return Buffer()

    class Sink:
        pulled = 0

        def emit(self, signal, timeout):
            assert signal == "try-pull-sample"
            Sink.pulled += 1
            return Sample() if Sink.pulled <= 3 else None

    class Pipeline:
        def get_by_name(self, name):
            assert name == "microexp_sink"
            return Sink()

        def set_state(self, state):
            return "ok"

    gst = types.SimpleNamespace(parse_launch=lambda text: launched.append(text) or Pipeline(),
                                State=types.SimpleNamespace(PLAYING="playing", NULL="null"),
                                StateChangeReturn=types.SimpleNamespace(FAILURE="failure"),
                                MapFlags=types.SimpleNamespace(READ=1))
    monkeypatch.setattr(capture, "gst_module", lambda: gst)
    src = FrameSource("videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1")
    frames = [next(iter(src)) for _ in range(2)]
    assert launched == ["videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink name=microexp_sink drop=1"]
    np.testing.assert_array_equal(frames[1].image, bgr)
    src.close()


def test_opencv_with_gstreamer_is_used_first(monkeypatch):
    opened = []

    class Capture:
        def __init__(self, pipeline, api=None):
            opened.append((pipeline, api))

        def isOpened(self):
            return True

        def get(self, prop):
            return 30.0

        def set(self, *a):
            return True

        def release(self):
            pass

    monkeypatch.setattr(capture, "opencv_has_gstreamer", lambda: True)
    monkeypatch.setattr(capture.cv2, "VideoCapture", Capture)
    FrameSource("csi://1", width=1920, height=1080, fps=60)
    pipeline, api = opened[0]
    assert api == cv2.CAP_GSTREAMER and "sensor-id=1" in pipeline and "width=1920,height=1080,framerate=60/1" in pipeline


def fake_v4l2(devices):
    """ioctl and open for `devices`: {path: (card, {fourcc: {(w, h): [fps, ...]}})}."""
    fds = {}

    def opener(path, flags):
        if path not in devices:
            raise FileNotFoundError(path)
        fds[len(fds) + 100] = path
        return len(fds) + 99

    def ioctl(fd, request, arg):
        card, formats = devices[fds[fd]]
        fourccs = list(formats)
        if request == cameras.VIDIOC_QUERYCAP:
            arg.card, arg.driver, arg.capabilities, arg.device_caps = card.encode(), b"uvcvideo", 0x80000001, 0x1
            return
        if request == cameras.VIDIOC_ENUM_FMT:
            if arg.index >= len(fourccs):
                raise OSError(errno.EINVAL, "end")
            arg.pixelformat = sum(ord(ch) << (8 * i) for i, ch in enumerate(fourccs[arg.index]))
            return
        fourcc = "".join(chr((arg.pixel_format >> (8 * i)) & 0xFF) for i in range(4))
        sizes = list(formats[fourcc])
        if request == cameras.VIDIOC_ENUM_FRAMESIZES:
            if arg.index >= len(sizes):
                raise OSError(errno.EINVAL, "end")
            arg.type = cameras.DISCRETE
            arg.size.discrete.width, arg.size.discrete.height = sizes[arg.index]
            return
        if request == cameras.VIDIOC_ENUM_FRAMEINTERVALS:
            rates = formats[fourcc][(arg.width, arg.height)]
            if arg.index >= len(rates):
                raise OSError(errno.EINVAL, "end")
            arg.type = cameras.DISCRETE
            arg.interval.discrete.numerator, arg.interval.discrete.denominator = 1, rates[arg.index]
            return
        raise OSError(errno.ENOTTY, "not a V4L2 request")
    return ioctl, opener


def test_v4l2_devices_are_listed_with_their_sizes_and_rates():
    ioctl, opener = fake_v4l2({"/dev/video0": ("HD Webcam", {"YUYV": {(640, 480): [30, 15], (1280, 720): [10]},
                                                              "MJPG": {(1280, 720): [30]}})})
    camera = cameras.describe("/dev/video0", ioctl=ioctl, opener=opener)
    assert camera.name == "HD Webcam" and camera.uri() == "v4l2:///dev/video0"
    assert [str(m) for m in camera.formats["YUYV"]] == ["640x480@30/15", "1280x720@10"]
    assert [str(m) for m in camera.formats["MJPG"]] == ["1280x720@30"]
    assert cameras.VIDIOC_QUERYCAP == 0x80685600 and cameras.VIDIOC_ENUM_FMT == 0xC0405602  # as videodev2.h


def test_cameras_command_on_a_machine_without_cameras(capsys, monkeypatch):
    monkeypatch.setattr(cameras, "list_cameras", lambda pattern="/dev/video*": [])
    assert main(["cameras", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cameras"] == [] and set(report["gstreamer"]) == {"opencv_gstreamer", "jetson_utils", "gstreamer_python"}


def test_the_jetson_install_lists_every_dependency_but_opencv():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line.strip() for line in (ROOT / "docs" / "jetson-requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(d for d in declared if not d.startswith("opencv"))
