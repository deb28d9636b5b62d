"""The kiosk web view behind `microexp serve`: the live analysis of one source in its own thread
(`live`), analyses of uploaded videos in a bounded worker pool (`jobs`), who may connect
(`access`), and the ASGI application over them (`app`, needs the `serve` extra), with the page
itself as plain HTML/JS/CSS in `static/` (no CDN: kiosks are often offline)."""
