"""HolmesVAU end to end: video + question -> answer, with the anomaly curve and the frames the model looked at.

    from holmesvau import HolmesVAU
    vau = HolmesVAU.from_pretrained()   # ppxin321/HolmesVAU-2B + the released ATS scorer (both fetched once)
    result = vau.analyze("robbery.mp4", "Could you specify the anomaly events present in the video?")
    print(result.answer, result.frame_indices)

Sampling options travel in one holmesvau.frame_plan.SamplingConfig (the original's defaults); frame selection is
holmesvau.frame_plan.plan_frames, the original's rule: ATS when enabled, a scorer is loaded and the video has more
than `dense_stride * select_frames` frames, else uniform. ATS streams every `dense_stride`-th frame through InternViT
(only CLS features are kept); then only the selected frames are decoded again for the MLLM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from holmesvau.frame_plan import FramePlan, SamplingConfig, shown_positions
from holmesvau.model import DEFAULT_MODEL, ChatOutput, LoadedModel, chat, load_model, video_question


@dataclass
class AnalysisResult:
    answer: str
    prompt: str  # the question sent to the model (frame lines + the user's prompt)
    frame_indices: list[int]  # into the original video
    timestamps_s: list[float]
    dense_frame_indices: list[int] | None = None  # when ATS ran
    dense_scores: list[float] | None = None
    sampling: str = "uniform"  # "ats" | "uniform" | "given"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    video: dict = field(default_factory=dict)  # VideoInfo fields
    # for display, never decoded again: position in frame_indices -> (H, W, 3) uint8, SHOWN_FRAMES at most
    frames: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(replace(self, frames={})).items() if k != "frames"}


@dataclass
class DenseScores:
    """Anomaly scores of the dense plan of one video (what detection evaluation and ATS need)."""

    frame_indices: np.ndarray  # (T,) int64
    scores: np.ndarray  # (T,) float32
    info: object  # holmesvau.video.VideoInfo
    stride: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PlannedFrames:
    """What `HolmesVAU.plan` decided for one video."""

    plan: FramePlan  # frame indices + sampling method
    dense: DenseScores | None  # the dense scores ATS sampled from (None unless plan.sampling == "ats")
    info: object  # holmesvau.video.VideoInfo
    timings: dict[str, float] = field(default_factory=dict)


class HolmesVAU:
    """A loaded MLLM (`.lm`) and, optionally, the ATS anomaly scorer (`.scorer`, None when disabled)."""

    def __init__(self, lm: LoadedModel, scorer: torch.nn.Module | None = None, resize: str = "torch"):
        self.lm = lm
        self.scorer = scorer
        self.resize = resize  # holmesvau.preprocess resize method ("pil" reproduces the original bit for bit)
        # held by the dense ATS pass and by callers answering from another thread (holmesvau.predict's batches
        # beside its background video preparation): the model runs one job at a time
        self.model_lock = threading.RLock()
        if scorer is not None:
            self._check_scorer_dim()

    @classmethod
    def from_pretrained(
        cls, model: str | Path = DEFAULT_MODEL, scorer: str | Path | bool | None = None,
        device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
        cache_dir: str | Path | None = None,
    ) -> HolmesVAU:  # fmt: skip
        """`model`: hub id, original or converted folder. `scorer`: None = the released one (holmesvau.released), a
        path or https URL (optionally `#sha256=...`), or False to disable ATS; resolved first, so it fails fast."""
        from holmesvau.ats.weights import load_scorer, resolve_scorer

        scorer_path = (
            None if scorer is False else resolve_scorer(None if scorer is True else scorer, cache_dir)
        )
        lm = load_model(model, device=device, dtype=dtype, cache_dir=cache_dir)
        sc = None if scorer_path is None else load_scorer(scorer_path, device=lm.device, cache_dir=cache_dir)
        return cls(lm, sc)

    @property
    def scores_source(self) -> str | None:
        """Fingerprint of what makes this pipeline's dense scores (holmesvau.ats.fingerprint), stored in score files
        so a run reuses only scores it would compute itself. None without a scorer."""
        if self.scorer is None:
            return None
        key = (id(self.scorer), self.resize)
        if getattr(self, "_source", (None, None))[0] != key:
            from holmesvau.ats.fingerprint import scores_source

            self._source = (key, scores_source(self.scorer, self.lm.model.model.vision_tower, self.resize))
        return self._source[1]

    def _check_scorer_dim(self) -> None:
        from holmesvau.ats.weights import ScorerError

        want = getattr(self.scorer, "input_dim", None)
        if not isinstance(want, int):
            raise ScorerError(
                f"the anomaly scorer ({type(self.scorer).__name__}) does not say which feature size it takes: "
                "it needs an integer `input_dim` attribute (holmesvau.ats.URDMU has one)"
            )
        have = self.lm.vision_hidden_size
        if want != have:
            raise ScorerError(
                f"the anomaly scorer takes {want}-d features but this model's vision encoder gives {have}-d "
                f"({self.lm.path}); pass a scorer trained on this encoder, or disable ATS (--no-ats / scorer=False)"
            )

    # -- stages ------------------------------------------------------------------------------------------------
    def dense_scores(
        self, video: str | Path, dense_stride: int = SamplingConfig.dense_stride, progress: bool = True
    ) -> DenseScores:
        """Anomaly score of every `dense_stride`-th frame (streaming: decode -> preprocess -> ViT -> scorer)."""
        from holmesvau.ats import extract_dense_features
        from holmesvau.model import vit_encoder

        if self.scorer is None:
            raise RuntimeError(
                "no anomaly scorer loaded (ATS disabled); load one with from_pretrained(scorer=...)"
            )
        with self.model_lock:
            dense = extract_dense_features(  # uint8 tiles go to the encoder's device, normalised there
                video, vit_encoder(self.lm), stride=dense_stride, resize=self.resize, progress=progress,
                device=self.lm.device,
            )  # fmt: skip
            t = time.perf_counter()
            scores = score_features(self.scorer, dense.features)
        scorer_s = time.perf_counter() - t
        # our stage name <- the extractor's ("decode" runs in a background thread, overlapping "vit")
        stages = {"decode": "decode", "preprocess": "preprocess", "vit": "encode", "ats_dense_wall": "total"}
        timings = {ours: dense.timings.get(theirs, 0.0) for ours, theirs in stages.items()}
        timings["scorer"] = scorer_s
        idx = np.asarray(dense.frame_indices, dtype=np.int64)
        return DenseScores(idx, scores, dense.info, int(dense_stride), timings)

    def ask(
        self, video: str | Path, prompt: str, frame_indices: Sequence[int], max_new_tokens: int = 1024
    ) -> tuple[str, ChatOutput]:
        """Ask about explicit frames of a video (indices into the video)."""
        from holmesvau.preprocess import frames_to_pixel_values
        from holmesvau.video import read_frames

        pv = frames_to_pixel_values(read_frames(video, list(frame_indices)), resize=self.resize)
        out = chat(self.lm, pv, video_question(prompt, len(frame_indices)), max_new_tokens=max_new_tokens)
        return out.answer, out

    def plan(
        self, video: str | Path, sampling: SamplingConfig = SamplingConfig(), progress: bool = True,
        dense: DenseScores | None = None,
    ) -> PlannedFrames:  # fmt: skip
        """The frames the MLLM will see (holmesvau.frame_plan: ATS / uniform / given), computing the dense scores
        only when ATS samples. `dense`: precomputed dense scores to reuse."""
        from holmesvau.frame_plan import FrameIndexError, needs_dense_scores, plan_frames
        from holmesvau.video import probe
        from holmesvau.video_open import VideoError

        t0 = time.perf_counter()
        info = dense.info if dense is not None else probe(video)
        timings = {"probe": time.perf_counter() - t0}
        try:
            if needs_dense_scores(info.num_frames, sampling, self.scorer is not None):
                if dense is None or dense.stride != sampling.dense_stride:
                    dense = self.dense_scores(video, sampling.dense_stride, progress)
                timings.update(dense.timings)  # keys of their own: no stage is counted twice
            else:
                dense = None
            scores, dense_indices = (None, None) if dense is None else (dense.scores, dense.frame_indices)
            plan = plan_frames(info.num_frames, sampling, scores=scores, dense_indices=dense_indices)
        except FrameIndexError as e:  # about this video: name it
            raise VideoError(f"{video}: {e}") from None
        return PlannedFrames(plan, dense if plan.sampling == "ats" else None, info, timings)

    def analyze(
        self, video: str | Path, prompt: str, sampling: SamplingConfig = SamplingConfig(), max_new_tokens: int = 1024,
        progress: bool = True, dense: DenseScores | None = None,
    ) -> AnalysisResult:  # fmt: skip
        """Select frames (ATS / uniform / given), ask the MLLM. `dense`: precomputed dense scores to reuse."""
        planned = self.plan(video, sampling, progress, dense)
        idx, dense, timings = list(planned.plan.indices), planned.dense, planned.timings
        from holmesvau.model.batch import AnswerRequest, FrameSet, answer_batch
        from holmesvau.preprocess import frames_to_tiles
        from holmesvau.video import read_frames_timed

        t0 = time.perf_counter()
        frames, times_s = read_frames_timed(video, idx)  # each frame's presentation time (exact for VFR)
        t1 = time.perf_counter()
        tiles = frames_to_tiles(frames, resize=self.resize)  # uint8: normalised on the model's device
        timings["decode"] = timings.get("decode", 0.0) + t1 - t0
        timings["preprocess"] = timings.get("preprocess", 0.0) + time.perf_counter() - t1
        question = video_question(prompt, len(idx))
        t0 = time.perf_counter()
        out = answer_batch(self.lm, [AnswerRequest(FrameSet(tiles=tiles), question, max_new_tokens)], 1)[0]
        timings["generate"] = time.perf_counter() - t0
        return AnalysisResult(
            answer=out.answer,
            prompt=question,
            frame_indices=idx,
            timestamps_s=[round(t, 3) for t in times_s],
            dense_frame_indices=None if dense is None else dense.frame_indices.tolist(),
            dense_scores=None if dense is None else [float(s) for s in dense.scores],
            sampling=planned.plan.sampling,
            timings={k: round(v, 4) for k, v in timings.items()},
            video=asdict(planned.info),
            frames={p: np.array(frames[p]) for p in shown_positions(len(idx))},  # copies: the rest is freed
        )


@torch.inference_mode()
def score_features(scorer: torch.nn.Module, features) -> np.ndarray:
    """(T, D) features -> (T,) float32 anomaly scores in [0, 1]."""
    p = next(scorer.parameters())
    x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
    x = x.to(p.device, p.dtype).reshape(1, -1, x.shape[-1])
    return scorer(x).reshape(-1).float().cpu().numpy().astype(np.float32)
