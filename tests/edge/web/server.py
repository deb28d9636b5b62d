"""`microexp serve` started by the tests as a user would start it (its own process, a free
port), and the inputs they send it: a generated clip as a video file, and a Chromium."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest

from ..clip import make_clip

ARTIFACTS = Path(os.environ.get("MICROEXP_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "build" / "test-artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, port=None, token=None, env=None, cwd=None):
        self.port = port or free_port()
        self.token = token
        self.args = ["--port", str(self.port), *args] + (["--token", token] if token else [])
        self.env, self.cwd = env, cwd
        self.proc = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "Server":
        self.proc = subprocess.Popen([sys.executable, "-m", "microexp.cli", "serve", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(self.env or {})}, cwd=self.cwd)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"microexp serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.get("/api/status")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("microexp serve did not answer within the timeout")

    def wait_running(self, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = json.loads(self.get("/api/status")[1])
            if status["state"] == "running" and status["frames"] > 0:
                return status
            time.sleep(0.2)
        raise AssertionError(f"the live analysis did not start: {status}")

    def get(self, path: str, headers=None, data=None, method=None):
        """(status, body bytes, headers) of one request, with the token when the server has one."""
        headers = dict(headers or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, headers=headers, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; returns its stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return err


def clip_video(folder: Path, frames: int = 60, fps: float = 100.0, small: bool = False) -> Path:
    """The generated clip (a planted mouth movement at frames clip.EVENT) as a Motion-JPEG AVI
    (at quality 95: pip OpenCV's MPEG-4 encoder at this size blurs the 3 px movement away), or
    `small`: as MPEG-4 (a tenth of the size, without a detectable event)."""
    images = sorted(make_clip(folder / "frames", frames=frames, size=384).iterdir())
    path = folder / ("clip.mp4" if small else "clip.avi")
    first = cv2.imread(str(images[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*("mp4v" if small else "MJPG")), fps,
                             (first.shape[1], first.shape[0]))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for image in images:
        writer.write(cv2.imread(str(image)))
    writer.release()
    return path


def chromium():
    """A headless Chromium through its WebDriver, or a skip saying why there is none."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("no Chromium with chromedriver here (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
