"""The ASGI application of `microexp serve` (Starlette): the live page and its stream, the
upload page and its jobs, and the JSON API under /api. Every request passes `Access` first;
errors answer with a JSON message ({"error": ...}), never a traceback."""
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
from starlette.requests import Request
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
    send_timeout_s: float = 10.0  # a client that takes longer to accept a message is dropped


def update_message(snap, trace, events, state: str) -> dict:
    """One update of the results stream: the newest frame's results, the trace points and events
    the client has not had yet."""
    return {"type": "update", "state": state, "seq": snap.seq, "captured": snap.captured, "frame": snap.frame,
            "timestamp": round(snap.timestamp, 4), "size": list(snap.size), "faces": snap.faces,
            "latency_ms": round(snap.latency_ms, 3),
            "trace": [[round(t, 4), a, m] for _, t, a, m in trace], "events": events}


def create_app(live: LiveAnalysis, jobs: JobStore, access: Access, limits: Optional[ServerLimits] = None) -> Starlette:
    limits = limits or ServerLimits()
    streams = {"open": 0}  # live streams now

    def refused(conn) -> Optional[Response]:
        why = access.refusal(conn.headers, conn.query_params, conn.cookies)
        return None if why is None else JSONResponse({"error": why[1]}, status_code=why[0])

    async def page(request: Request, name: str) -> Response:
        no = refused(request)
        if no is not None:
            return no
        if "token" in request.query_params:  # a kiosk's start URL: keep the token in a cookie, not the address bar
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
            return response
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    class GuardedStatic:
        """The page's scripts and styles, behind the same checks as the pages."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            no = refused(Request(scope))
            await (no if no is not None else self.app)(scope, receive, send)

    async def live_page(request):
        return await page(request, "live.html")

    async def analyse_page(request):
        return await page(request, "analyse.html")

    def guarded(handler):
        async def wrapped(request: Request):
            no = refused(request)
            return no if no is not None else await handler(request)
        return wrapped

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
        why = access.refusal(websocket.headers, websocket.query_params, websocket.cookies)
        if why is not None:
            await websocket.close(code=1008, reason=why[1][:120])
            return
        if streams["open"] >= limits.max_clients:
            await websocket.close(code=1013, reason=f"at most {limits.max_clients} live clients at once")
            return
        await websocket.accept()
        streams["open"] += 1
        live.watchers += 1
        try:
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

        async def body():
            streams["open"] += 1
            try:
                async for message, _ in updates(pictures=False):
                    yield f"data: {json.dumps(message)}\n\n"
            finally:
                streams["open"] -= 1
        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def create_job(request):
        body = request.stream()
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > jobs.limits.max_upload_bytes:
                raise JobError(f"the upload is {int(declared)} bytes; at most {jobs.limits.max_upload_bytes} are "
                               "accepted", 413)
            job = jobs.open_upload(unquote(request.headers.get("x-filename", "upload")))
        except JobError:
            await drain(body)
            raise
        submitted = False
        try:
            size = 0
            with open(jobs.upload_path(job), "wb") as f:
                async for chunk in body:
                    size += len(chunk)
                    if size > jobs.limits.max_upload_bytes:
                        await drain(body)
                        raise JobError(f"the upload is over {jobs.limits.max_upload_bytes} bytes, the most accepted", 413)
                    f.write(chunk)
            if size == 0:
                raise JobError("the upload is empty: send the video file as the request body")
            await asyncio.to_thread(jobs.submit, job)
            submitted = True
        finally:
            if not submitted:
                jobs.discard(job)
        return JSONResponse(job.public(), status_code=201)

    async def drain(body, most: int = 8 * 2**20):
        """Read (and drop) some of a refused upload before answering, so that a client still
        sending gets the answer instead of a broken connection; beyond `most` it may not."""
        seen = 0
        async for chunk in body:
            seen += len(chunk)
            if seen > most:
                break

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
        app.state.started = time.time()
        try:
            yield
        finally:
            await asyncio.to_thread(live.stop)
            await asyncio.to_thread(jobs.close)

    routes = [
        Route("/", live_page),
        Route("/analyse", analyse_page),
        Route("/api/status", guarded(status)),
        Route("/api/events", guarded(events)),
        Route("/api/frame.jpg", guarded(frame_jpeg)),
        Route("/api/results", guarded(results_stream)),
        WebSocketRoute("/api/live", live_socket),
        Route("/api/jobs", guarded(create_job), methods=["POST"]),
        Route("/api/jobs", guarded(list_jobs), methods=["GET"]),
        Route("/api/jobs/{job}", guarded(job_detail)),
        Route("/api/jobs/{job}/files/{name}", guarded(job_file)),
        Mount("/static", app=GuardedStatic(StaticFiles(directory=STATIC)), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={JobError: job_error, HTTPException: http_error, Exception: server_error})
