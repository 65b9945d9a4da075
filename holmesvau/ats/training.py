"""Train the URDMU anomaly scorer on dense CLS features with frame-level labels from event boundaries.

Objectives (selectable by name; their weights are holmesvau.ats.scorer.LossWeights, whose defaults are UR-DMU's):
- "bce": frame-level BCE of every snippet score against its label from the annotated events (ours: Holmes-VAU
  trains the scorer with these, not only video-level labels);
- "mil": UR-DMU's video-level MIL term (BCE of the mean of the top-k snippet scores, k = T // 16 + 1);
- "memory": UR-DMU's memory-attention BCEs; "triplet": its memory-unit triplet loss; "kl": its KL regulariser of
  the normal-memory latent; "distance": its hinge pushing the anomaly latent's norm 100 above the normal one's.
The training forward and UR-DMU's terms live in holmesvau.ats.scorer (values and gradients match the original:
tests/test_urdmu_loss_parity.py); this module selects, weights and optimises them.

Every step draws `batch_size` normal and `batch_size` anomalous videos (BalancedSampler), each resampled to
`snippets` snippets (training_data.fixed_length). Adam (lr 1e-4, weight decay 5e-5 as UR-DMU), seeded.
Validation scores whole videos (eval mode), spreads snippet scores over their frames and computes frame-level
AUC / AP with holmesvau.eval.detection; the best state by `select_metric` is kept and exported.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from holmesvau.ats.scorer import (
    URDMU,
    LossWeights,
    ScorerCheckpointError,
    URDMUTrainOutput,
    objectives,
    scorer_from_state,
    urdmu_terms,
    weighted_sum,
)
from holmesvau.ats.training_data import BalancedSampler, ScorerVideo, make_batch
from holmesvau.files import atomic_open, json_safe
from holmesvau.jsonl import JsonlAppender

LOSSES = ("bce", "mil", "memory", "triplet", "kl", "distance")
SELECT_METRICS = ("auc", "ap", "auc_anomalous_videos", "ap_anomalous_videos")


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 16  # per class: a step sees batch_size normal + batch_size anomalous videos
    snippets: int = 200
    lr: float = 1e-4
    weight_decay: float = 5e-5
    seed: int = 0
    losses: tuple[str, ...] = LOSSES
    weights: LossWeights = field(default_factory=LossWeights)
    pooling: str = "mean"  # "mean" | "random" (training_data.fixed_length)
    val_every: int = 100
    log_every: int = 10
    select_metric: str = "auc"  # one of SELECT_METRICS
    device: str = "cpu"
    hidden: int = 512
    memory_slots: int = 60

    def __post_init__(self):
        self.losses = tuple(self.losses)
        bad = [x for x in self.losses if x not in LOSSES]
        if bad or not self.losses:
            raise ValueError(
                f"unknown or no losses {bad or list(self.losses)}; choose from {', '.join(LOSSES)}"
            )
        for name in ("steps", "batch_size", "snippets", "val_every", "log_every", "hidden", "memory_slots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        bad_w = {k: v for k, v in asdict(self.weights).items() if not (math.isfinite(v) and v >= 0)}
        if bad_w:
            raise ValueError(f"loss weights must be finite numbers >= 0, got {bad_w}")
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(
                f"select_metric must be one of {', '.join(SELECT_METRICS)}, got {self.select_metric!r}"
            )


def parse_losses(text: str) -> tuple[str, ...]:
    """'bce,mil, kl' -> ('bce', 'mil', 'kl'); 'all' -> every loss."""
    if text.strip() == "all":
        return LOSSES
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_loss_weights(text: str | None) -> LossWeights:
    """'memory=0.2, kl=0' -> LossWeights with those fields changed (the others keep UR-DMU's defaults)."""
    if not text:
        return LossWeights()
    changes = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in LOSSES:
            raise ValueError(
                f"loss weight {item.strip()!r}: expected NAME=NUMBER with NAME one of {', '.join(LOSSES)}"
            )
        try:
            changes[name] = float(value)
        except ValueError:
            raise ValueError(f"loss weight {item.strip()!r}: {value.strip()!r} is not a number") from None
    return replace(LossWeights(), **changes)


def scorer_loss(
    out: URDMUTrainOutput,
    snippet_labels: torch.Tensor,
    video_labels: torch.Tensor,
    losses: tuple[str, ...] = LOSSES,
    weights: LossWeights | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the selected objectives (module docstring) -> (total, {name: unweighted value}).
    With every UR-DMU objective and no "bce" this is UR-DMU's own loss (holmesvau.ats.scorer.urdmu_loss)."""
    terms = objectives(urdmu_terms(out, video_labels))
    terms["bce"] = F.binary_cross_entropy(out.scores, snippet_labels.to(out.scores.dtype))
    total = weighted_sum(terms, losses, weights)
    return total, {name: float(terms[name].detach()) for name in losses}


@torch.no_grad()
def score_videos(model: URDMU, videos: list[ScorerVideo], device: str = "cpu") -> dict[str, np.ndarray]:
    """(T,) snippet scores of each whole video, eval mode (the path the sampler uses)."""
    was_training = model.training
    model.eval()
    out = {}
    for v in videos:
        x = torch.from_numpy(v.features).to(device)[None]
        out[v.name] = model(x)[0].float().cpu().numpy()
    model.train(was_training)
    return out


def validate(model: URDMU, videos: list[ScorerVideo], device: str = "cpu") -> dict:
    """Frame-level AUC / AP (holmesvau.eval.detection) of the model on whole videos; per-video entries dropped."""
    from holmesvau.eval.detection import evaluate_detection, expand_scores

    snippet = score_videos(model, videos, device)
    frame_scores = {
        v.name: expand_scores(snippet[v.name], v.n_frames, v.stride, v.frame_indices) for v in videos
    }
    report = evaluate_detection(frame_scores, {v.name: v.frame_labels for v in videos})
    return {k: report[k] for k in ("auc", "ap", "auc_anomalous_videos", "ap_anomalous_videos", "n_videos")}


@dataclass
class TrainResult:
    model: URDMU  # holds the best state (or the last one without validation)
    best_step: int
    best_metrics: dict | None
    history: list[dict]
    seconds: float


def train_scorer(
    train: list[ScorerVideo],
    val: list[ScorerVideo] | None = None,
    cfg: TrainConfig | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
    init_state: dict | None = None,
) -> TrainResult:
    """Train a URDMU (input dim from the features) on `train`, validating on `val` every cfg.val_every steps.
    init_state: start from these weights (e.g. the released scorer's state dict) instead of a random init."""
    import random

    from tqdm import tqdm

    cfg = cfg or TrainConfig()
    if not train:
        raise ValueError("no training videos")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dim = train[0].features.shape[1]
    if val and any(v.features.shape[1] != dim for v in val):
        raise ValueError(f"validation features do not all have the training feature dim {dim}")
    sizes = {"hidden": cfg.hidden, "a_slots": cfg.memory_slots, "n_slots": cfg.memory_slots}
    if init_state is None:
        model = URDMU(input_size=dim, **sizes)
    else:
        try:
            model = scorer_from_state(init_state, "initial weights", **sizes)
        except ScorerCheckpointError as e:
            raise ValueError(str(e)) from e
        if model.input_dim != dim:
            raise ValueError(
                f"the initial weights take {model.input_dim}-d features but the training features are {dim}-d"
            )
    model.to(cfg.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    sampler = BalancedSampler([v.anomalous for v in train], cfg.batch_size, cfg.seed)
    log_file = JsonlAppender(log_path, fresh=True) if log_path is not None else None

    def log(rec: dict) -> None:  # train_log.jsonl: flushed per line, so an interrupted run keeps its log
        if log_file is not None:
            log_file.write(json_safe(rec))

    history: list[dict] = []
    best_score, best_step, best_metrics, best_state = -float("inf"), cfg.steps, None, None
    t0 = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="train scorer", unit="step", disable=not progress)
    with log_file or contextlib.nullcontext():
        log({"config": {**asdict(cfg), "input_dim": dim, "n_train": len(train), "n_val": len(val or [])}})
        for step in bar:
            n_idx, a_idx = sampler.next()
            x, y, v = make_batch(train, n_idx + a_idx, cfg.snippets, cfg.pooling, rng)
            out = model.forward_train(torch.from_numpy(x).to(cfg.device))
            y, v = torch.from_numpy(y).to(cfg.device), torch.from_numpy(v).to(cfg.device)
            total, parts = scorer_loss(out, y, v, cfg.losses, cfg.weights)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if step % cfg.log_every == 0 or step == 1:
                loss = float(total.detach())
                history.append({"step": step, "loss": loss, **parts, "time_s": time.perf_counter() - t0})
                log(history[-1])
                bar.set_postfix(loss=f"{loss:.4f}")
            if val and (step % cfg.val_every == 0 or step == cfg.steps):
                metrics = validate(model, val, cfg.device)
                score = metrics.get(cfg.select_metric)
                history.append({"step": step, "val": metrics})
                log(history[-1])
                if score is not None and score > best_score:
                    best_score, best_step, best_metrics = score, step, metrics
                    best_state = copy.deepcopy({k: t.detach().cpu() for k, t in model.state_dict().items()})
                    log({"step": step, "best": cfg.select_metric, "value": score})
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, best_step, best_metrics, history, time.perf_counter() - t0)


def export_scorer(model: URDMU, path: str | Path) -> Path:
    """Save the state dict in the released `anomaly_scorer.pth` layout: a plain dict of float32 CPU tensors
    (the URDMU module's own parameter names), all or nothing (holmesvau.files.atomic_open)."""
    state = {
        k: t.detach().to("cpu", torch.float32).contiguous().clone() for k, t in model.state_dict().items()
    }
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    return Path(path)
