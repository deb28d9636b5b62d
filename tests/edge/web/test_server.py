"""`microexp serve` probed from another process as an integrator or an attacker would: the token,
the Host and Origin checks, the upload checks and limits, the live-client and connection
limits, a stalled client, the JSON API and its errors."""
import csv
import io
import json
import os
import socket
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from microexp.cli import main
from microexp.edge.web.access import Access, is_loopback
from microexp.edge.web.jobs import JOB_ID, container_of

from .server import Server, clip_video, wait_for

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return clip_video(tmp_path_factory.mktemp("video"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    jobs = tmp_path_factory.mktemp("jobs")
    s = Server("--jobs-dir", str(jobs), "--max-upload-mb", "2.5", "--max-duration", "4", "--workers", "1",
               "--max-waiting", "0", "--max-clients", "2", "--upload-timeout", "2", token=TOKEN).start()
    s.jobs = jobs
    s.wait_running()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """Without a token: loopback only."""
    s = Server("--jobs-dir", str(tmp_path_factory.mktemp("jobs"))).start()
    yield s
    s.stop()


def ws_url(s: Server) -> str:
    return f"ws://127.0.0.1:{s.port}/api/live"


def upload(s: Server, data: bytes, name="clip.avi", headers=None):
    status, body, _ = s.get("/api/jobs", data=data, method="POST",
                            headers={"Content-Type": "application/octet-stream", "X-Filename": name, **(headers or {})})
    return status, json.loads(body)


def wait_job(s: Server, job_id: str, timeout=120) -> dict:
    def done():
        job = json.loads(s.get(f"/api/jobs/{job_id}")[1])
        return job if job["state"] in ("done", "failed") else None
    return wait_for(done, timeout, f"job {job_id}")


def job_folders(s: Server):
    return sorted(p.name for p in s.jobs.iterdir())


# -- where it listens, and the token ---------------------------------------------------------------

def test_listens_on_this_machine_only_by_default(open_server):
    from microexp.cli import build_parser
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # no packet is sent
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
    except OSError:
        address = None
    if address is None or is_loopback(address):
        pytest.skip(f"this machine has no non-loopback IPv4 address to probe ({address})")
    with pytest.raises(OSError):
        socket.create_connection((address, open_server.port), timeout=5).close()


def test_another_address_needs_a_long_enough_token(capsys, monkeypatch):
    monkeypatch.delenv("MICROEXP_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "a token is required" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["/", "/analyse", "/static/live.js", "/api/status", "/api/events", "/api/frame.jpg",
                                  "/api/jobs", "/api/jobs/0123456789abcdef0123456789abcdef", "/api/results"])
def test_every_page_and_api_call_checks_the_token(server, path):
    for headers in ({"Authorization": "Bearer "}, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": "", "X-Microexp-Token": TOKEN[:-1]}, {"Authorization": ""}):
        status, body, _ = server.get(path, headers=headers)
        assert status == 401 and b"a valid token is required" in body, (path, headers)
    if path == "/api/results":
        return  # a stream: opened with the token in test_results_stream_and_events_api
    status, _, _ = server.get(path, headers={"Authorization": "", "X-Microexp-Token": TOKEN})
    assert status in (200, 404, 503), (path, status)  # 404: no such job; 503: no picture yet


def test_the_start_url_token_becomes_a_cookie(server):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/?token={TOKEN}")
    r = conn.getresponse()
    r.read()
    assert r.status == 303 and r.getheader("Location") == "/"
    cookie = r.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    conn.request("GET", "/api/status", headers={"Cookie": cookie.split(";")[0]})
    assert conn.getresponse().status == 200
    conn.close()


def test_the_live_socket_checks_the_token_and_the_origin(server):
    with pytest.raises(InvalidStatus):
        with connect(ws_url(server), open_timeout=10):
            pass
    with pytest.raises(InvalidStatus):
        with connect(ws_url(server), additional_headers={"X-Microexp-Token": TOKEN},
                     origin="http://attacker.example", open_timeout=10):
            pass
    with connect(ws_url(server), additional_headers={"X-Microexp-Token": TOKEN}, open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["aus"]
        update = json.loads(ws.recv(timeout=10))
        assert update["type"] == "update" and update["faces"][0]["success"]
        if update.get("picture"):
            assert ws.recv(timeout=10)[:2] == b"\xff\xd8"  # a JPEG


def test_without_a_token_the_host_must_be_this_machine(open_server):
    assert open_server.get("/api/status")[0] == 200
    assert open_server.get("/api/status", headers={"Host": f"localhost:{open_server.port}"})[0] == 200
    status, body, _ = open_server.get("/api/status", headers={"Host": "attacker.example"})
    assert status == 403 and b"addressed to this machine" in body


def test_another_sites_page_cannot_upload(open_server, video):
    before = sorted(os.listdir(open_server.args[open_server.args.index("--jobs-dir") + 1]))
    for origin in ("http://attacker.example", "null"):
        status, body = upload(open_server, video.read_bytes(), headers={"Origin": origin})
        assert status == 403 and "another site" in body["error"]
    assert sorted(os.listdir(open_server.args[open_server.args.index("--jobs-dir") + 1])) == before


# -- uploads ----------------------------------------------------------------------------------------

def test_an_upload_is_checked_by_decoding_not_by_its_name(server, tmp_path):
    before = job_folders(server)
    status, body = upload(server, b"this is not a video\n" * 100, name="holiday.mp4")
    assert status == 400 and "not a video in a known container" in body["error"]
    status, body = upload(server, cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes(), name="x.avi")
    assert status == 400 and "not a video" in body["error"]
    fake = b"\x00\x00\x00\x18ftypisom" + os.urandom(4000)  # the right first bytes, nothing decodable
    status, body = upload(server, fake, name="clip.mp4")
    assert status == 400 and "MP4/MOV" in body["error"]
    assert upload(server, b"")[0] == 400
    assert job_folders(server) == before  # nothing refused is kept


def test_size_and_duration_limits(server, tmp_path):
    before = job_folders(server)
    big = b"\x1a\x45\xdf\xa3" + os.urandom(3 * 2**20)  # over --max-upload-mb 2.5
    status, body = upload(server, big)
    assert status == 413 and "at most" in body["error"]
    # A body sent without a declared length is counted as it arrives.
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/api/jobs", body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                 headers={"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and b"over" in r.read()
    conn.close()
    long_clip = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(long_clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for i in range(60):  # 6 s, over --max-duration 4
        writer.write(np.full((64, 64, 3), i, np.uint8))
    writer.release()
    status, body = upload(server, long_clip.read_bytes())
    assert status == 413 and "lasts 6.0 s" in body["error"]
    assert job_folders(server) == before


def test_user_names_never_become_paths_and_results_download(server, video):
    status, job = upload(server, video.read_bytes(), name="../../../../tmp/evil%2F..%2Fx.avi")
    assert status == 201 and JOB_ID.match(job["id"]) and job["name"] == "../../../../tmp/evil/../x.avi"
    done = wait_job(server, job["id"])
    assert done["state"] == "done", done
    assert all(JOB_ID.match(name) for name in job_folders(server))
    assert not os.path.exists("/tmp/evil") and not os.path.exists("/tmp/x.avi")
    assert sorted(os.listdir(server.jobs / job["id"])) == ["job.json", "results"]  # the upload is not kept
    for path in (f"/api/jobs/{job['id']}/files/upload", f"/api/jobs/{job['id']}/files/..%2Fjob.json",
                 f"/api/jobs/{job['id']}/files/%2e%2e%2f%2e%2e%2fpyproject.toml", "/api/jobs/..%2F..%2Fetc/files/passwd",
                 f"/api/jobs/{job['id'].upper()}/files/frames.csv", "/static/..%2F__init__.py", "/static/../app.py"):
        status, body, _ = server.get(path)
        assert status == 404, (path, status)
    status, body, headers = server.get(f"/api/jobs/{job['id']}/files/frames.csv")
    assert status == 200 and body.count(b"\n") == 61 and "attachment" in headers["Content-Disposition"]
    assert len(done["events"]) == 1
    # The same rows and events as `microexp run` on the file (all but the timings).
    out = server.jobs.parent / "run_out"
    assert main(["run", str(video), "--out", str(out), "--no-timeline"]) == 0
    with open(out / "frames.csv", newline="") as f:
        ran = [{k: v for k, v in r.items() if not k.startswith("lat_")} for r in csv.DictReader(f)]
    rows = csv.DictReader(io.StringIO(body.decode()))
    served = [{k: v for k, v in r.items() if not k.startswith("lat_")} for r in rows]
    assert served == ran
    assert server.get(f"/api/jobs/{job['id']}/files/events.jsonl")[1] == (out / "events.jsonl").read_bytes()


def test_concurrent_jobs_are_bounded(server, video, tmp_path):
    slow = clip_video(tmp_path, frames=300, small=True)  # 3 s at 100 fps: still running when the next arrives
    status, first = upload(server, slow.read_bytes())
    assert status == 201
    status, body = upload(server, video.read_bytes())
    assert status == 429 and "try again later" in body["error"]
    assert wait_job(server, first["id"])["state"] == "done"
    assert upload(server, video.read_bytes())[0] == 201  # room again


# -- connections -------------------------------------------------------------------------------------

def test_live_clients_are_bounded(server):
    from websockets.exceptions import ConnectionClosedError
    headers = {"X-Microexp-Token": TOKEN}
    with connect(ws_url(server), additional_headers=headers, open_timeout=10), \
            connect(ws_url(server), additional_headers=headers, open_timeout=10):
        with connect(ws_url(server), additional_headers=headers, open_timeout=10) as third:
            with pytest.raises(ConnectionClosedError) as closed:
                third.recv(timeout=10)
        assert closed.value.rcvd.code == 1013 and "at most 2 live clients" in closed.value.rcvd.reason
    wait_for(lambda: json.loads(server.get("/api/status")[1])["clients"] == 0, 10, "the slots to be freed")
    with connect(ws_url(server), additional_headers=headers, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_simultaneous_streams_respect_the_client_limit(server):
    import http.client
    import threading
    wait_for(lambda: json.loads(server.get("/api/status")[1])["clients"] == 0, 10, "no stream open")
    answers, conns, barrier = [], [], threading.Barrier(12)

    def open_stream():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conns.append(conn)
        barrier.wait()
        conn.request("GET", "/api/results", headers={"Authorization": f"Bearer {TOKEN}"})
        answers.append(conn.getresponse().status)

    threads = [threading.Thread(target=open_stream) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert sorted(answers) == [200, 200] + [503] * 10
    finally:
        for conn in conns:
            conn.close()


def test_half_sent_requests_neither_lock_others_out_nor_linger(server):
    """70 connections that send part of a request and then nothing (no token needed for that):
    a real client is still answered at once, and the server closes them after its deadline."""
    from microexp.edge.web.protocol import HeaderDeadlineProtocol
    idle = []
    for _ in range(70):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\n")
        idle.append(s)
    try:
        status, _, _ = server.get("/api/status")
        assert status == 200
        time.sleep(HeaderDeadlineProtocol.HEADER_TIMEOUT_S + 2)
        for s in idle:
            s.settimeout(5)
            assert s.recv(100) == b""  # closed by the server
    finally:
        for s in idle:
            s.close()


def test_a_stalled_upload_is_dropped_and_frees_its_place(server, video):
    import http.client
    before = job_folders(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", "/api/jobs")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", "100000")
    conn.endheaders()
    conn.send(video.read_bytes()[:100])  # then nothing (--upload-timeout 2)
    t0 = time.monotonic()
    r = conn.getresponse()
    assert r.status == 408 and b"stalled" in r.read() and time.monotonic() - t0 < 15
    conn.close()
    assert job_folders(server) == before
    status, job = upload(server, video.read_bytes())
    assert status == 201
    assert wait_job(server, job["id"])["state"] == "done"


def test_requests_in_progress_are_bounded_after_the_token_check():
    """In process: with max_requests 2, a third request in progress answers 503, and requests
    without the token are refused without taking a place."""
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from microexp.edge.web.app import Gate

    release = asyncio.Event()

    async def slow(request):
        await release.wait()
        return PlainTextResponse("done")

    app = Gate(Starlette(routes=[Route("/", slow)]), Access(TOKEN), max_requests=2)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            held = [asyncio.ensure_future(client.get("/", headers=good)) for _ in range(2)]
            await asyncio.sleep(0.1)
            refused = [await client.get("/") for _ in range(5)]  # no token: 401, not counted
            third = await client.get("/", headers=good)
            release.set()
            return [r.status_code for r in refused], third.status_code, [(await h).status_code for h in held]

    refused, third, held = asyncio.run(scenario())
    assert refused == [401] * 5 and third == 503 and held == [200, 200]


def test_a_stalled_client_is_dropped_without_slowing_the_analysis(server):
    """A WebSocket client that never reads: its socket buffers fill, its sends time out, it is
    dropped; meanwhile the analysis keeps the source's rate and another client keeps getting
    updates."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall((f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode())
    assert raw.recv(12) == b"HTTP/1.1 101"
    try:
        start = json.loads(server.get("/api/status")[1])
        assert start["clients"] == 1
        with connect(ws_url(server), additional_headers={"X-Microexp-Token": TOKEN}, open_timeout=10) as ws:
            updates = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4:
                message = ws.recv(timeout=10)
                updates += isinstance(message, str)
        end = wait_for(lambda: (lambda s: s if s["clients"] == 0 else None)(json.loads(server.get("/api/status")[1])),
                       60, "the stalled client to be dropped")
        assert updates >= 20  # 25 per second at most; the other client was served throughout
        rate = (end["frames"] - start["frames"]) / (end["uptime_s"] - start["uptime_s"])
        # Analysis that waited for the stalled client would stop once its socket buffers filled
        # (seconds in); it went on. (How close to the source's 200 fps it stays is the benchmark's
        # question, python -m microexp.edge.web.bench: a loaded machine is slower either way.)
        assert rate > 0.25 * end["fps"], rate
    finally:
        raw.close()


# -- the JSON API -------------------------------------------------------------------------------------

def test_results_stream_and_events_api(server):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/results", headers={"Authorization": f"Bearer {TOKEN}"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    messages = []
    while len(messages) < 3:
        line = r.fp.readline().decode()
        if line.startswith("data: "):
            messages.append(json.loads(line[6:]))
    conn.close()
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    face = messages[-1]["faces"][0]
    assert set(face) >= {"face_id", "box", "action", "au", "au_present", "emotion", "motion"}
    body = json.loads(server.get("/api/events?after=0")[1])
    assert body["total"] >= len(body["events"])
    ids = [e["id"] for e in body["events"]]
    if ids:
        later = json.loads(server.get(f"/api/events?after={ids[0]}")[1])["events"]
        assert [e["id"] for e in later] == ids[1:]


def test_errors_are_json_messages_never_tracebacks(server):
    status, body, _ = server.get("/api/events?after=x")
    assert status == 400 and json.loads(body) == {"error": "after must be a whole number (an event id)"}
    status, body, _ = server.get("/api/nothing-here")
    assert status == 404 and json.loads(body)["error"]


def test_an_internal_failure_answers_a_message(tmp_path):
    """In process: a LiveAnalysis whose status fails answers 500 with a message, and the
    traceback goes only to the server's log."""
    import asyncio

    import httpx

    from microexp.edge.web.app import create_app
    from microexp.edge.web.jobs import JobStore

    class Broken:
        def status(self):
            raise RuntimeError("secret detail /home/user/model.onnx")

    app = create_app(Broken(), JobStore(tmp_path, lambda: None), Access(None))

    async def ask():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get("/api/status")
    r = asyncio.run(ask())
    assert r.status_code == 500 and "its log says why" in r.json()["error"]
    assert "secret" not in r.text and "Traceback" not in r.text


def test_finished_jobs_survive_a_server_restart(tmp_path, video):
    jobs = tmp_path / "jobs"
    s = Server("--jobs-dir", str(jobs)).start()
    try:
        status, job = upload(s, video.read_bytes())
        assert wait_job(s, job["id"])["state"] == "done"
    finally:
        s.stop()
    s = Server("--jobs-dir", str(jobs)).start()
    try:
        assert json.loads(s.get(f"/api/jobs/{job['id']}")[1])["state"] == "done"
        assert s.get(f"/api/jobs/{job['id']}/files/events.jsonl")[0] == 200
    finally:
        s.stop()


def test_container_sniffing():
    assert container_of(b"\x00\x00\x00\x20ftypmp42" + bytes(8)) == "MP4/MOV"
    assert container_of(b"RIFF\x00\x00\x00\x00AVI LIST") == "AVI"
    assert container_of(b"#EXTM3U\nfile:///etc/passwd\n") is None  # a playlist is never decoded
    assert container_of(b"ffconcat version 1.0\n") is None


def test_serve_without_the_extra_names_the_install_line():
    import subprocess
    import sys
    code = ("import sys\nsys.modules['starlette'] = None\nfrom microexp.cli import main\n"
            "sys.exit(main(['serve', '--port', '1']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "microexp serve: needs starlette, which is not installed; pip install 'microexp-edge[serve]'" in done.stderr


def test_a_file_source_that_is_not_there_is_named_before_the_server_starts(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "typo.mp4"), "--port", "1"]) == 2
    assert "typo.mp4: no such file, folder or device" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["serve", str(tmp_path / "empty"), "--port", "1"]) == 2
    assert "folder holds no images" in capsys.readouterr().err


def test_the_pages_load_nothing_from_elsewhere():
    """Kiosks are often offline: no CDN, font or script from another host."""
    import re
    from pathlib import Path

    import microexp.edge.web as web
    static = Path(web.__file__).parent / "static"
    names = sorted(p.name for p in static.iterdir())
    assert names == ["analyse.html", "analyse.js", "live.html", "live.js", "style.css"]
    for path in static.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path.name


@pytest.mark.parametrize("option, value", [("--display-fps", "0"), ("--max-upload-mb", "-1"), ("--workers", "0"),
                                           ("--max-requests", "0"), ("--upload-timeout", "0"), ("--max-waiting", "-1")])
def test_settings_out_of_range_are_named(capsys, option, value):
    assert main(["serve", option, value, "--port", "1"]) == 2
    assert option in capsys.readouterr().err
