"""watch.py on real network streams, all on the loopback interface: ffmpeg (the one shell/install.sh provides)
sends a real clip as MPEG-TS over UDP, or serves it over HTTP; a local HTTP receiver takes the webhook posts.

Each test starts its processes itself and kills them in `finally`; every wait has a deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live_servers import (
    HOST,
    REPO,
    Receiver,
    ffmpeg_sender,
    free_port,
    read_jsonl,
    sigterm_and_wait,
    start_watch,
    stop,
    wait_for,
)

SECRET = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    from holmesvau.testing import make_random_scorer

    return make_random_scorer(tmp_path_factory.mktemp("scorer") / "tiny_scorer.pth", input_dim=64)


def watch_cmd(source: str, model: Path, scorer: Path, out: Path, *extra: str) -> list[str]:
    # --on 0 --off 0: every score opens/keeps the event, so an event is guaranteed; SIGTERM closes it
    return [sys.executable, str(REPO / "watch.py"), "--source", source, "--model", str(model), "--scorer",
            str(scorer), "--device", "cpu", "--out", str(out), "--on", "0", "--off", "0", "--min-duration-s", "0",
            "--select-frames", "4", "--max-new-tokens", "4", "--dense-stride", "8", "--read-timeout-s", "2",
            "--open-timeout-s", "5", "--open-attempts", "20", "--backoff-max-s", "0.5", "--progress-every-s", "1",
            "--quiet", *extra]  # fmt: skip


def check_event_lines(out: Path, reason: str) -> list[dict]:
    events = read_jsonl(out / "events.jsonl")
    kinds = [e["type"] for e in events if e["type"] in ("run", "opened", "closed")]
    assert kinds == ["run", "opened", "closed"], kinds
    assert sorted(e["type"] for e in events if e["type"] in ("clip", "explained")) == ["clip", "explained"]
    run, opened, closed = [e for e in events if e["type"] in ("run", "opened", "closed")]
    (clip,) = [e for e in events if e["type"] == "clip"]
    (explained,) = [e for e in events if e["type"] == "explained"]
    assert all(
        e["schema_version"] == 2 and e["run"] == run["run"] and e["camera"] == "default" for e in events
    )
    assert opened["event"] == closed["event"] == explained["event"] == clip["event"]
    assert "clip" not in closed and explained["clip"] == clip["clip"] == f"clips/{closed['event']}.mp4"
    assert explained["source"] == closed["source"] == run["source"] and explained["camera"] == "default"
    assert closed["reason"] == reason
    assert closed["end_s"] >= closed["start_s"] and closed["end_wall"] >= closed["start_wall"]
    scores = [s for s in read_jsonl(out / "scores.jsonl") if s["type"] == "score"]
    assert closed["peak_score"] == pytest.approx(
        max(s["score"] for s in scores if s["t"] >= closed["start_s"])
    )
    assert isinstance(explained["judgement"], str) and isinstance(explained["description"], str)
    assert len(explained["frames_s"]) == 4
    assert all(closed["start_s"] <= t <= closed["end_s"] for t in explained["frames_s"])
    # the clip is a complete, decodable video covering the event
    from holmesvau.video import probe

    info = probe(out / clip["clip"], backend="pyav")
    assert info.num_frames > 10 and info.width == 320
    assert not list((out / "backlog").glob("*.npz"))
    return events


@pytest.mark.slow  # ~20 s unloaded: a watch.py process (torch import, tiny model) on a real-time stream
def test_udp_stream_events_webhook_and_sigterm(shared, tiny_model_dir, tiny_scorer, tmp_path):
    clip = shared("videos/car_accident.mp4")
    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://{HOST}:{port}"
    out, log = tmp_path / "out", tmp_path / "watch.log"
    receiver, sender, watcher = Receiver(), None, None
    try:
        watcher = start_watch(
            watch_cmd(url, tiny_model_dir, tiny_scorer, out, "--webhook", receiver.url), log
        )
        sender = ffmpeg_sender(clip, url + "?pkt_size=1316")
        wait_for(lambda: len(read_jsonl(out / "scores.jsonl")) >= 6, "6 scores", watcher, log)
        wait_for(
            lambda: any(e["type"] == "opened" for e in read_jsonl(out / "events.jsonl")),
            "an event",
            watcher,
            log,
        )
        summary = sigterm_and_wait(watcher, log)  # the stream is still live: SIGTERM closes the open event
        events = check_event_lines(out, "shutdown")
        assert summary["stopped"] == "shutdown" and summary["events"] == 1 and summary["explained"] == 1
        assert summary["snippets"] == len(
            [s for s in read_jsonl(out / "scores.jsonl") if s["type"] == "score"]
        )  # every score flushed to disk
        # the webhook got every events.jsonl line, in order
        deadline = time.monotonic() + 10
        while len(receiver.bodies) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.bodies == events
    finally:
        stop(sender)
        stop(watcher)
        receiver.close()


@pytest.mark.slow  # ~25 s unloaded: a watch.py process on a real-time stream that is down for 3 s
def test_http_stream_killed_and_restarted_reconnects_with_gap(shared, tiny_model_dir, tiny_scorer, tmp_path):
    clip = shared("videos/car_accident.mp4")
    port = free_port()
    serve = f"http://{HOST}:{port}/live.ts"
    url = f"http://user:{SECRET}@{HOST}:{port}/live.ts"  # a password: it must show up nowhere
    out, log = tmp_path / "out", tmp_path / "watch.log"
    server = ffmpeg_sender(clip, serve, ("-listen", "1"))  # ffmpeg as a one-client HTTP server
    watcher = None
    try:
        watcher = start_watch(watch_cmd(url, tiny_model_dir, tiny_scorer, out), log)
        wait_for(lambda: len(read_jsonl(out / "scores.jsonl")) >= 5, "5 scores", watcher, log)
        stop(server)  # the stream dies mid-way ...
        time.sleep(3)
        server = ffmpeg_sender(clip, serve, ("-listen", "1"))  # ... and comes back
        gap = wait_for(
            lambda: [s for s in read_jsonl(out / "scores.jsonl") if s["type"] == "gap"], "a gap", watcher, log
        )[0]

        def after():
            return [
                s for s in read_jsonl(out / "scores.jsonl") if s["type"] == "score" and s["t"] > gap["end_s"]
            ]

        wait_for(lambda: len(after()) >= 3, "scores after the gap", watcher, log)
        summary = sigterm_and_wait(watcher, log)
        assert summary["reconnections"] >= 1 and summary["gaps"] >= 1
        # from the loss being noticed to the new connection (how much of the 3 s the server was away shows depends
        # on how much the watcher had buffered); stream time skips the gap's wall-clock length
        assert gap["duration_s"] > 0 and gap["end_wall"] > gap["start_wall"]
        assert gap["end_s"] - gap["start_s"] == pytest.approx(gap["duration_s"], abs=0.2)
        scores = [s for s in read_jsonl(out / "scores.jsonl") if s["type"] == "score"]
        ts = [s["t"] for s in scores]
        assert ts == sorted(ts) and len(set(ts)) == len(
            ts
        )  # stream time stays monotonic over the reconnection
        events = check_event_lines(out, "shutdown")
        assert [e for e in events if e["type"] == "gap"][0] == gap
        assert gap["source"] == f"http://user:***@{HOST}:{port}/live.ts"
        everything = [log.read_text()] + [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
                                          and p.suffix in (".jsonl", ".json", ".lock")]  # fmt: skip
        assert not [t for t in everything if SECRET in t]
    finally:
        stop(server)
        stop(watcher)


def test_source_that_never_opens_names_it(tmp_path):
    port = free_port()  # nothing listens there
    url = f"rtsp://user:{SECRET}@{HOST}:{port}/cam"
    cmd = [sys.executable, str(REPO / "watch.py"), "--source", url, "--open-attempts", "2", "--open-timeout-s",
           "1", "--out", str(tmp_path / "out")]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert f"error: rtsp://user:***@{HOST}:{port}/cam: cannot open the source" in r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr
    missing = tmp_path / "no_such.mp4"
    r = subprocess.run([*cmd[:3], str(missing), *cmd[4:]], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and f"{missing}: no such file" in r.stderr


def test_a_camera_not_there_yet_is_retried_until_it_answers(shared, tmp_path):
    """A stream source that does not answer its first `open_attempts` (a camera still booting, off the network) is
    retried as a dropped one is, not given up for the run: nothing is sent for 3 s, then frames come."""
    import threading

    from holmesvau.live import Frame, LiveSource, SourceConfig

    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://{HOST}:{port}"
    src = LiveSource(SourceConfig(url, open_attempts=1, open_timeout_s=1, read_timeout_s=1, backoff_s=0.2,
                                  backoff_max_s=0.5))  # fmt: skip
    got, errors, stop_ev = [], [], threading.Event()

    def read():
        try:
            got.extend(src.items(stop_ev))
        except BaseException as e:  # noqa: BLE001 - what the test looks at
            errors.append(e)

    reader = threading.Thread(target=read, daemon=True)
    sender = None
    try:
        reader.start()
        time.sleep(3.0)
        assert not errors and src.waiting and not got  # still trying, nothing given up
        sender = ffmpeg_sender(shared("videos/car_accident.mp4"), url + "?pkt_size=1316")
        deadline = time.monotonic() + 30
        while src.frames < 10 and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
    finally:
        stop_ev.set()
        stop(sender)
        reader.join(15)
    assert not errors and not src.waiting and src.frames >= 10
    assert all(isinstance(i, Frame) for i in got)  # no frame before it answered: no gap either
