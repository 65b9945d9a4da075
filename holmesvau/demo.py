"""The web demo's logic without its Gradio page (app.py): which files a run may read, limits that hold whatever a
file claims, the run handler behind the page's button, the command line, and loading the pipeline."""

from __future__ import annotations

import argparse
import atexit
import html
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from holmesvau.cli import DEFAULT_MODEL, add_generation_options, add_model_options, load_vau
from holmesvau.frame_plan import SamplingConfig

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
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
    decode_stall_s: float = 30.0  # decoding without progress this long is stopped (error naming the file)
    decode_memory_mb: int = 4096  # address space of the child process that decodes each upload first

    def limits(self):
        """The decoding limits of a request, checked on every decoded frame."""
        from holmesvau.video_open import DecodeLimits

        return DecodeLimits(self.max_pixels, self.max_frames, self.decode_stall_s)


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


def released_examples(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """The original repository's three example videos (holmesvau.released); none, with a warning, when offline."""
    from holmesvau import released
    from holmesvau.download import VerifyError

    instead = "--examples a.mp4 b.mp4 or --examples-dir folder/"
    try:
        return released.fetch_all({n: instead for n in released.EXAMPLES}, cache_dir)
    except (released.Unreachable, VerifyError) as e:
        print(f"[demo] warning: no examples: {e}", file=sys.stderr)
        return {}


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


def resolve_input(upload: str | None, example: str | None, cfg: DemoConfig, upload_root: str | Path) -> Path:
    """The video to read: an uploaded file (must lie in Gradio's upload folder) or a listed example, by name."""
    if upload:
        path = Path(upload).resolve()
        if not path.is_relative_to(Path(upload_root).resolve()) or not path.is_file():
            raise DemoError("Only files uploaded through this page can be analysed.")
        size_mb = path.stat().st_size / 2**20
        if size_mb > cfg.max_upload_mb:
            raise _over(f"The upload is {size_mb:.1f} MB", f"videos up to {cfg.max_upload_mb:g} MB")
        return path
    if example:
        if example not in cfg.examples:
            raise DemoError(f"Unknown example {example!r}.")
        return cfg.examples[example]
    raise DemoError("Upload a video or pick an example first.")


def check_video(path: Path, cfg: DemoConfig, name: str):
    """Decode the whole video first in a memory-capped child process stopped when it stalls (holmesvau.video_guard),
    after checking the container's claims, so no file can crash, hang or bloat the server; else DemoError."""
    from holmesvau.video_guard import check_in_child
    from holmesvau.video_open import VideoError

    try:
        claims = partial(_check_claims, cfg=cfg, name=name)
        return check_in_child(path, cfg.limits(), memory_mb=cfg.decode_memory_mb, on_probe=claims)
    except (VideoError, ValueError, OSError) as e:
        raise DemoError(
            f"Could not read “{name}” as a video ({e}). Please upload a valid video file."
        ) from None


def _over(have: str, accepted: str) -> DemoError:
    """A limit's message: what the input has, and what the demo accepts."""
    return DemoError(f"{have}; this demo accepts {accepted}.")


def _check_claims(info, cfg: DemoConfig, name: str) -> None:
    if info.num_frames < 1 or not info.fps > 0:
        raise DemoError(f"“{name}” has no decodable frames.")
    if info.duration_s > cfg.max_duration_s:
        raise _over(f"“{name}” lasts {info.duration_s:.0f} s", f"videos up to {cfg.max_duration_s:g} s")
    if info.num_frames > cfg.max_frames:  # whatever frame rate the file claims
        raise _over(f"“{name}” has {info.num_frames} frames", f"videos of up to {cfg.max_frames} frames")
    if info.width * info.height > cfg.max_pixels:  # then checked again on every decoded frame
        mp = cfg.max_pixels / 1e6
        raise _over(
            f"“{name}” is {info.width}×{info.height}", f"frames of up to {mp:.1f} megapixels (e.g. 3840×2160)"
        )


def check_prompt(prompt: str | None, cfg: DemoConfig) -> str:
    prompt = (prompt or "").strip()
    if not prompt:
        raise DemoError("Type a question first.")
    if len(prompt) > cfg.max_prompt_chars:
        raise _over(f"The question has {len(prompt)} characters", f"up to {cfg.max_prompt_chars}")
    return prompt


def _frame_gallery(shown) -> list:
    """(frame, caption) pairs of (frame, index, presentation time) triples."""
    return [(f, f"#{i} · {t:.1f}s") for f, i, t in shown]


def run_answer(vau, path: Path, prompt: str, sampling: SamplingConfig, cfg: DemoConfig, out: Path, progress):
    from holmesvau.anomaly_curve import save_anomaly_curve

    progress(0.05, desc="Selecting frames (ATS)" if sampling.use_ats else "Selecting frames")
    result = vau.analyze(path, prompt, sampling, max_new_tokens=cfg.max_new_tokens)
    progress(0.9, desc="Drawing")
    curve = save_anomaly_curve(result, out / "curve.png")  # with the frames the analysis decoded: none again
    status = f"Done · answered · {result.sampling} sampling · frames {result.frame_indices}"
    # the frames analyze decoded (at most holmesvau.frame_plan.SHOWN_FRAMES)
    frames, idx, times = result.frames, result.frame_indices, result.timestamps_s
    shown = [(frames[p], idx[p], times[p]) for p in sorted(frames)]
    return status, result.answer, str(curve), _frame_gallery(shown), "", None


def run_report(vau, path: Path, sampling: SamplingConfig, cfg: DemoConfig, out: Path, progress):
    from holmesvau.anomaly_curve import save_anomaly_curve
    from holmesvau.report import ReportConfig, build_report, write_report

    if vau.scorer is None:
        raise DemoError("The full report needs the anomaly scorer; restart the demo with a scorer.")
    n = sampling.select_frames
    clip_frames = min(8, max(2, n // 2))
    rc = ReportConfig(sampling, event_frames=n, clip_frames=clip_frames, max_new_tokens=cfg.max_new_tokens)

    def step(done: int, total: int, what: str) -> None:
        progress((done, total), desc=f"Report: {what}")

    progress(0.02, desc="Scoring the video (dense pass)")
    report = build_report(vau, path, rc, on_progress=step, model_name=cfg.model_name)
    json_path, html_path = write_report(report, out)
    d = report.data
    vidx = d["video_sampling"]["frame_indices"]
    thumbs = [t for _, t in report.thumbnails.get("video", [])]  # the report's own thumbnails, as arrays
    curve = save_anomaly_curve(
        (d["scores"]["dense_frame_indices"], d["scores"]["values"], vidx), out / "curve.png",
        frames=thumbs or False, fps=d["video"]["fps"],
    )  # fmt: skip
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
    method = d["video_sampling"]["method"]
    status = f"Done · report · {len(d['events'])} event(s) · video-level {method} sampling"
    fps = float(d["video"]["fps"] or 1.0)
    gallery = _frame_gallery((f, i, i / fps) for f, i in zip(thumbs, vidx))
    return status, "\n".join(lines), str(curve), gallery, frame, [str(json_path), str(html_path)]


_DEMO_DIR: Path | None = None


def demo_dir() -> Path:
    """This process's own folder for run outputs (mkdtemp: never a guessable path), removed when the demo exits."""
    global _DEMO_DIR
    if _DEMO_DIR is None or not _DEMO_DIR.is_dir():
        _DEMO_DIR = Path(tempfile.mkdtemp(prefix="holmesvau-demo-"))
        atexit.register(shutil.rmtree, str(_DEMO_DIR), True)
    return _DEMO_DIR


def fresh_output_dir(max_age_s: float = 3600.0) -> Path:
    """A new folder for one run's files in `demo_dir()`; older runs are pruned (Gradio has its own copies by then)."""
    root = demo_dir()
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def make_handler(vau, cfg: DemoConfig, upload_root: str | Path):
    import gradio as gr

    def handle(upload, example, prompt, n_frames, use_ats, mode, progress=gr.Progress(track_tqdm=True)):
        from holmesvau.video_open import decode_limits

        t0 = time.perf_counter()
        try:
            path = resolve_input(upload, example, cfg, upload_root)
            name = Path(upload).name if upload else example
            question = None if mode == MODES[1] else check_prompt(prompt, cfg)  # before any decoding
            check_video(path, cfg, name)
            out = fresh_output_dir()
            sampling = SamplingConfig(select_frames=int(n_frames), use_ats=bool(use_ats))
            with decode_limits(cfg.limits()):  # this request's decoding: the same limits, a watchdog per pass
                if question is None:
                    res = run_report(vau, path, sampling, cfg, out, progress)
                else:
                    res = run_answer(vau, path, question, sampling, cfg, out, progress)
        except DemoError as e:
            return f"**Error:** {e}", "", None, [], "", None
        except Exception as e:  # noqa: BLE001 - a failed run must not take the demo down
            print(f"[demo] run failed: {type(e).__name__}: {e}", file=sys.stderr)
            return f"**Error:** the analysis failed ({type(e).__name__}: {e}).", "", None, [], "", None
        status, *rest = res
        return (f"{status} · total {time.perf_counter() - t0:.1f} s", *rest)

    return handle


def build_parser(examples_dir: str | Path | None = None) -> argparse.ArgumentParser:
    """The demo's options; `examples_dir`: the default of --examples-dir (none: the released examples)."""
    p = argparse.ArgumentParser(
        description="HolmesVAU web demo (Gradio): upload a video or pick an example, ask a question or build the "
        "full report."
    )
    add_model_options(p)
    add = p.add_argument
    add("--tiny", action="store_true", help="a TINY RANDOM model instead of --model (UI testing)")
    add("--examples", nargs="*", default=None, help="example video files")
    add("--examples-dir", default=None if examples_dir is None else str(examples_dir),
        help="folder of example videos used when --examples is not given (default: the original repository's "
        "three examples, fetched once and verified)")  # fmt: skip
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=7860)
    add("--max-upload-mb", type=float, default=200.0)
    add("--max-duration-s", type=float, default=600.0)
    add("--max-frames", type=int, default=18_000, help="whatever fps the file claims")
    add("--max-megapixels", type=float, default=3840 * 2160 / 1e6, help="per frame")
    add("--max-prompt-chars", type=int, default=1000)
    add("--decode-timeout-s", type=float, default=30.0,
        help="stop decoding a video that makes no progress for this long")  # fmt: skip
    add("--max-decode-memory-mb", type=int, default=4096,
        help="memory cap of the child process that decodes each upload before the server does")  # fmt: skip
    add_generation_options(p)
    return p


def parse_args(argv: list[str] | None = None, examples_dir: str | Path | None = None) -> argparse.Namespace:
    """build_parser's options, parsed; --tiny together with --model is a usage error."""
    p = build_parser(examples_dir)
    p.set_defaults(model=None)  # tells "not given" from the default (the help still names DEFAULT_MODEL)
    args = p.parse_args(argv)
    if args.tiny and args.model is not None:
        p.error("--tiny replaces --model; pass one of them")
    args.model = args.model or DEFAULT_MODEL
    return args


def load_demo(args: argparse.Namespace):
    """(HolmesVAU, DemoConfig) from parsed options; DemoError when the model or scorer cannot be loaded."""
    given = args.examples or args.examples_dir
    examples = find_examples(args.examples, args.examples_dir) if given else released_examples(args.cache_dir)
    if args.tiny:
        print(f"[demo] --tiny: {TINY_LABEL}", file=sys.stderr)
        vau, name = tiny_pipeline(args.device), "tiny random InternVL2"
    else:
        from holmesvau.ats.weights import ScorerError
        from holmesvau.model import CheckpointError

        try:
            vau, name = load_vau(args), str(args.model)
        except (CheckpointError, ScorerError) as e:
            raise DemoError(f"{e}\n(to try the UI without the real model: python app.py --tiny)") from None
    cfg = DemoConfig(
        args.max_upload_mb, args.max_duration_s, args.max_new_tokens, examples, args.tiny, name,
        max_frames=args.max_frames, max_pixels=int(args.max_megapixels * 1e6),
        max_prompt_chars=args.max_prompt_chars, decode_stall_s=args.decode_timeout_s,
        decode_memory_mb=args.max_decode_memory_mb,
    )  # fmt: skip
    return vau, cfg
