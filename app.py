"""HolmesVAU web demo (Gradio): upload a video or pick an example, ask a question or build the full report.

    python app.py                                              # HolmesVAU-2B (as inference.py) + the released scorer
    python app.py --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth --device cuda \
        --examples clips/a.mp4 clips/b.mp4 --port 7860 --max-upload-mb 200 --max-duration-s 600
    python app.py --tiny                                       # TINY RANDOM model: tries the UI, answers are noise

Open http://127.0.0.1:7860. Examples: the files given with --examples, else the videos of --examples-dir, else the
original repository's robbery, car_accident and earthquake clips (fetched once and verified). The server reads only
uploads and the examples it listed itself (the browser sends an example's name). Limits hold whatever a file claims
(size, duration, frame count, resolution on every decoded frame), and each upload is decoded first in a
memory-capped child process (--decode-timeout-s, --max-decode-memory-mb; docs/video.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from holmesvau.cli import DEFAULT_PROMPT
from holmesvau.demo import (
    MODES,
    TINY_LABEL,
    VIDEO_EXTS,
    DemoConfig,
    DemoError,
    load_demo,
    make_handler,
    parse_args,
)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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
                upload = gr.File(label=f"Video (≤ {cfg.max_upload_mb:g} MB, ≤ {cfg.max_duration_s:g} s)",
                                 file_types=list(VIDEO_EXTS), type="filepath", elem_id="upload")  # fmt: skip
                example = gr.Dropdown(choices=list(cfg.examples), value=None, label="…or an example",
                                      elem_id="example", visible=bool(cfg.examples))  # fmt: skip
                prompt = gr.Textbox(DEFAULT_PROMPT, label="Question", lines=2, max_length=cfg.max_prompt_chars,
                                    elem_id="prompt")  # fmt: skip
                n_frames = gr.Slider(
                    2, 32, value=12, step=1, label="Frames given to the model", elem_id="frames"
                )
                has_scorer = vau.scorer is not None
                use_ats = gr.Checkbox(has_scorer, label="Anomaly-focused sampling (ATS)", interactive=has_scorer,
                                      elem_id="ats")  # fmt: skip
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
        inputs = [upload, example, prompt, n_frames, use_ats, mode]
        run.click(handler, inputs, [status, answer, curve, strip, report, files], concurrency_limit=1)
    return demo


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        vau, cfg = load_demo(args)
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    demo = build_demo(vau, cfg)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, max_file_size=f"{int(args.max_upload_mb * 2**20)}b",
        show_error=True, footer_links=[],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
