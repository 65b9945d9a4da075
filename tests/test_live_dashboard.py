"""The live dashboard in a real headless Chromium (Debian's chromium via Playwright, as test_app_browser): three
cameras (real-time files with planted events, the tiny InternViT) in one watcher; the page shows them, and an event
appears live with its clip, frames and explanation, the explanation's markup shown as text. /metrics parses with
prometheus_client's parser; traversal, a link out of clips/, writes and a bad query are refused."""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.request

import pytest

from holmesvau.frame_plan import SamplingConfig
from holmesvau.live import LiveSource, SourceConfig, WatchConfig, Watcher, per_event, vit_tile_encoder
from holmesvau.live.dashboard import Dashboard
from holmesvau.live.events import Hysteresis
from holmesvau.testing.planted import planted_scorer
from holmesvau.testing.synthetic import make_video

test_app_browser = pytest.importorskip("test_app_browser")  # skips, as it does, without chromium / playwright
CHROMIUM, ARGS, sync_api = test_app_browser.CHROMIUM, test_app_browser.ARGS, test_app_browser.sync_api

JUDGEMENT = '<img src=x onerror="window.pwned=1">'
DESCRIPTION = "</script><b id=bold>a & b</b>"


def get(url: str) -> tuple[int, bytes]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    path = "/" + url.split("//")[1].split("/", 1)[1]
    c.request("GET", path)  # sent as written (urllib would normalise the `..`)
    r = c.getresponse()
    return r.status, r.read()


def test_dashboard_in_chromium(tiny_lm, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    encode = vit_tile_encoder(tiny_lm)
    cfg = WatchConfig(out_dir=tmp_path / "out", sampling=SamplingConfig(dense_stride=4, select_frames=4),
                      rule=Hysteresis(0.5, 0.4, 0.5, 1.0), pre_roll_s=0.5, post_roll_s=0.5,
                      progress_every_s=0.5)  # fmt: skip
    specs = []
    for k, name in enumerate(("lobby", "gate", "yard")):
        bright = [(20, 45)] if name == "gate" else []  # one event, on the gate
        video = make_video(
            tmp_path / f"{name}.mp4", 90 + 10 * k, fps=10.0, width=64, height=48, bright_ranges=bright
        )
        src = LiveSource(SourceConfig(str(video), realtime=True))
        src.open()
        specs.append((name, src, cfg))
    explain = per_event(lambda tiles: {"judgement": JUDGEMENT, "description": DESCRIPTION})
    w = Watcher(specs, encode, planted_scorer(encode), cfg, explain_fn=explain, progress=False)
    dash = Dashboard("127.0.0.1:0", w)
    w.add_sink(dash)
    stop, result = threading.Event(), []
    runner = threading.Thread(target=lambda: result.append(w.run(stop)), daemon=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(dash.url)
            page.wait_for_function("() => document.querySelectorAll('section.camera').length === 3")
            assert page.eval_on_selector_all("section.camera h2", "els => els.map(e => e.textContent)") == [
                "lobby", "gate", "yard"
            ]  # fmt: skip
            runner.start()  # the event happens while the page is open: it arrives over the stream
            page.wait_for_selector("section[data-camera=gate] .event .judgement", timeout=90_000)
            page.wait_for_selector("section[data-camera=gate] .event video", timeout=30_000)
            ev = page.locator("section[data-camera=gate] .event").first
            assert ev.locator(".judgement").inner_text() == JUDGEMENT  # markup shown as text
            assert ev.locator(".description").inner_text() == DESCRIPTION
            assert page.evaluate("() => window.pwned") is None and page.locator("#bold").count() == 0
            assert ev.locator(".frames img").count() == 4
            page.wait_for_function(  # the frames the MLLM saw load from the clips folder
                "() => [...document.querySelectorAll('section[data-camera=gate] .frames img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.wait_for_function(
                "() => document.querySelector('section[data-camera=gate] video').readyState >= 1"
            )
            states = page.eval_on_selector_all("section.camera .state", "els => els.map(e => e.textContent)")
            assert len(states) == 3 and set(states) <= {"online", "ended"}, states
            browser.close()
        runner.join(120)
        # the API and the metrics, while still serving
        cams = json.loads(urllib.request.urlopen(dash.url + "api/cameras", timeout=10).read())
        assert [c["camera"] for c in cams] == ["lobby", "gate", "yard"]
        assert [c["events"] for c in cams] == [0, 1, 0] and all(c["scores"] for c in cams)
        evs = json.loads(urllib.request.urlopen(dash.url + "api/events?since=0", timeout=10).read())
        gate = [e for e in evs if e["camera"] == "gate"]
        assert [e["type"] for e in gate if e["type"] != "run"] in (
            ["opened", "closed", "clip", "explained"], ["opened", "closed", "explained", "clip"]
        )  # fmt: skip
        later = json.loads(urllib.request.urlopen(dash.url + f"api/events?since={gate[-1]['wall']}").read())
        assert later == []
        text = urllib.request.urlopen(dash.url + "metrics", timeout=10).read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        frames = {
            s.labels["camera"]: s.value
            for s in fams["holmesvau_frames_decoded"].samples
            if s.name.endswith("_total")
        }
        assert frames == {"lobby": 90, "gate": 100, "yard": 110}
        events = {
            s.labels["camera"]: s.value for s in fams["holmesvau_events"].samples if s.name.endswith("_total")
        }
        assert events == {"lobby": 0, "gate": 1, "yard": 0}
        hist = [s for s in fams["holmesvau_arrival_to_score_seconds"].samples if s.name.endswith("_count")]
        assert {s.labels["camera"]: s.value for s in hist} == {"lobby": 23, "gate": 25, "yard": 28}
        # read-only, and only files under a camera's clips/
        clip = next(e for e in gate if e["type"] == "clip")["clip"]
        assert get(dash.url + f"files/gate/{clip}")[0] == 200
        (tmp_path / "secret.txt").write_text("secret")
        os.symlink(tmp_path / "secret.txt", tmp_path / "out" / "gate" / "clips" / "link.jpg")
        for bad in ("files/gate/clips/../../secret.txt", "files/gate/clips/%2e%2e/%2e%2e/secret.txt",
                    "files/gate/clips/link.jpg", "files/..%2f..%2fsecret.txt/clips/x.jpg",
                    "files/%3Cscript%3E/clips/x.mp4", "files/gate/events.jsonl", "../../secret.txt"):  # fmt: skip
            status, body = get(dash.url + bad)
            assert status == 404 and b"secret" not in body, bad
        assert get(dash.url + "api/events?since=%3Cscript%3E")[0] == 400
        req = urllib.request.Request(dash.url + "api/cameras", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 405
    finally:
        stop.set()
        runner.join(60) if runner.is_alive() else None
        dash.shutdown()
    assert result and result[0]["explained"] == 1
