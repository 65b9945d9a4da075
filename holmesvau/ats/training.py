"""Train the URDMU anomaly scorer on dense CLS features with frame-level labels from event boundaries.

Objectives (selectable by name; weights in LossWeights, defaults as UR-DMU weighs its terms):
- "bce": frame-level BCE between every snippet score and its label from the annotated events (Holmes-VAU trains
  the scorer with these, not only video-level labels); weight 1.
- "mil": UR-DMU's video-level MIL term: BCE of the mean of the top-k snippet scores (k = T // 16 + 1) against
  the video label; weight 1.
- "memory": UR-DMU's memory-attention BCEs (abnormal videos attend the anomaly memory, normal videos the normal
  memory and not the anomaly one, abnormal videos have some snippets unlike the normal memory); weight 0.1.
- "triplet": memory-unit triplet loss (anchor: normal-memory-selected snippets of normal videos, positive:
  normal-memory-selected snippets of abnormal videos, negative: anomaly-memory-selected ones); weight 0.1.
- "kl": KL regulariser of the normal-memory latent N(mu, exp(logvar)) against N(0, I); weight 0.001.
- "distance": UR-DMU's hinge pushing the anomaly latent's norm 100 above the normal one's; weight 0.0001.
The scorer's training forward (URDMU.forward_train) and UR-DMU's loss terms (urdmu_loss) live in
holmesvau.ats.scorer; this module selects, weights and optimises them.

Every step draws `batch_size` normal and `batch_size` anomalous videos (BalancedSampler), each resampled to
`snippets` snippets (training_data.fixed_length). Adam (lr 1e-4, weight decay 5e-5 as UR-DMU), seeded.
Validation scores whole videos (eval mode), spreads snippet scores over their frames and computes frame-level
AUC / AP with holmesvau.eval.detection; the best state by `select_metric` is kept and exported.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from holmesvau.ats.scorer import URDMU, URDMUTrainOutput, urdmu_loss
from holmesvau.ats.training_data import BalancedSampler, ScorerVideo, make_batch

LOSSES = ("bce", "mil", "memory", "triplet", "kl", "distance")


@dataclass
class LossWeights:
    bce: float = 1.0
    mil: float = 1.0
    memory: float = 0.1
    triplet: float = 0.1
    kl: float = 0.001
    distance: float = 0.0001


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
    select_metric: str = "auc"  # "auc" | "ap" | "auc_anomalous_videos" | "ap_anomalous_videos"
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
        if self.steps < 1 or self.snippets < 1:
            raise ValueError("steps and snippets must be >= 1")


def parse_losses(text: str) -> tuple[str, ...]:
    """'bce,mil, kl' -> ('bce', 'mil', 'kl'); 'all' -> every loss."""
    if text.strip() == "all":
        return LOSSES
    return tuple(x.strip() for x in text.split(",") if x.strip())


def scorer_loss(
    out: URDMUTrainOutput,
    snippet_labels: torch.Tensor,
    video_labels: torch.Tensor,
    losses: tuple[str, ...] = LOSSES,
    weights: LossWeights | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the selected objectives (module docstring) -> (total, {name: unweighted value})."""
    w = weights or LossWeights()
    _, p = urdmu_loss(out, video_labels)
    terms = {
        "bce": F.binary_cross_entropy(out.scores, snippet_labels.to(out.scores.dtype)),
        "mil": p["att_loss"],
        "memory": p["A_loss"] + p["N_Aatt"] + p["N_loss"] + p["A_Nloss"],
        "triplet": out.triplet_margin,
        "kl": out.kl_loss,
        "distance": out.distance,
    }
    total = sum(getattr(w, name) * terms[name] for name in losses)
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


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Log:
    """train_log.jsonl writer (one JSON object a line, flushed, so an interrupted run keeps its log)."""

    def __init__(self, path: str | Path | None):
        self.f = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, rec: dict) -> None:
        if self.f is not None:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


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
    from tqdm import tqdm

    cfg = cfg or TrainConfig()
    if not train:
        raise ValueError("no training videos")
    _seed_all(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dim = train[0].features.shape[1]
    if val and any(v.features.shape[1] != dim for v in val):
        raise ValueError(f"validation features do not all have the training feature dim {dim}")
    model = URDMU(input_size=dim, hidden=cfg.hidden, a_slots=cfg.memory_slots, n_slots=cfg.memory_slots)
    if init_state is not None:
        try:
            model.load_state_dict(init_state, strict=True)
        except RuntimeError as e:  # other layout or dims: say which
            raise ValueError(f"initial weights do not fit a URDMU for {dim}-d features: {e}") from e
    model.to(cfg.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    sampler = BalancedSampler([v.anomalous for v in train], cfg.batch_size, cfg.seed)
    log = _Log(log_path)
    log.write({"config": {**asdict(cfg), "input_dim": dim, "n_train": len(train), "n_val": len(val or [])}})
    history: list[dict] = []
    best_score, best_step, best_metrics, best_state = -float("inf"), cfg.steps, None, None
    t0 = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="train scorer", unit="step", disable=not progress)
    try:
        for step in bar:
            n_idx, a_idx = sampler.next()
            x, y, v = make_batch(train, n_idx + a_idx, cfg.snippets, cfg.pooling, rng)
            out = model.forward_train(torch.from_numpy(x).to(cfg.device))
            total, parts = scorer_loss(
                out,
                torch.from_numpy(y).to(cfg.device),
                torch.from_numpy(v).to(cfg.device),
                cfg.losses,
                cfg.weights,
            )
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if step % cfg.log_every == 0 or step == 1:
                rec = {
                    "step": step,
                    "loss": float(total.detach()),
                    **parts,
                    "time_s": time.perf_counter() - t0,
                }
                history.append(rec)
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if val and (step % cfg.val_every == 0 or step == cfg.steps):
                metrics = validate(model, val, cfg.device)
                score = metrics.get(cfg.select_metric)
                rec = {"step": step, "val": metrics}
                history.append(rec)
                log.write(rec)
                if score is not None and score > best_score:
                    best_score, best_step, best_metrics = score, step, metrics
                    best_state = copy.deepcopy({k: t.detach().cpu() for k, t in model.state_dict().items()})
                    log.write({"step": step, "best": cfg.select_metric, "value": score})
    finally:
        log.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, best_step, best_metrics, history, time.perf_counter() - t0)


def export_scorer(model: URDMU, path: str | Path) -> Path:
    """Save the state dict in the released `anomaly_scorer.pth` layout: a plain dict of float32 CPU tensors
    (the URDMU module's own parameter names), written to a temporary name and renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: t.detach().to("cpu", torch.float32).contiguous().clone() for k, t in model.state_dict().items()
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
