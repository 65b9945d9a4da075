"""MQTT sink (paho-mqtt): `--mqtt mqtt://[user:pass@]host[:port][/prefix]` (mqtts:// for TLS; prefix `holmesvau`).

Topics, QoS 1:
    <prefix>/<camera>/events   every events.jsonl line (run / opened / closed / explained / gap), as written
    <prefix>/<camera>/clip     a clip file is complete: {event, clip, start_s, end_s, duration_s, frames, ...}
    <prefix>/<camera>/state    retained: {state: online | reconnecting | offline | ended | failed, last_score, lag_s}
    <prefix>/available         retained "online"; the broker publishes "offline" (last will) if we vanish

Never blocks scoring: a sink call only puts on a bounded queue (`max_queue`; full: the message is dropped and
counted); one thread hands messages to paho while it is connected and holds fewer than `max_queue` unacknowledged
ones. paho reconnects with backoff and resends what it holds; `dropped` says what was lost.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .source import redact, url_secrets

log = logging.getLogger("holmesvau.live")


@dataclass
class MqttTarget:
    host: str
    port: int
    prefix: str
    user: str | None
    password: str | None
    tls: bool


def parse_mqtt_url(url: str) -> MqttTarget:
    p = urlsplit(url)
    if p.scheme not in ("mqtt", "mqtts") or not p.hostname:
        raise ValueError(
            f"--mqtt must be mqtt://[user:pass@]host[:port][/prefix] (or mqtts://), got {redact(url)!r}"
        )
    try:
        port = p.port or (8883 if p.scheme == "mqtts" else 1883)
    except ValueError:
        raise ValueError(f"--mqtt: bad port in {redact(url)!r}") from None
    prefix = p.path.strip("/") or "holmesvau"
    if any(c in prefix for c in "#+\0") or "//" in prefix:
        raise ValueError(f"--mqtt: the topic prefix may not hold '#', '+' or empty levels, got {prefix!r}")
    user, pw = (unquote(v) if v else None for v in (p.username, p.password))
    return MqttTarget(p.hostname, port, prefix, user, pw, p.scheme == "mqtts")


class MqttSink:
    """`sink(camera, kind, line)` for the watcher's cameras (kind: events / clip / state)."""

    def __init__(self, url: str, client_id: str, max_queue: int = 1000):
        import paho.mqtt.client as mqtt

        self.target = t = parse_mqtt_url(url)
        self.available = f"{t.prefix}/available"  # retained online / offline (our last will)
        self.name = redact(url, url_secrets(url))
        self.max_queue = max(1, max_queue)
        self.q: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self.sent = self.dropped = 0
        self.connected = threading.Event()
        self.states: dict[str, str] = {}  # retained state per camera, republished after a reconnect
        self._stop = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if t.user is not None:
            c.username_pw_set(t.user, t.password)
        if t.tls:
            c.tls_set()
        c.max_queued_messages_set(2 * self.max_queue)  # (a safety net: _run keeps it under max_queue)
        c.reconnect_delay_set(0.2, 5)
        c.will_set(self.available, "offline", qos=1, retain=True)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.connect_async(t.host, t.port, keepalive=10)
        c.loop_start()
        self._thread = threading.Thread(target=self._run, name="holmesvau-mqtt", daemon=True)
        self._thread.start()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("mqtt %s: connection refused (%s)", self.name, reason_code)
            return
        self.connected.set()
        client.publish(self.available, "online", qos=1, retain=True)
        for camera, payload in list(self.states.items()):
            client.publish(f"{self.target.prefix}/{camera}/state", payload, qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self.connected.is_set():
            log.warning("mqtt %s: disconnected (%s); reconnecting", self.name, reason_code)
        self.connected.clear()

    def __call__(self, camera: str, kind: str, line: dict) -> None:
        if kind == "score":  # (scores stay in scores.jsonl and on the page)
            return
        topic = f"{self.target.prefix}/{camera}/{kind}"
        payload = json.dumps(line, ensure_ascii=False, allow_nan=False)
        if kind == "state":
            self.states[camera] = payload
        try:
            self.q.put_nowait((topic, payload, kind == "state"))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        import paho.mqtt.client as mqtt

        while not self._stop.is_set() or (self.connected.is_set() and not self.q.empty()):
            # hand over only while connected and paho holds fewer than max_queue unacknowledged messages: while
            # the broker is away, messages wait in our bounded queue (and the newest are dropped when it is full)
            if not self.connected.is_set() or len(self.client._out_messages) >= self.max_queue:
                time.sleep(0.02)
                continue
            try:
                topic, payload, retain = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self.dropped += 1
            else:
                self.sent += 1

    def close(self, timeout_s: float = 5.0) -> dict:
        """Hand over what is queued, wait (at most `timeout_s`) for the broker to take it, say we leave."""
        self._stop.set()
        self._thread.join(timeout_s)
        left = self.q.qsize()  # never handed over (the broker was away at the end)
        self.dropped += left
        deadline = time.monotonic() + timeout_s
        while self.connected.is_set() and self.client._out_messages and time.monotonic() < deadline:
            time.sleep(0.05)
        unsent = len(self.client._out_messages)
        if self.connected.is_set():
            self.client.publish(self.available, "offline", qos=1, retain=True).wait_for_publish(1)
        self.client.disconnect()
        self.client.loop_stop()
        if unsent:
            log.error("mqtt %s: %d messages not delivered at exit", self.name, unsent)
        return {"queued": self.sent, "dropped": self.dropped, "undelivered_at_exit": unsent}
