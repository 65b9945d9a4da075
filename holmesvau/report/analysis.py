"""The hierarchical report: events from the anomaly curve, then the MLLM asked at event, clip and video level.

    from holmesvau.pipeline import HolmesVAU
    from holmesvau.report import ReportConfig, build_report, write_report
    vau = HolmesVAU.from_pretrained()
    report = build_report(vau, "robbery.mp4", ReportConfig())
    write_report(report, "report_dir/")        # report_dir/report.json + report_dir/report.html

One dense pass gives the anomaly scores and the events (`localize_events`). Each event is asked the three HIVAU
event-level tasks on frames sampled inside it, each of its clips (a few seconds) gets a caption, and the whole video
is asked the three tasks on its ATS (else uniform) frames. Each prompt is an independent single-turn chat, as in the
HIVAU test set; each frame is decoded and encoded once, and the questions of one frame set are generated in one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from holmesvau.frame_plan import SamplingConfig, plan_frames

from .frames import plan_event, share_with_ats
from .localize import localize_events, resolved_threshold
from .schema import SCHEMA_VERSION, TASKS, validate_report

# One prompt per task, verbatim from the HIVAU-70k test instructions (merge_instruction_test_final.jsonl); the
# judgement prompt is the one that asks both whether and which anomaly.
TASK_PROMPTS = {
    "judgement": "Determine whether there are anomaly events in the video and the specific name of the anomaly.",
    "description": "Could you specify the anomaly events present in the video?",
    "analysis": "Can you provide the reasons for considering it anomalous?",
}
CLIP_CAPTION_PROMPT = "Provide a brief description of the given video clip."


@dataclass
class ReportConfig:
    # video-level sampling (select_frames for the video-level questions, ATS or uniform); events always come
    # from the dense scores, computed every sampling.dense_stride-th frame
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    event_frames: int = 12  # frames sampled uniformly inside each event
    clip_frames: int = 8  # frames per clip caption
    clip_seconds: float = 4.0  # target clip length; an event gets ceil(duration / clip_seconds) clips ...
    max_clips: int = 4  # ... at most this many
    max_events: int | None = 8  # keep the events with the highest peaks (None: all); bounds the MLLM calls
    threshold: float | None = None  # None: derived from the curve (see holmesvau.report.localize)
    smooth: int = 3
    merge_gap_s: float = 2.0
    min_duration_s: float = 1.0
    max_new_tokens: int = 512
    thumb_width: int = 160  # thumbnails in the HTML report

    def __post_init__(self):
        if self.sampling.frame_indices is not None:
            raise ValueError("the report samples its own frames: its SamplingConfig takes no frame_indices")


@dataclass
class Report:
    data: dict  # the content of report.json (matches REPORT_SCHEMA)
    # "video"/"event<i>" -> [(frame index, thumbnail (h, thumb_width, 3) uint8)]
    thumbnails: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    dense: object = None  # holmesvau.pipeline.DenseScores, reusable by HolmesVAU.analyze(dense=...)


ProgressFn = Callable[[int, int, str], None]


class _Asker:
    """Asks the MLLM about frame sets, counting steps for the progress bar / callback. Every frame is one 448 tile,
    so its image features do not depend on the set it is in: they are computed once per frame (`frame_set`)."""

    def __init__(self, vau, config: ReportConfig, total: int, progress: bool, on_progress: ProgressFn | None):
        from tqdm.auto import tqdm

        from holmesvau.model.batch import BatchStats

        self.vau, self.config = vau, config
        self.bar = tqdm(total=total, desc="report", unit="question", disable=not progress)
        self.on_progress, self.done, self.total = on_progress, 0, total
        self.features: dict[int, object] = {}  # frame index -> its image features (tokens per tile, hidden)
        self.stats = BatchStats()

    def frame_set(self, frames: dict[int, np.ndarray], indices: Sequence[int]):
        """A FrameSet of `indices` made of per-frame features, encoding only the frames not seen yet."""
        import torch

        from holmesvau.model.batch import FrameSet, image_features
        from holmesvau.preprocess import frames_to_tiles

        missing = [i for i in dict.fromkeys(int(i) for i in indices) if i not in self.features]
        if missing:
            resize = getattr(self.vau, "resize", "torch")
            tiles = frames_to_tiles(np.stack([frames[i] for i in missing]), resize=resize)
            feats = image_features(self.vau.lm, FrameSet(tiles=tiles), stats=self.stats)
            self.features.update(zip(missing, feats))
        idx = tuple(int(i) for i in indices)
        return FrameSet(features=torch.stack([self.features[i] for i in idx]), key=idx)

    def forget(self, keep: Sequence[int] = ()) -> None:
        """Drop the cached features of frames other than `keep` (bounds memory to one event's frames)."""
        self.features = {i: f for i, f in self.features.items() if i in set(keep)}

    def ask(self, items: Sequence[tuple[object, str, str]]) -> list[str]:
        """Answers to [(frame set, prompt, what)], generated together."""
        from holmesvau.model import video_question
        from holmesvau.model.batch import AnswerRequest, answer_batch

        self.bar.set_postfix_str(items[0][2])
        if self.on_progress:
            self.on_progress(self.done, self.total, items[0][2])
        reqs = [
            AnswerRequest(fs, video_question(prompt, fs.num_tiles), self.config.max_new_tokens)
            for fs, prompt, _ in items
        ]
        answers = [o.answer for o in answer_batch(self.vau.lm, reqs, len(reqs), stats=self.stats)]
        self.done += len(items)
        self.bar.update(len(items))
        return answers

    def close(self) -> None:
        if self.on_progress:
            self.on_progress(self.done, self.total, "done")
        self.bar.close()


def _read(video, indices: Sequence[int]) -> dict[int, np.ndarray]:
    from holmesvau.video import read_frames

    wanted = sorted(set(int(i) for i in indices))
    return dict(zip(wanted, read_frames(video, wanted)))


def _model_metadata(vau, name: str | None) -> dict:
    meta = getattr(vau.lm, "metadata", None)
    meta = dict(meta) if isinstance(meta, dict) else {"name": str(getattr(vau.lm, "path", ""))}
    if name:
        meta["name"] = name
    return meta


def build_report(
    vau,
    video: str | Path,
    config: ReportConfig | None = None,
    progress: bool = True,
    on_progress: ProgressFn | None = None,
    dense=None,
    model_name: str | None = None,
) -> Report:
    """Analyse `video` at event, clip and video level with a `HolmesVAU` pipeline (which needs its scorer).

    dense: precomputed `vau.dense_scores(video, config.sampling.dense_stride)` to reuse. on_progress(done, total, what) is
    called before each question (for UIs); `progress` shows a tqdm bar. Returns the report (not yet written).
    """
    from holmesvau.preprocess import scale_to_width

    config = config or ReportConfig()
    if getattr(vau, "scorer", None) is None:
        raise ValueError(
            "the report localises events on the anomaly scores, so it needs the ATS anomaly scorer: "
            "load the pipeline with a scorer (drop --no-ats / pass --scorer PATH)"
        )
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    stride = config.sampling.dense_stride
    if dense is None or dense.stride != stride:
        dense = vau.dense_scores(video, stride, progress=progress)
    timings["dense_scores"] = time.perf_counter() - t_start
    info = dense.info
    fps, n_frames = float(info.fps), int(info.num_frames)
    if not fps > 0:
        raise ValueError(f"{video}: unknown frame rate, cannot place events in time")

    t0 = time.perf_counter()
    loc = dict(smooth=config.smooth, merge_gap_s=config.merge_gap_s, min_duration_s=config.min_duration_s)
    events = localize_events(dense.scores, dense.stride, fps, config.threshold, n_frames=n_frames, **loc)
    found = len(events)
    if config.max_events is not None and len(events) > config.max_events:
        keep = sorted(events, key=lambda e: -e.peak_score)[: config.max_events]
        events = sorted(keep, key=lambda e: e.start_frame)
    timings["localize"] = time.perf_counter() - t0

    plans = [
        plan_event(ev.start_frame, ev.end_frame, fps, config.event_frames, config.clip_frames,
                   config.clip_seconds, config.max_clips)
        for ev in events
    ]  # fmt: skip
    total = len(TASKS) * (1 + len(events)) + sum(len(p.clips) for p in plans)
    asker = _Asker(vau, config, total, progress, on_progress)
    thumbs: dict[str, list[tuple[int, np.ndarray]]] = {}
    try:
        t0 = time.perf_counter()
        plan = plan_frames(n_frames, config.sampling, scores=dense.scores, dense_indices=dense.frame_indices)
        vidx, method = list(plan.indices), plan.sampling
        if method == "ats":  # where an ATS snippet meets an event's or clip's segment, one frame serves both
            sets = [u for p in plans for u in (*p.clips, *([p.own] if p.own else []))]
            vidx = share_with_ats(vidx, sets, dense.stride)
        frames = _read(video, vidx)
        fs = asker.frame_set(frames, vidx)
        video_answers = dict(zip(TASKS, asker.ask([(fs, TASK_PROMPTS[t], f"video {t}") for t in TASKS])))
        thumbs["video"] = [(i, scale_to_width(frames[i], config.thumb_width)) for i in vidx]
        timings["video_level"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        out_events = []
        for k, (ev, p) in enumerate(zip(events, plans)):
            eidx, clips = p.frames, [(c.start, c.end, c.frames) for c in p.clips]
            frames = _read(video, [*eidx, *(i for _, _, c in clips for i in c)])
            fs = asker.frame_set(frames, eidx)
            items = [(fs, TASK_PROMPTS[t], f"event {k + 1} {t}") for t in TASKS]
            items += [
                (asker.frame_set(frames, cidx), CLIP_CAPTION_PROMPT, f"event {k + 1} clip {j + 1}")
                for j, (_, _, cidx) in enumerate(clips)
            ]
            got = asker.ask(items)  # the event's three questions and its clips' captions, in one batch
            out_clips = [
                {"start_s": a / fps, "end_s": b / fps, "frame_indices": cidx, "caption": caption}
                for (a, b, cidx), caption in zip(clips, got[len(TASKS) :])
            ]
            asker.forget(keep=vidx)
            thumbs[f"event{k}"] = [(i, scale_to_width(frames[i], config.thumb_width)) for i in eidx]
            answers = dict(zip(TASKS, got))
            out_events.append({**asdict(ev), "frame_indices": eidx, "answers": answers, "clips": out_clips})
        timings["events"] = time.perf_counter() - t0
    finally:
        asker.close()
    timings["total"] = time.perf_counter() - t_start

    data = {
        "schema_version": SCHEMA_VERSION,
        "video": {
            "path": str(video),
            "fps": fps,
            "n_frames": n_frames,
            "duration_s": n_frames / fps,
            "width": int(info.width),
            "height": int(info.height),
        },
        "events": out_events,
        "video_answers": video_answers,
        "video_sampling": {"method": method, "frame_indices": vidx},
        "scores": {
            "dense_frame_indices": [int(i) for i in dense.frame_indices],
            "values": [float(min(1.0, max(0.0, s))) for s in dense.scores],
            "stride": int(dense.stride),
        },
        "localization": {
            "threshold": resolved_threshold(dense.scores, config.threshold, config.smooth),
            "threshold_source": "default" if config.threshold is None else "given",
            **loc,
            "events_found": found,
        },
        "prompts": {**TASK_PROMPTS, "clip_caption": CLIP_CAPTION_PROMPT},
        "model": _model_metadata(vau, model_name),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return Report(data, thumbs, dense)


def write_report(report: Report, out_dir: str | Path, validate: bool = True) -> tuple[Path, Path]:
    """Write `report.json` and the self-contained `report.html` into `out_dir` -> (json path, html path)."""
    from holmesvau.files import atomic_write_json, atomic_write_text

    from .html import render_html

    if validate:
        validate_report(report.data)
    out = Path(out_dir)
    json_path, html_path = out / "report.json", out / "report.html"
    html = render_html(report.data, report.thumbnails)  # both rendered before either is written
    atomic_write_json(json_path, report.data)  # strict JSON: a NaN is an error, not `NaN` in the file
    atomic_write_text(html_path, html)
    return json_path, html_path
