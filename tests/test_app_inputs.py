"""The demo's server side (holmesvau.demo) without a browser: which files it reads, size/duration limits, clear
errors, one run of each mode through the Gradio handler on the tiny model, and how the pipeline is chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from holmesvau.testing.synthetic import make_video


@pytest.fixture
def demo():
    import holmesvau.demo

    return holmesvau.demo


@pytest.fixture
def upload_root(tmp_path):
    root = tmp_path / "gradio_uploads"
    root.mkdir()
    return root


def _cfg(demo, **kw):
    return demo.DemoConfig(**{"max_upload_mb": 1.0, "max_duration_s": 5.0, "max_new_tokens": 3, **kw})


def test_only_uploaded_files_and_listed_examples_are_read(demo, upload_root, tmp_path):
    cfg = _cfg(demo, examples={"clip.mp4": tmp_path / "clip.mp4"})
    inside = upload_root / "abc" / "v.mp4"
    inside.parent.mkdir()
    inside.write_bytes(b"x")
    assert demo.resolve_input(str(inside), None, cfg, upload_root) == inside.resolve()
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    for path in (str(outside), str(upload_root / ".." / "secret.mp4"), "/etc/passwd"):
        with pytest.raises(demo.DemoError, match="Only files uploaded"):
            demo.resolve_input(path, None, cfg, upload_root)
    assert demo.resolve_input(None, "clip.mp4", cfg, upload_root) == tmp_path / "clip.mp4"
    with pytest.raises(demo.DemoError, match="Unknown example"):
        demo.resolve_input(None, str(outside), cfg, upload_root)
    with pytest.raises(demo.DemoError, match="Upload a video"):
        demo.resolve_input(None, None, cfg, upload_root)


def test_size_and_duration_limits(demo, upload_root):
    big = upload_root / "big.mp4"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(demo.DemoError, match=r"2\.0 MB.*up to 1 MB"):
        demo.resolve_input(str(big), None, _cfg(demo), upload_root)
    long = make_video(upload_root / "long.mp4", 80, fps=10)  # 8 s
    with pytest.raises(demo.DemoError, match=r"lasts 8 s.*up to 5 s"):
        demo.check_video(long, _cfg(demo), "long.mp4")
    assert demo.check_video(long, _cfg(demo, max_duration_s=10), "long.mp4").num_frames == 80


@pytest.mark.parametrize("content", [b"", b"not a video\n" * 10, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_unreadable_uploads_get_a_clear_message(demo, upload_root, content):
    bad = upload_root / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(demo.DemoError, match="Could not read “bad.mp4” as a video"):
        demo.check_video(bad, _cfg(demo), "bad.mp4")


def test_examples_are_found_in_a_folder(demo, tmp_path):
    make_video(tmp_path / "b.mp4", 4)
    (tmp_path / "notes.txt").write_text("x")
    assert list(demo.find_examples(None, tmp_path)) == ["b.mp4"]
    assert demo.find_examples(None, tmp_path / "missing") == {}
    with pytest.raises(SystemExit, match="not found"):
        demo.find_examples([str(tmp_path / "nope.mp4")], None)


def test_handler_answer_report_and_error(demo, tiny_lm, upload_root, monkeypatch):
    """...and each run decodes its frames once: the answer's gallery and curve reuse the frames the analysis decoded,
    the report's gallery its thumbnails (no JPEG decoded back)."""
    import PIL.Image

    import holmesvau.video
    from holmesvau.ats import URDMU
    from holmesvau.pipeline import HolmesVAU

    reads, read_frames = [], holmesvau.video.read_frames
    for name in ("read_frames", "read_frames_timed"):  # every way of decoding chosen frames, counted

        def counted(path, indices, *a, _real=getattr(holmesvau.video, name), **kw):
            reads.append(list(indices))
            return _real(path, indices, *a, **kw)

        monkeypatch.setattr(holmesvau.video, name, counted)

    torch.manual_seed(0)
    vau = HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())
    handle = demo.make_handler(vau, _cfg(demo, tiny=True), upload_root)
    clip = make_video(upload_root / "clip.mp4", 40, fps=10)
    calls = []

    def progress(*args, **kwargs):
        calls.append((args, kwargs))

    status, answer, curve, gallery, report, files = handle(
        str(clip), None, "What happened?", 3, True, demo.MODES[0], progress
    )
    assert (
        status.startswith("Done · answered · uniform sampling")
        and Path(curve).is_file()
        and len(gallery) == 3
    )
    assert report == "" and files is None and calls
    assert reads == [
        [6, 19, 32]
    ]  # uniform plan of 40 frames, decoded once (not again for the curve or gallery)
    want = read_frames(clip, [6, 19, 32])
    assert all(
        (img == w).all() and label.startswith(f"#{i} ")
        for (img, label), w, i in zip(gallery, want, [6, 19, 32])
    )

    def no_decoding(*a, **kw):
        raise AssertionError("a JPEG was decoded back")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)

    status, answer, curve, gallery, report, files = handle(
        str(clip), None, "", 3, True, demo.MODES[1], progress
    )
    assert status.startswith("Done · report"), status
    assert "<iframe" in report and "anomaly-curve" in report
    assert (
        '<iframe title="report" sandbox="" srcdoc=' in report
    )  # no scripts, forms, navigation; opaque origin
    assert sorted(Path(f).name for f in files) == ["report.html", "report.json"]

    bad = upload_root / "corrupt.mp4"
    bad.write_bytes(b"garbage" * 100)
    status, answer, curve, gallery, report, files = handle(
        str(bad), None, "What?", 3, True, demo.MODES[0], progress
    )
    assert status.startswith("**Error:**") and "corrupt.mp4" in status and curve is None


def test_claimed_fps_cannot_pass_frames_off_as_seconds(demo, upload_root):
    """30,000 frames claiming 1000 fps last 30 s: the default duration limit (600 s) lets them through; the frame
    limit (18,000 by default: 10 min at 30 fps) does not."""
    fast = make_video(upload_root / "fast.mp4", 30_000, fps=1000, width=16, height=16)
    cfg = demo.DemoConfig()
    with pytest.raises(demo.DemoError, match=r"has 30000 frames.*up to 18000 frames"):
        demo.check_video(fast, cfg, "fast.mp4")
    assert demo.check_video(fast, demo.DemoConfig(max_frames=30_000), "fast.mp4").num_frames == 30_000


def test_resolution_limit(demo, upload_root):
    clip = make_video(upload_root / "clip.mp4", 3, width=160, height=120)
    with pytest.raises(demo.DemoError, match=r"is 160×120.*up to 0\.0 megapixels"):
        demo.check_video(clip, _cfg(demo, max_pixels=100 * 100), "clip.mp4")
    assert demo.check_video(clip, _cfg(demo, max_pixels=160 * 120), "clip.mp4").width == 160
    # the default admits 4K UHD, not more
    assert demo.DemoConfig().max_pixels == 3840 * 2160


def test_question_length_is_capped_before_any_work(demo, upload_root):
    class NoModel:  # the handler must refuse before it touches the model or decodes the video
        scorer = None

        def analyze(self, *a, **k):
            raise AssertionError("the model was run")

    handle = demo.make_handler(NoModel(), _cfg(demo, max_prompt_chars=50), upload_root)
    clip = make_video(upload_root / "clip.mp4", 8, fps=10)
    status, *_ = handle(str(clip), None, "why? " * 200, 3, False, demo.MODES[0], lambda *a, **k: None)
    assert status == "**Error:** The question has 999 characters; this demo accepts up to 50."
    assert demo.DemoConfig().max_prompt_chars == 1000


def test_output_folder_is_private_and_unguessable(demo):
    import os
    import stat
    import tempfile

    out = demo.fresh_output_dir()
    root = out.parent
    assert root == demo.demo_dir() and out.is_dir()
    assert root.parent == Path(tempfile.gettempdir())
    assert root.name != f"holmesvau-demo-{os.getpid()}"  # not a name another user could create first
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.stat().st_uid == os.getuid()


def test_default_model_is_inference_default_and_tiny_only_on_request(demo, monkeypatch, capsys):
    from holmesvau.model import DEFAULT_MODEL, CheckpointError
    from holmesvau.pipeline import HolmesVAU

    calls = []

    def fake_from_pretrained(model, **kwargs):
        calls.append(model)
        raise CheckpointError("offline in this test")

    def no_tiny(*a, **k):
        raise AssertionError("the tiny model was built without --tiny")

    monkeypatch.setattr(HolmesVAU, "from_pretrained", staticmethod(fake_from_pretrained))
    monkeypatch.setattr(demo, "tiny_pipeline", no_tiny)
    args = demo.parse_args(["--examples-dir", "/nonexistent"])
    assert args.model == DEFAULT_MODEL == "ppxin321/HolmesVAU-2B"
    with pytest.raises(demo.DemoError, match=r"^offline in this test\n.*python app.py --tiny"):
        demo.load_demo(args)
    assert calls == [DEFAULT_MODEL]

    built = []
    monkeypatch.setattr(demo, "tiny_pipeline", lambda device=None: built.append(device) or "vau")
    vau, cfg = demo.load_demo(demo.parse_args(["--tiny", "--examples-dir", "/nonexistent"]))
    assert vau == "vau" and built == [None] and cfg.tiny and cfg.model_name == "tiny random InternVL2"
    assert demo.TINY_LABEL in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.parse_args(["--tiny", "--model", "x"])
    assert "--tiny replaces --model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.parse_args(["--tiny", "--mod", "x"])  # argparse's abbreviation of --model, too
