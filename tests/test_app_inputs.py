"""The demo's server side without a browser: which files it reads, size/duration limits, clear errors, and one
run of each mode through the Gradio handler on the tiny model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("holmesvau_demo_app", REPO / "app.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def upload_root(tmp_path):
    root = tmp_path / "gradio_uploads"
    root.mkdir()
    return root


def _cfg(app, **kw):
    return app.DemoConfig(**{"max_upload_mb": 1.0, "max_duration_s": 5.0, "max_new_tokens": 3, **kw})


def test_only_uploaded_files_and_listed_examples_are_read(app, upload_root, tmp_path):
    cfg = _cfg(app, examples={"clip.mp4": tmp_path / "clip.mp4"})
    inside = upload_root / "abc" / "v.mp4"
    inside.parent.mkdir()
    inside.write_bytes(b"x")
    assert app.resolve_input(str(inside), None, cfg, upload_root) == inside.resolve()
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    for path in (str(outside), str(upload_root / ".." / "secret.mp4"), "/etc/passwd"):
        with pytest.raises(app.DemoError, match="Only files uploaded"):
            app.resolve_input(path, None, cfg, upload_root)
    assert app.resolve_input(None, "clip.mp4", cfg, upload_root) == tmp_path / "clip.mp4"
    with pytest.raises(app.DemoError, match="Unknown example"):
        app.resolve_input(None, str(outside), cfg, upload_root)
    with pytest.raises(app.DemoError, match="Upload a video"):
        app.resolve_input(None, None, cfg, upload_root)


def test_size_and_duration_limits(app, upload_root):
    big = upload_root / "big.mp4"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(app.DemoError, match=r"2\.0 MB.*up to 1 MB"):
        app.resolve_input(str(big), None, _cfg(app), upload_root)
    long = make_video(upload_root / "long.mp4", 80, fps=10)  # 8 s
    with pytest.raises(app.DemoError, match=r"lasts 8 s.*up to 5 s"):
        app.check_video(long, _cfg(app), "long.mp4")
    assert app.check_video(long, _cfg(app, max_duration_s=10), "long.mp4").num_frames == 80


@pytest.mark.parametrize("content", [b"", b"not a video\n" * 10, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_unreadable_uploads_get_a_clear_message(app, upload_root, content):
    bad = upload_root / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(app.DemoError, match="Could not read “bad.mp4” as a video"):
        app.check_video(bad, _cfg(app), "bad.mp4")


def test_examples_are_found_in_a_folder(app, tmp_path):
    make_video(tmp_path / "b.mp4", 4)
    (tmp_path / "notes.txt").write_text("x")
    assert list(app.find_examples(None, tmp_path)) == ["b.mp4"]
    assert app.find_examples(None, tmp_path / "missing") == {}
    with pytest.raises(SystemExit, match="not found"):
        app.find_examples([str(tmp_path / "nope.mp4")], None)


def test_handler_answer_report_and_error(app, tiny_lm, upload_root):
    from holmesvau.ats import URDMU
    from holmesvau.pipeline import HolmesVAU

    torch.manual_seed(0)
    vau = HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())
    handle = app.make_handler(vau, _cfg(app, tiny=True), upload_root)
    clip = make_video(upload_root / "clip.mp4", 40, fps=10)
    calls = []

    def progress(*args, **kwargs):
        calls.append((args, kwargs))

    status, answer, curve, gallery, report, files = handle(
        str(clip), None, "What happened?", 3, True, app.MODES[0], progress
    )
    assert (
        status.startswith("Done · answered · uniform sampling")
        and Path(curve).is_file()
        and len(gallery) == 3
    )
    assert report == "" and files is None and calls

    status, answer, curve, gallery, report, files = handle(
        str(clip), None, "", 3, True, app.MODES[1], progress
    )
    assert status.startswith("Done · report"), status
    assert "<iframe" in report and "anomaly-curve" in report
    assert sorted(Path(f).name for f in files) == ["report.html", "report.json"]

    bad = upload_root / "corrupt.mp4"
    bad.write_bytes(b"garbage" * 100)
    status, answer, curve, gallery, report, files = handle(
        str(bad), None, "What?", 3, True, app.MODES[0], progress
    )
    assert status.startswith("**Error:**") and "corrupt.mp4" in status and curve is None
