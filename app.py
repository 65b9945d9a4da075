"""HolmesVAU web demo (Gradio): upload a video or pick an example, ask a question or build the full report.

    python app.py                                              # HolmesVAU-2B (as inference.py) + the released scorer
    python app.py --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth --device cuda \
        --examples clips/a.mp4 clips/b.mp4 --port 7860 --max-upload-mb 200 --max-duration-s 600
    python app.py --tiny                                       # TINY RANDOM model: tries the UI, answers are noise

Open http://127.0.0.1:7860. Examples: the files given with --examples, else the videos of --examples-dir
(default ../shared/videos next to this repository, when present). The server reads only files the user uploaded
(inside Gradio's upload folder) and the examples it listed itself; the browser only ever sends an example's name.
Limits hold whatever a file claims: size, duration, the frame count itself (a file claiming 1000 fps cannot pass
30,000 frames off as 30 s), resolution, and the question's length. The report is shown in a sandboxed frame.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from holmesvau.cli import add_generation_options, add_model_options

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
DEFAULT_PROMPT = "Could you specify the anomaly events present in the video?"
MODES = ("Answer the prompt", "Full report")
TINY_LABEL = "TINY RANDOM MODEL — outputs are meaningless"


class DemoError(ValueError):
    """A problem with the user's input, shown to them as is."""


@dataclass
class DemoConfig:
    max_upload_mb: float = 200.0
    max_duration_s: float = 600.0
    max_new_tokens: int = 512
    examples: dict[str, Path] = field(default_factory=dict)  # name shown -> file (server side only)
    tiny: bool = False
    model_name: str = ""
    max_frames: int = 18_000  # 10 min at 30 fps: the work (decoding, ATS) grows with frames, not seconds
    max_pixels: int = 3840 * 2160  # per frame (4K UHD): bounds decoding memory
    max_prompt_chars: int = 1000


def find_examples(files: list[str] | None, folder: str | Path | None) -> dict[str, Path]:
    """Example videos by display name: the given files, else the videos in `folder` (if it exists)."""
    paths = [Path(f) for f in files] if files else []
    if not paths and folder is not None and Path(folder).is_dir():
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTS)
    out = {}
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"example video not found: {p}")
        name = p.name if p.name not in out else f"{p.parent.name}/{p.name}"
        out[name] = p.resolve()
    return out


def tiny_pipeline(device: str | None = None, seed: int = 0):
    """A tiny random InternVL2 + a random anomaly scorer sized to its ViT (made in a temp folder, removed once loaded)."""
    import torch

    from holmesvau.ats import URDMU
    from holmesvau.model import load_model
    from holmesvau.pipeline import HolmesVAU
    from holmesvau.testing import make_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="holmesvau-tiny-") as tmp:  # converted in memory at load
        lm = load_model(make_tiny_checkpoint(Path(tmp) / "model", "original"), device=device or "cpu")
    torch.manual_seed(seed)
    scorer = URDMU(input_size=lm.vision_hidden_size).eval().to(lm.device)
    return HolmesVAU(lm, scorer)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_input(upload: str | None, example: str | None, cfg: DemoConfig, upload_root: str | Path) -> Path:
    """The video to read: an uploaded file (must lie in Gradio's upload folder) or a listed example, by name."""
    if upload:
        path = Path(upload).resolve()
        if not _inside(path, Path(upload_root).resolve()) or not path.is_file():
            raise DemoError("Only files uploaded through this page can be analysed.")
        size_mb = path.stat().st_size / 2**20
        if size_mb > cfg.max_upload_mb:
            raise DemoError(
                f"The upload is {size_mb:.1f} MB; this demo accepts videos up to {cfg.max_upload_mb:g} MB."
            )
        return path
    if example:
        if example not in cfg.examples:
            raise DemoError(f"Unknown example {example!r}.")
        return cfg.examples[example]
    raise DemoError("Upload a video or pick an example first.")


def check_video(path: Path, cfg: DemoConfig, name: str):
    """Probe the video; DemoError with a clear message if unreadable or too long."""
    from holmesvau.video import VideoError, probe

    try:
        info = probe(path)
    except (VideoError, ValueError, OSError) as e:
        raise DemoError(
            f"Could not read “{name}” as a video ({e}). Please upload a valid video file."
        ) from None
    if info.num_frames < 1 or not info.fps > 0:
        raise DemoError(f"“{name}” has no decodable frames.")
    if info.duration_s > cfg.max_duration_s:
        raise DemoError(
            f"“{name}” lasts {info.duration_s:.0f} s; this demo accepts videos up to {cfg.max_duration_s:g} s."
        )
    if info.num_frames > cfg.max_frames:  # whatever frame rate the file claims
        raise DemoError(
            f"“{name}” has {info.num_frames} frames; this demo accepts videos of up to {cfg.max_frames} frames."
        )
    if info.width * info.height > cfg.max_pixels:
        raise DemoError(
            f"“{name}” is {info.width}×{info.height}; this demo accepts frames of up to "
            f"{cfg.max_pixels / 1e6:.1f} megapixels (e.g. 3840×2160)."
        )
    return info


def check_prompt(prompt: str | None, cfg: DemoConfig) -> str:
    prompt = (prompt or "").strip()
    if not prompt:
        raise DemoError("Type a question first.")
    if len(prompt) > cfg.max_prompt_chars:
        raise DemoError(
            f"The question has {len(prompt)} characters; this demo accepts up to {cfg.max_prompt_chars}."
        )
    return prompt


def _frame_gallery(frames, indices, fps):
    return [(f, f"#{i} · {i / fps:.1f}s") for f, i in zip(frames, indices)]


def run_answer(
    vau, path: Path, prompt: str, n_frames: int, use_ats: bool, cfg: DemoConfig, out: Path, progress
):
    from holmesvau.plots import save_anomaly_curve
    from holmesvau.video import read_frames

    progress(0.05, desc="Selecting frames (ATS)" if use_ats else "Selecting frames")
    result = vau.analyze(
        path, prompt, select_frames=n_frames, use_ats=use_ats, max_new_tokens=cfg.max_new_tokens
    )
    progress(0.9, desc="Drawing")
    frames = read_frames(path, result.frame_indices)
    fps = float(result.video.get("fps") or 1.0)
    curve = save_anomaly_curve(result, out / "curve.png", frames=frames)
    status = f"Done · answered · {result.sampling} sampling · frames {result.frame_indices}"
    return status, result.answer, str(curve), _frame_gallery(frames, result.frame_indices, fps), "", None


def run_report(vau, path: Path, n_frames: int, use_ats: bool, cfg: DemoConfig, out: Path, progress):
    import io

    from PIL import Image

    from holmesvau.plots import save_anomaly_curve
    from holmesvau.report import ReportConfig, build_report, write_report

    if vau.scorer is None:
        raise DemoError("The full report needs the anomaly scorer; restart the demo with a scorer.")
    rc = ReportConfig(
        video_frames=n_frames,
        event_frames=n_frames,
        clip_frames=min(8, max(2, n_frames // 2)),
        use_ats=use_ats,
        max_new_tokens=cfg.max_new_tokens,
    )

    def step(done: int, total: int, what: str) -> None:
        progress((done, total), desc=f"Report: {what}")

    progress(0.02, desc="Scoring the video (dense pass)")
    report = build_report(vau, path, rc, on_progress=step, model_name=cfg.model_name)
    json_path, html_path = write_report(report, out)
    d = report.data
    vidx = d["video_sampling"]["frame_indices"]
    thumbs = [Image.open(io.BytesIO(jpg)) for _, jpg in report.thumbnails.get("video", [])]
    curve = save_anomaly_curve(
        (d["scores"]["dense_frame_indices"], d["scores"]["values"], vidx),
        out / "curve.png",
        frames=[t.convert("RGB") for t in thumbs] or False,
        fps=d["video"]["fps"],
    )
    lines = [f"Video — {d['video_answers']['judgement']}", ""]
    for k, ev in enumerate(d["events"]):
        lines.append(
            f"Event {k + 1} ({ev['start_s']:.1f}–{ev['end_s']:.1f} s, peak {ev['peak_score']:.2f}): "
            f"{ev['answers']['description']}"
        )
    if not d["events"]:
        lines.append(f"No anomalous event (threshold {d['localization']['threshold']:.2f}).")
    doc = html.escape(html_path.read_text(encoding="utf-8"), quote=True)
    # sandbox="": the report needs no script, form or navigation; its frame gets none, and an opaque origin
    frame = (
        f'<iframe title="report" sandbox="" srcdoc="{doc}" '
        'style="width:100%;height:720px;border:1px solid #ccc"></iframe>'
    )
    status = (
        f"Done · report · {len(d['events'])} event(s) · video-level {d['video_sampling']['method']} sampling"
    )
    gallery = _frame_gallery([t.convert("RGB") for t in thumbs], vidx, d["video"]["fps"])
    return status, "\n".join(lines), str(curve), gallery, frame, [str(json_path), str(html_path)]


_DEMO_DIR: Path | None = None


def demo_dir() -> Path:
    """This process's own folder for run outputs: made by mkdtemp (a fresh, private name, never a guessable path
    someone else could have created first) and removed when the demo exits."""
    global _DEMO_DIR
    if _DEMO_DIR is None or not _DEMO_DIR.is_dir():
        import atexit
        import shutil

        _DEMO_DIR = Path(tempfile.mkdtemp(prefix="holmesvau-demo-"))
        atexit.register(shutil.rmtree, str(_DEMO_DIR), True)
    return _DEMO_DIR


def fresh_output_dir(max_age_s: float = 3600.0) -> Path:
    """A new folder for one run's files, inside `demo_dir()`; runs older than an hour are pruned (Gradio has copied
    what it serves into its own cache by then)."""
    import shutil

    root = demo_dir()
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def make_handler(vau, cfg: DemoConfig, upload_root: str | Path):
    import gradio as gr

    def handle(upload, example, prompt, n_frames, use_ats, mode, progress=gr.Progress(track_tqdm=True)):
        t0 = time.perf_counter()
        try:
            path = resolve_input(upload, example, cfg, upload_root)
            name = Path(upload).name if upload else example
            if mode != MODES[1]:
                check_prompt(prompt, cfg)  # before any decoding
            check_video(path, cfg, name)
            out = fresh_output_dir()
            if mode == MODES[1]:
                res = run_report(vau, path, int(n_frames), bool(use_ats), cfg, out, progress)
            else:
                question = check_prompt(prompt, cfg)
                res = run_answer(vau, path, question, int(n_frames), bool(use_ats), cfg, out, progress)
        except DemoError as e:
            return f"**Error:** {e}", "", None, [], "", None
        except Exception as e:  # noqa: BLE001 - a failed run must not take the demo down
            print(f"[demo] run failed: {type(e).__name__}: {e}", file=sys.stderr)
            return f"**Error:** the analysis failed ({type(e).__name__}: {e}).", "", None, [], "", None
        status, *rest = res
        return (f"{status} · total {time.perf_counter() - t0:.1f} s", *rest)

    return handle


def build_demo(vau, cfg: DemoConfig, upload_root: str | Path | None = None):
    import gradio as gr
    from gradio.utils import get_upload_folder

    upload_root = upload_root or get_upload_folder()
    banner = f"## ⚠️ {TINY_LABEL}" if cfg.tiny else f"Model: `{cfg.model_name}`"
    with gr.Blocks(title="HolmesVAU demo") as demo:
        gr.Markdown("# HolmesVAU — video anomaly understanding")
        gr.Markdown(banner, elem_id="model-label")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label=f"Video (≤ {cfg.max_upload_mb:g} MB, ≤ {cfg.max_duration_s:g} s)",
                    file_types=list(VIDEO_EXTS),
                    type="filepath",
                    elem_id="upload",
                )
                example = gr.Dropdown(
                    choices=list(cfg.examples),
                    value=None,
                    label="…or an example",
                    elem_id="example",
                    visible=bool(cfg.examples),
                )
                prompt = gr.Textbox(
                    DEFAULT_PROMPT,
                    label="Question",
                    lines=2,
                    max_length=cfg.max_prompt_chars,
                    elem_id="prompt",
                )
                n_frames = gr.Slider(
                    2, 32, value=12, step=1, label="Frames given to the model", elem_id="frames"
                )
                use_ats = gr.Checkbox(
                    vau.scorer is not None,
                    label="Anomaly-focused sampling (ATS)",
                    interactive=vau.scorer is not None,
                    elem_id="ats",
                )
                mode = gr.Radio(list(MODES), value=MODES[0], label="Output", elem_id="mode")
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                answer = gr.Textbox(label="Answer", lines=6, interactive=False, elem_id="answer")
                curve = gr.Image(label="Anomaly curve and sampled frames", type="filepath", elem_id="curve")
                strip = gr.Gallery(label="Sampled frames", columns=6, height=180, elem_id="strip")
        report = gr.HTML(elem_id="report")
        files = gr.File(label="report.json / report.html", file_count="multiple", elem_id="report-files")
        handler = make_handler(vau, cfg, upload_root)
        run.click(
            handler,
            [upload, example, prompt, n_frames, use_ats, mode],
            [status, answer, curve, strip, report, files],
            concurrency_limit=1,
        )
    return demo


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_options(
        p
    )  # the same --model/--scorer/--device/--dtype defaults as inference.py (holmesvau.cli)
    p.add_argument("--tiny", action="store_true", help="a TINY RANDOM model instead of --model (UI testing)")
    p.add_argument("--examples", nargs="*", default=None, help="example video files")
    p.add_argument(
        "--examples-dir",
        default=str(REPO.parent / "shared" / "videos"),
        help="folder of example videos used when --examples is not given",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=200.0)
    p.add_argument("--max-duration-s", type=float, default=600.0)
    p.add_argument("--max-frames", type=int, default=18_000, help="whatever fps the file claims")
    p.add_argument("--max-megapixels", type=float, default=3840 * 2160 / 1e6, help="per frame")
    p.add_argument("--max-prompt-chars", type=int, default=1000)
    add_generation_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    examples = find_examples(args.examples, args.examples_dir)
    if args.tiny:
        print(f"[demo] --tiny: {TINY_LABEL}", file=sys.stderr)
        vau, name = tiny_pipeline(args.device), "tiny random InternVL2"
    else:
        from holmesvau.ats.weights import ScorerError
        from holmesvau.model import CheckpointError
        from holmesvau.pipeline import HolmesVAU

        try:
            vau = HolmesVAU.from_pretrained(
                args.model,
                scorer=False if args.no_ats else args.scorer,
                device=args.device,
                dtype=args.dtype,
                cache_dir=args.cache_dir,
            )
        except (CheckpointError, ScorerError) as e:
            print(
                f"error: {e}\n(to try the UI without the real model: python app.py --tiny)", file=sys.stderr
            )
            return 2
        name = str(args.model)
    cfg = DemoConfig(
        args.max_upload_mb,
        args.max_duration_s,
        args.max_new_tokens,
        examples,
        args.tiny,
        name,
        max_frames=args.max_frames,
        max_pixels=int(args.max_megapixels * 1e6),
        max_prompt_chars=args.max_prompt_chars,
    )
    demo = build_demo(vau, cfg)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=f"{int(args.max_upload_mb * 2**20)}b",
        show_error=True,
        footer_links=[],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
