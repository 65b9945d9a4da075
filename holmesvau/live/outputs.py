"""Where live results go: append-only JSON-lines files (one line per record, flushed as written) and an optional
webhook that POSTs each event line from its own thread (bounded queue, retries with backoff, no redirects
followed, failures counted and logged)."""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from holmesvau.jsonl import JsonlAppender, dumps, repair_torn_tail
from holmesvau.output_guard import OutputError

from .source import redact, url_secrets

log = logging.getLogger("holmesvau.live")

SCHEMA_VERSION = 2  # 2: `camera` and `run` on every line, `run` and `clip` lines, no `clip` on `closed`


def new_run_id() -> str:
    """UTC start time + 4 random hex digits: unique across runs, even two started in the same second."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class JsonlWriter(JsonlAppender):
    """A JsonlAppender with every line stamped (schema_version, then `stamp`, then the record). A write that fails
    (disk full) raises OutputError once, naming the file, and closes the writer: nothing follows a torn line."""

    def __init__(self, path: Path, stamp: dict | None = None):
        super().__init__(path)
        self.stamp = dict(stamp or {})
        self.error: OutputError | None = None
        self.open()
        if self.repaired:
            log.warning("%s: cut a torn last line (%d bytes) before appending", self.path, self.repaired)

    def write(self, record: dict) -> dict | None:
        """The line written (as a dict); None once closed (nothing written); OutputError when the file cannot
        take it."""
        full = {"schema_version": SCHEMA_VERSION, **self.stamp, **record}
        with self._lock:
            if self._f is None:
                return None
            try:
                super().write(full)
            except OSError as e:
                self._fail(e)
        return full

    def _fail(self, e: OSError) -> None:
        what = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        self.error = OutputError(e.errno, f"{self.path}: cannot write ({what})")
        with contextlib.suppress(OSError):
            super().close()
        with contextlib.suppress(OSError):  # best effort: cut the line the disk tore (else the next run does)
            repair_torn_tail(self.path)
        raise self.error

    def close(self) -> None:
        with self._lock:
            try:
                super().close()
            except OSError as e:
                self._fail(e)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None  # a 3xx becomes an HTTPError: a POST is never turned into a GET nor sent elsewhere


def check_webhook_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--webhook must be an http:// or https:// URL with a host, got {url!r}")
    return url


class Webhook:
    """POSTs JSON records to `url` in order from a worker thread. `send` never blocks: when `max_queue` records
    are already waiting, the new one is dropped and counted (and logged). Redirects are not followed (failed)."""

    def __init__(self, url: str, retries=3, backoff_s=0.5, timeout_s=5.0, max_queue=1000):
        self.url, self.retries = check_webhook_url(url), retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s
        self.name = redact(url, url_secrets(url))
        self._opener = urllib.request.build_opener(_NoRedirects)
        self.q: queue.Queue = queue.Queue(maxsize=max_queue)
        self.sent = self.failed = self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holmesvau-webhook", daemon=True)
        self._thread.start()

    def send(self, record: dict) -> None:
        try:
            self.q.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            log.error("webhook %s: %d records waiting; dropped a %r record", self.name, self.q.qsize(),
                      record.get("type"))  # fmt: skip

    def _post(self, record: dict) -> None:
        data = dumps({"schema_version": SCHEMA_VERSION, **record}).encode()
        req = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                raise ValueError(f"HTTP {e.code} redirect (not followed)") from None
            raise

    def _run(self) -> None:
        while not (self._stop.is_set() and self.q.empty()):
            try:
                record = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            delay = self.backoff_s
            for attempt in range(1, self.retries + 2):
                try:
                    self._post(record)
                    self.sent += 1
                    break
                except Exception as e:  # noqa: BLE001 - refused, timeout, HTTP error: retried, then logged
                    if attempt > self.retries:
                        self.failed += 1
                        log.error("webhook %s: giving up on the %r record after %d tries (%s)", self.name,
                                  record.get("type"), attempt, redact(f"{type(e).__name__}: {e}"))  # fmt: skip
                        break
                    time.sleep(delay)
                    delay *= 2

    def close(self, timeout_s: float = 10.0) -> dict:
        """Send what is queued (for at most `timeout_s`), then stop; returns the counts."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive() or not self.q.empty():
            log.error("webhook %s: %d records not sent at exit", self.name, self.q.qsize())
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped}
