"""The ASGI application of `microexp serve` (Starlette): the live page and its stream, the
upload page and its jobs, and the JSON API under /api. Every request and WebSocket passes
`Access` first (in `Gate`, before anything is counted or read), then a cap on requests in
progress; errors answer with a JSON message ({"error": ...}), never a traceback."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .access import COOKIE, Access
from .jobs import RESULT_FILES, JobError, JobStore
from .live import LiveAnalysis

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("microexp.serve")


@dataclass
class ServerLimits:
    max_clients: int = 8  # live streams (page or /api/results) at once
    max_requests: int = 64  # HTTP requests in progress at once (after the token check); more answer 503
    send_timeout_s: float = 10.0  # a client that takes longer to accept a message is dropped
    upload_idle_s: float = 30.0  # an upload that sends nothing for this long is dropped


class Gate:
    """Refuses what Access refuses before the application sees it (HTTP: the JSON answer;
    WebSocket: the handshake), then answers 503 beyond `max_requests` HTTP requests in
    progress. Unauthorised requests are never counted, so they cannot crowd out others."""

    def __init__(self, app, access: Access, max_requests: int):
        self.app, self.access, self.max_requests = app, access, max_requests
        self.in_progress = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        conn = HTTPConnection(scope)
        why = self.access.refusal(conn.headers, conn.query_params, conn.cookies)
        if why is not None:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008, "reason": why[1][:120]})
            await drain(receive)
            return await JSONResponse({"error": why[1]}, status_code=why[0])(scope, receive, send)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        if self.in_progress >= self.max_requests:
            busy = JSONResponse({"error": f"more than {self.max_requests} requests in progress; try again"},
                                status_code=503, headers={"Retry-After": "1"})
            await drain(receive)
            return await busy(scope, receive, send)
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1



async def drain(receive, most: int = 8 * 2**20, idle_s: float = 5.0) -> None:
    """Read (and drop) some of a refused request's body, so that a client still sending it gets
    the answer rather than a broken connection; beyond `most` bytes, or `idle_s` of silence, it
    may not."""
    seen = 0
    with contextlib.suppress(asyncio.TimeoutError):
        while seen <= most:
            message = await asyncio.wait_for(receive(), idle_s)
            seen += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break


def update_message(snap, trace, events, state: str) -> dict:
    """One update of the results stream: the newest frame's results, the trace points and events
    the client has not had yet."""
    return {"type": "update", "state": state, "seq": snap.seq, "captured": snap.captured, "frame": snap.frame,
            "timestamp": round(snap.timestamp, 4), "size": list(snap.size), "faces": snap.faces,
            "latency_ms": round(snap.latency_ms, 3),
            "trace": [[round(t, 4), a, m] for _, t, a, m in trace], "events": events}


def create_app(live: LiveAnalysis, jobs: JobStore, access: Access, limits: Optional[ServerLimits] = None):
    limits = limits or ServerLimits()
    streams = {"open": 0}  # live streams now

    class CountedStream(StreamingResponse):
        """A results stream that holds one of the max_clients slots until it ends, however it ends."""

        async def __call__(self, scope, receive, send):
            try:
                await super().__call__(scope, receive, send)
            finally:
                streams["open"] -= 1

    async def page(request: Request, name: str) -> Response:
        if "token" in request.query_params:  # a kiosk's start URL: keep the token in a cookie, not the address bar
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
            return response
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    async def live_page(request):
        return await page(request, "live.html")

    async def analyse_page(request):
        return await page(request, "analyse.html")

    async def status(request):
        body = live.status()
        body["limits"] = {"max_upload_bytes": jobs.limits.max_upload_bytes, "max_duration_s": jobs.limits.max_duration_s,
                          "workers": jobs.limits.workers, "max_waiting": jobs.limits.max_waiting,
                          "max_clients": limits.max_clients}
        body["clients"] = streams["open"]
        return JSONResponse(body)

    async def events(request):
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise HTTPException(400, "after must be a whole number (an event id)") from None
        return JSONResponse({"events": live.events_after(after), "total": live.event_count})

    async def frame_jpeg(request):
        live.want_preview()  # previews are made only while wanted: wait for a fresh one, briefly
        deadline = time.monotonic() + 1.0
        while True:
            seq, data = await asyncio.to_thread(live.jpeg)
            fresh = data and live.preview_age() <= 2 * live.display_interval + 0.05
            if fresh or time.monotonic() > deadline:
                break
            await asyncio.sleep(live.display_interval / 2)
        if not data:
            return JSONResponse({"error": "no picture yet"}, status_code=503, headers={"Retry-After": "1"})
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Frame-Seq": str(seq)})

    async def updates(pictures: bool):
        """(message, JPEG or None) at the display rate, newest only: a client that is slow to read
        simply gets fewer."""
        sent = sent_picture = trace_after = event_after = 0
        due = time.monotonic()
        while True:
            due = max(due + live.display_interval, time.monotonic())  # a steady rate, never a backlog
            await asyncio.sleep(due - time.monotonic())
            snap, trace, new_events = live.update(trace_after, event_after)
            if snap is None or snap.seq == sent:
                continue
            sent = snap.seq
            trace_after = trace[-1][0] if trace else trace_after
            event_after = new_events[-1]["id"] if new_events else event_after
            message = update_message(snap, trace, new_events, live.state)
            picture = None
            if pictures and snap.preview_seq > sent_picture:
                seq, picture = await asyncio.to_thread(live.jpeg)
                sent_picture = seq
                message["picture"] = True
            yield message, picture

    async def live_socket(websocket: WebSocket):
        if streams["open"] >= limits.max_clients:  # accepted, then closed with the reason a client can read
            await websocket.accept()
            await websocket.close(code=1013, reason=f"at most {limits.max_clients} live clients at once")
            return
        streams["open"] += 1  # counted before any await: simultaneous clients cannot all pass the check
        live.watchers += 1
        try:
            await websocket.accept()
            await websocket.send_text(json.dumps({"type": "hello", **live.status()}))
            async for message, picture in updates(pictures=True):
                await asyncio.wait_for(websocket.send_text(json.dumps(message)), limits.send_timeout_s)
                if picture is not None:
                    await asyncio.wait_for(websocket.send_bytes(picture), limits.send_timeout_s)
        except Exception:  # the client went away or stalled: its slot is freed
            pass
        finally:
            streams["open"] -= 1
            live.watchers -= 1
            with contextlib.suppress(Exception):
                await websocket.close()

    async def results_stream(request):
        if streams["open"] >= limits.max_clients:
            return JSONResponse({"error": f"at most {limits.max_clients} live clients at once"}, status_code=503)
        streams["open"] += 1  # released by CountedStream

        async def body():
            async for message, _ in updates(pictures=False):
                yield f"data: {json.dumps(message)}\n\n"
        return CountedStream(body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def next_chunk(body):
        """The upload's next chunk, or None at its end; JobError when the client went quiet."""
        try:
            return await asyncio.wait_for(body.__anext__(), limits.upload_idle_s)
        except StopAsyncIteration:
            return None
        except asyncio.TimeoutError:
            raise JobError(f"the upload stalled: nothing arrived for {limits.upload_idle_s:g} s", 408) from None

    async def create_job(request):
        body = request.stream()
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > jobs.limits.max_upload_bytes:
                raise JobError(f"the upload is {int(declared)} bytes; at most {jobs.limits.max_upload_bytes} are "
                               "accepted", 413)
            job = jobs.open_upload(unquote(request.headers.get("x-filename", "upload")))
        except JobError:
            await drain(request.receive)
            raise
        submitted = False
        try:
            size = 0
            with open(jobs.upload_path(job), "wb") as f:
                while True:
                    chunk = await next_chunk(body)
                    if chunk is None:
                        break
                    size += len(chunk)
                    if size > jobs.limits.max_upload_bytes:
                        await drain(request.receive)
                        raise JobError(f"the upload is over {jobs.limits.max_upload_bytes} bytes, the most accepted", 413)
                    f.write(chunk)
            if size == 0:
                raise JobError("the upload is empty: send the video file as the request body")
            await asyncio.to_thread(jobs.submit, job)
            submitted = True
        except ClientDisconnect:  # the client went away mid-upload: nobody to answer
            return Response(status_code=400)
        finally:
            if not submitted:
                jobs.discard(job)
        return JSONResponse(job.public(), status_code=201)

    async def list_jobs(request):
        return JSONResponse({"jobs": jobs.listing()})

    async def job_detail(request):
        job = jobs.get(request.path_params["job"])
        body = job.public()
        if job.state == "done":
            body["events"] = jobs.events(job.id)
        return JSONResponse(body)

    async def job_file(request):
        path = jobs.file(request.path_params["job"], request.path_params["name"])
        name = request.path_params["name"]
        return FileResponse(path, media_type=RESULT_FILES[name], filename=name if name != "annotated.webm" else None)

    async def job_error(request, err: JobError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    async def http_error(request, err: HTTPException):
        return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=err.headers)

    async def server_error(request, err: Exception):
        log.error("request %s failed", request.url.path, exc_info=err)
        return JSONResponse({"error": "the server failed to answer this request; its log says why"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        live.start()
        try:
            yield
        finally:
            await asyncio.to_thread(live.stop)
            await asyncio.to_thread(jobs.close)

    routes = [
        Route("/", live_page),
        Route("/analyse", analyse_page),
        Route("/api/status", status),
        Route("/api/events", events),
        Route("/api/frame.jpg", frame_jpeg),
        Route("/api/results", results_stream),
        WebSocketRoute("/api/live", live_socket),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/api/jobs/{job}", job_detail),
        Route("/api/jobs/{job}/files/{name}", job_file),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={JobError: job_error, HTTPException: http_error, Exception: server_error})
    app.add_middleware(Gate, access=access, max_requests=limits.max_requests)
    return app
