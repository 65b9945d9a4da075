"""The Gradio demo driven in a real headless Chromium (Debian's /usr/bin/chromium via Playwright): upload a clip,
run, see the answer and the plot; build the full report; a corrupt upload shows an error and the app keeps serving."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]
# Debian's chromium, found on PATH (or named by HOLMESVAU_CHROMIUM)
CHROMIUM = (
    os.environ.get("HOLMESVAU_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM or not Path(CHROMIUM).is_file():
    pytest.skip(
        "chromium not found on PATH (apt-get install -y chromium, or set HOLMESVAU_CHROMIUM); CI installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (pip install playwright) is not installed"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """app.py on the tiny random model (--tiny), on a free local port; yields (url, log path)."""
    log = tmp_path_factory.mktemp("app") / "app.log"
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    cmd = [sys.executable, str(REPO / "app.py"), "--tiny", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--max-new-tokens", "4", "--examples-dir", str(log.parent)]  # no examples: an empty folder
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"app.py did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser.new_page()
        browser.close()


def _run(page, url: str, video: Path, mode: str = "Answer the prompt") -> None:
    # Under CI load a fresh page has twice lost the file: once chosen while the page still hydrated, once with no file
    # input rendered 30 s after the page went network-idle. Each try loads the page anew; the last failure says what
    # the upload box held.
    for attempt in range(3):
        page.goto(url)
        page.wait_for_selector("#run")
        page.wait_for_load_state("networkidle")
        try:
            page.set_input_files("#upload input[type=file]", str(video), timeout=20_000)
            page.wait_for_selector(f"#upload :text('{video.name}')", timeout=30_000)
            break
        except sync_api.TimeoutError:
            if attempt == 2:
                upload = page.locator("#upload")
                held = upload.inner_html()[:1500] if upload.count() else "no #upload element"
                raise AssertionError(f"{video.name} never showed in the upload box:\n{held}") from None
    page.fill("#frames input[type=number]", "4")
    page.press("#frames input[type=number]", "Enter")
    page.get_by_label(mode).check()
    page.click("#run")
    page.wait_for_function(
        "() => /Done ·|Error:/.test(document.querySelector('#status').innerText)", timeout=60_000
    )


def test_demo_in_chromium(server, page, tmp_path):
    url, log = server
    clip = make_video(tmp_path / "clip.mp4", 48, fps=12)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"this is not a video\n" * 50)

    # A valid clip: answer, curve and frame strip.
    _run(page, url, clip)
    assert "TINY RANDOM MODEL" in page.inner_text("#model-label")
    status = page.inner_text("#status")
    assert status.startswith("Done · answered") and "Error" not in status, status
    assert page.input_value("#answer textarea").strip()
    assert page.locator("#curve img").count() == 1
    assert page.locator("#strip img").count() == 4

    # A corrupt upload: a clear message naming the file, no crash.
    _run(page, url, corrupt)
    status = page.inner_text("#status")
    assert "Error" in status and "corrupt.mp4" in status and "valid video" in status, status

    # The app keeps serving: the full report on the valid clip.
    _run(page, url, clip, mode="Full report")
    status = page.inner_text("#status")
    assert status.startswith("Done · report"), f"{status}\n{log.read_text()[-2000:]}"
    assert page.locator("#curve img").count() == 1
    frame = page.frame_locator("#report iframe")
    assert frame.locator("svg#anomaly-curve").count() == 1
    assert frame.locator("section.event").count() == int(status.split("·")[2].split()[0])
    assert "RANDOM-WEIGHT TEST MODEL" in frame.locator("p.warn").inner_text()
