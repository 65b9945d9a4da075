"""Where live results go: append-only JSON-lines files (one line per record, flushed as written) and an optional
webhook that POSTs each event line from its own thread (bounded queue, retries with backoff, failures logged)."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from pathlib import Path

log = logging.getLogger("holmesvau.live")

SCHEMA_VERSION = 1


class JsonlWriter:
    """Appends one JSON object per line and flushes it; safe to call from several threads. Never truncates."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, record: dict) -> bool:
        line = json.dumps({"schema_version": SCHEMA_VERSION, **record}, ensure_ascii=False)
        with self._lock:
            if self._f is None:
                return False
            self._f.write(line + "\n")
            self._f.flush()
            self.lines += 1
        return True

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.flush()
                import os

                os.fsync(self._f.fileno())
                self._f.close()
                self._f = None


class Webhook:
    """POSTs JSON records to `url` in order from a worker thread. `send` never blocks: when `max_queue` records
    are already waiting, the new one is dropped and counted (and logged)."""

    def __init__(
        self, url: str, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 5.0, max_queue=1000
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--webhook must be an http(s) URL, got {url!r}")
        self.url, self.retries, self.backoff_s, self.timeout_s = url, retries, backoff_s, timeout_s
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
            log.error(
                "webhook %s: %d records waiting; dropped one (%s)",
                self.url,
                self.q.qsize(),
                record.get("type"),
            )

    def _post(self, record: dict) -> None:
        data = json.dumps({"schema_version": SCHEMA_VERSION, **record}).encode()
        req = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - user-given http(s) URL
            resp.read()

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
                        log.error("webhook %s: giving up on a %s record after %d tries (%s: %s)",
                                  self.url, record.get("type"), attempt, type(e).__name__, e)  # fmt: skip
                        break
                    time.sleep(delay)
                    delay *= 2

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (for at most `timeout_s`), then stop."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive() or not self.q.empty():
            log.error("webhook %s: %d records not sent at exit", self.url, self.q.qsize())
