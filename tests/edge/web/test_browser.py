"""The kiosk pages in a real headless Chromium, against `microexp serve` started as its own
process: the live page draws changing frames with the face box and lists a planted event, it
reconnects after a server restart, an upload is analysed and its results download, and a wrong
token is refused. A screenshot of each page goes to build/test-artifacts/ (MICROEXP_TEST_ARTIFACTS)."""
import csv
import hashlib
import io
import json

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")

from ..clip import EVENT, make_clip
from .server import Server, chromium, clip_video, screenshot, wait_for


@pytest.fixture(scope="module")
def chrome():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chrome):
    chrome.get_log("browser")  # each test reads only its own page's messages
    yield chrome
    chrome.delete_all_cookies()


def stats(driver) -> dict:
    return driver.execute_script("return window.microexpStats || {}")


def canvas_digest(driver) -> str:
    return hashlib.sha1(driver.execute_script("return document.getElementById('view').toDataURL()").encode()).hexdigest()


def js_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_live_page_shows_changing_frames_the_face_box_and_reported_aus(browser, tmp_path):
    server = Server("--jobs-dir", str(tmp_path / "jobs")).start()
    try:
        status = server.wait_running()
        browser.get(server.url + "/")
        wait_for(lambda: stats(browser).get("pictures", 0) >= 5, 60, "five pictures on the live page")
        first = canvas_digest(browser)
        wait_for(lambda: canvas_digest(browser) != first, 10, "the picture to change")
        s = wait_for(lambda: stats(browser) if stats(browser).get("boxes", 0) >= 1 else None, 20, "a face box")
        assert s["connected"] and s["updates"] >= s["pictures"] >= 5
        bars = [e.text.split("\n")[0] for e in browser.find_elements("css selector", "#aus .au span:first-child")]
        assert bars == status["aus"] and bars  # only the AUs the model's metadata reports
        assert browser.find_element("id", "emotion").text not in ("", "–")
        assert all(0 <= d < 5000 for d in s["delays"])  # capture to page, on one clock
        screenshot(browser, "live")
        assert not js_errors(browser)
    finally:
        server.stop()


def test_live_page_reconnects_after_a_server_restart(browser, tmp_path):
    server = Server("--jobs-dir", str(tmp_path / "jobs")).start()
    try:
        browser.get(server.url + "/")
        wait_for(lambda: stats(browser).get("pictures", 0) >= 3, 60, "pictures before the restart")
        server.stop()
        wait_for(lambda: not stats(browser)["connected"], 20, "the page to notice the server went away")
        assert "reconnecting" in browser.find_element("id", "state").text
        before = stats(browser)["pictures"]
        server = Server("--jobs-dir", str(tmp_path / "jobs"), port=server.port).start()
        wait_for(lambda: stats(browser)["connected"] and stats(browser)["pictures"] > before + 3, 60,
                 "pictures after the restart, with no reload")
    finally:
        server.stop()


def test_a_planted_event_appears_in_the_event_list(browser, tmp_path):
    clip = make_clip(tmp_path / "clip")  # a mouth movement planted at frames EVENT
    server = Server(str(clip), "--fps", "100", "--once", "--jobs-dir", str(tmp_path / "jobs")).start()
    try:
        browser.get(server.url + "/")
        item = wait_for(lambda: browser.find_elements("css selector", "#events li"), 60, "an event in the list")[0]
        events = json.loads(server.get("/api/events")[1])["events"]
        assert len(events) == 1
        ev = events[0]
        assert EVENT[0] <= ev["apex_frame"] <= EVENT[1]
        assert f"apex {ev['apex_time']:.3f} s" in item.text and f"#{ev['id']} face 0" in item.text
        screenshot(browser, "live_event")
    finally:
        server.stop()


def test_an_upload_is_analysed_survives_a_reload_and_its_results_download(browser, tmp_path):
    video = clip_video(tmp_path)
    server = Server("--jobs-dir", str(tmp_path / "jobs")).start()
    try:
        browser.get(server.url + "/analyse")
        browser.find_element("id", "file").send_keys(str(video))
        browser.find_element("id", "send").click()
        wait_for(lambda: "job=" in browser.current_url, 30, "the job id in the address")
        browser.refresh()  # the job is followed again from the address
        wait_for(lambda: browser.find_element("id", "result").is_displayed(), 180, "the results")
        rows = browser.find_elements("css selector", "#events tr")
        assert len(rows) == 1, [r.text for r in rows]
        links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector", "#downloads a")}
        assert set(links) == {"frames.csv", "frames.jsonl", "events.jsonl", "timeline.png", "annotated.webm",
                              "model_info.json"}
        status, body, _ = server.get(links["frames.csv"][len(server.url):])
        table = list(csv.DictReader(io.StringIO(body.decode())))
        assert status == 200 and len(table) == 60
        status, body, _ = server.get(links["frames.jsonl"][len(server.url):])
        assert [json.loads(line)["frame"] for line in body.decode().splitlines()] == [int(r["frame"]) for r in table]
        # The annotated video plays in the browser (VP8 WebM).
        wait_for(lambda: browser.execute_script("const v = document.getElementById('video'); "
                                                "return v.readyState >= 1 && !v.error && v.duration > 0.5"),
                 30, "the annotated video to load")
        screenshot(browser, "analyse")
        assert not js_errors(browser)
    finally:
        server.stop()


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_page(browser, tmp_path):
    token = "kiosk-token-0123456789"
    server = Server("--jobs-dir", str(tmp_path / "jobs"), token=token).start()
    try:
        browser.get(server.url + "/?token=wrong-token-0123456789")
        assert "a valid token is required" in browser.find_element("tag name", "body").text
        screenshot(browser, "wrong_token")
        browser.get(server.url + "/analyse")  # no token at all
        assert "a valid token is required" in browser.find_element("tag name", "body").text
        browser.get(server.url + f"/?token={token}")  # kept in a cookie, dropped from the address
        assert "token" not in browser.current_url
        wait_for(lambda: stats(browser).get("pictures", 0) >= 3, 60, "pictures with the token")
    finally:
        server.stop()
