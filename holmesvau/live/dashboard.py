"""The live dashboard (`watch.py --http 127.0.0.1:8080`): one page, a JSON API, Prometheus metrics. Read-only.

    GET /                   the page: every camera's state, live anomaly curve (last `history_s`), open and recent
                            events with the clip playable and the frames the MLLM saw and its explanation
    GET /stream             server-sent events: `state`, `score`, `events` and `clip` messages as they happen
    GET /api/cameras        [{camera, state, last_score, lag_s, snippets, events, gaps, reconnections, scores}]
    GET /api/events?since=  events.jsonl lines (all cameras) whose `wall` (the time the line was written) > since
    GET /metrics            Prometheus text format (prometheus-client)
    GET /files/<camera>/clips/<name>.mp4 | .jpg    a clip or a frame, only from that camera's clips folder

No endpoint changes anything; only regular files under a camera's own `clips/` folder are served (resolved paths,
no `..`, no link leading out); the page inserts every text with `textContent` (escaped by the browser) and camera
names are [A-Za-z0-9_-]. Memory is bounded: the last `max_events` event lines and `history` scores per camera,
and each page's stream queue (a page that cannot keep up is disconnected).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .dashboard_page import PAGE

log = logging.getLogger("holmesvau.live")
SERVED = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--http must be HOST:PORT (e.g. 127.0.0.1:8080), got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Dashboard:
    """`Dashboard(addr, watcher)`: serves while the watcher runs; a sink of every camera (watcher.add_sink)."""

    def __init__(self, addr: str, watcher, history_s: float = 300.0, max_events: int = 2000):
        from prometheus_client import CollectorRegistry, Histogram

        self.watcher, self.history_s = watcher, history_s
        self.cameras = {c.name: c for c in watcher.cameras}
        self.lock = threading.Lock()
        self.events: deque[dict] = deque(maxlen=max_events)
        self.scores = {name: deque(maxlen=4096) for name in self.cameras}
        self.states: dict[str, dict] = {}
        self.clients: list[queue.Queue] = []
        self.registry = CollectorRegistry()
        self.latency = Histogram("holmesvau_arrival_to_score_seconds", "Frame arrival to its snippet's score",
                                 ["camera"], registry=self.registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))  # fmt: skip
        self.registry.register(self)
        host, port = parse_addr(addr)
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as e:
            raise ValueError(f"--http {addr}: cannot listen there ({e.strerror or e})") from None
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="holmesvau-http", daemon=True)
        self.thread.start()

    # -- the sink ----------------------------------------------------------------------------------------------
    def __call__(self, camera: str, kind: str, line: dict) -> None:
        with self.lock:
            if kind == "score":
                self.scores[camera].append((line["wall"], line["t"], line["score"]))
                self.latency.labels(camera).observe(line["latency_s"])
                msg = {"camera": camera, "wall": line["wall"], "t": line["t"], "score": line["score"]}
            elif kind == "state":
                self.states[camera] = {**line, "camera": camera}
                msg = self.states[camera]
            else:
                msg = {**line, "camera": camera, "wall": line.get("wall", round(time.time(), 3))}
                self.events.append(msg)
            data = f"event: {kind}\ndata: {json.dumps(msg, allow_nan=False)}\n\n".encode()
            for q in list(self.clients):
                try:
                    q.put_nowait(data)
                except queue.Full:  # a page that cannot keep up: disconnected (it reconnects and reloads)
                    self.clients.remove(q)
                    _hang_up(q)

    # -- what the endpoints answer -----------------------------------------------------------------------------
    def cameras_json(self) -> list[dict]:
        now = time.time()
        out = []
        with self.lock:
            for name, c in self.cameras.items():
                st = self.states.get(name, {})
                pts = [(t, s) for w, t, s in self.scores[name] if w >= now - self.history_s]
                out.append({"camera": name, "source": c.src.name, "state": c.state,
                            "last_score": st.get("last_score"), "lag_s": st.get("lag_s"), "snippets": c.n_scored,
                            "events": c.tracker.count, "open": c.tracker.is_open, "gaps": c.n_gaps,
                            "reconnections": c.src.reconnections, "scores": pts})  # fmt: skip
        return out

    def events_since(self, since: float) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["wall"] > since]

    def file(self, path: str) -> Path | None:
        """The file of /files/<camera>/clips/<name>, only if it is a regular file inside that camera's clips/."""
        parts = path.split("/")
        if len(parts) < 3 or parts[1] != "clips" or parts[0] not in self.cameras or ".." in parts:
            return None
        root = (self.cameras[parts[0]].out / "clips").resolve()
        try:
            target = (root / "/".join(parts[2:])).resolve(strict=True)
            target.relative_to(root)
        except (OSError, ValueError):
            return None
        return target if target.is_file() and target.suffix in SERVED else None

    def add_client(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=1000)
        with self.lock:
            self.clients.append(q)
        return q

    def collect(self):
        """/metrics: the per-camera counters, read from the watcher at scrape time (a prometheus collector)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        w = self.watcher
        families = [  # (name, help, type, the value of a camera)
            ("holmesvau_frames_decoded", "Frames decoded", CounterMetricFamily, lambda c: c.src.frames),
            ("holmesvau_snippets_scored", "Snippets scored", CounterMetricFamily, lambda c: c.n_scored),
            ("holmesvau_reconnects", "Reconnections", CounterMetricFamily, lambda c: c.src.reconnections),
            ("holmesvau_events", "Events opened", CounterMetricFamily, lambda c: c.tracker.count),
            ("holmesvau_gaps", "Stream gaps", CounterMetricFamily, lambda c: c.n_gaps),
            ("holmesvau_lag_seconds", "Arrival to score of the last snippet", GaugeMetricFamily,
             lambda c: c.latencies[-1] if c.latencies else math.nan),
            ("holmesvau_camera_online", "1 while the camera delivers frames", GaugeMetricFamily,
             lambda c: 1.0 if c.state == "online" else 0.0),
        ]  # fmt: skip
        for name, doc, family, value in families:
            fam = family(name, doc, labels=["camera"])
            for c in w.cameras:
                fam.add_metric([c.name], value(c))
            yield fam
        backlog = GaugeMetricFamily("holmesvau_explain_backlog", "Events waiting for an explanation")
        backlog.add_metric([], w.explainer.backlog if w.explainer is not None else 0)
        yield backlog
        drops = CounterMetricFamily("holmesvau_sink_dropped", "Messages a sink dropped", labels=["sink"])
        if w.webhook is not None:
            drops.add_metric(["webhook"], w.webhook.dropped + w.webhook.failed)
        for s in w.sinks:
            if hasattr(s, "dropped"):
                drops.add_metric([type(s).__name__], s.dropped)
        yield drops

    def shutdown(self) -> None:
        """Stop serving (the owner calls it after the watcher's run: the page shows the end of it)."""
        with self.lock:
            for q in self.clients:
                _hang_up(q)
            self.clients.clear()
        self.server.shutdown()
        self.server.server_close()


def _hang_up(q: queue.Queue) -> None:
    """End a page's stream (None), making room for it if its queue is full (the caller holds the lock)."""
    if q.full():
        with contextlib.suppress(queue.Empty):
            q.get_nowait()
    q.put_nowait(None)


def _handler(dash: Dashboard):
    class Handler(BaseHTTPRequestHandler):
        server_version = "holmesvau-live"

        def log_message(self, *args):  # no access log on stderr
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                             "script-src 'self' 'unsafe-inline'; img-src 'self'; media-src 'self'")  # fmt: skip
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, data, code: int = 200) -> None:
            self._send(code, json.dumps(data, allow_nan=False).encode(), "application/json")

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            path = unquote(url.path)
            if path == "/":
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if path == "/api/cameras":
                return self._json(dash.cameras_json())
            if path == "/api/events":
                raw = parse_qs(url.query).get("since", ["0"])[0]
                try:
                    since = float(raw)
                    if not math.isfinite(since):
                        raise ValueError
                except ValueError:
                    return self._json({"error": "since must be a number (a wall-clock time, seconds)"}, 400)
                return self._json(dash.events_since(since))
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                return self._send(200, generate_latest(dash.registry), CONTENT_TYPE_LATEST)
            if path == "/stream":
                return self._stream()
            f = dash.file(path.removeprefix("/files/")) if path.startswith("/files/") else None
            if f is not None:
                return self._send(200, f.read_bytes(), SERVED[f.suffix])
            return self._json({"error": "not found"}, 404)

        do_HEAD = do_GET

        def _refuse(self):
            self._json({"error": "read-only"}, 405)

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def _stream(self) -> None:
            q = dash.add_client()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                self.wfile.write(b"retry: 1000\n\n")
                self.wfile.flush()
                while True:
                    try:
                        data = q.get(timeout=10)
                    except queue.Empty:
                        data = b": keep-alive\n\n"
                    if data is None:
                        return
                    self.wfile.write(data)
                    self.wfile.flush()
            except OSError:  # the page went away
                return
            finally:
                with dash.lock:
                    if q in dash.clients:
                        dash.clients.remove(q)

    return Handler
