"""The ATS anomaly scorer: UR-DMU ("Dual Memory Units with Uncertainty Regulation for Weakly Supervised Video
Anomaly Detection", AAAI 2023) as Holmes-VAU uses it, with the key layout of its released `anomaly_scorer.pth`.

features (B, T, 1024) -> temporal conv -> 2 transformer blocks (softmax attention + a fixed distance-decay
attention) -> anomaly / normal memory units -> classifier on [x, mu(A_aug) + mu(N_aug)] -> scores (B, T) in [0, 1].

`forward` is the inference path (memory linear in T; the direct or the lean form by a memory budget:
docs/ats-scorer.md). `forward_train` is UR-DMU's training path (batch = normal videos then as many abnormal ones)
and returns everything its losses use; `urdmu_loss` combines them as UR-DMU's `train.py` does (`LossWeights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from holmesvau.ats.attention import Transformer, _window


class ScorerCheckpointError(RuntimeError):
    """An anomaly-scorer checkpoint that cannot be loaded: the message names the file and what is wrong."""


class MemoryUnit(nn.Module):
    """K learnt slots; sigmoid similarity of each snippet to each slot -> (top-k mean score, slot-weighted sum)."""

    def __init__(self, slots: int, dim: int):
        super().__init__()
        self.slots, self.dim = slots, dim
        bound = 1.0 / math.sqrt(dim)
        self.memory_block = nn.Parameter(torch.empty(slots, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = torch.sigmoid(torch.einsum("btd,kd->btk", x, self.memory_block) / self.dim**0.5)
        temporal_att = att.topk(self.slots // 16 + 1, dim=-1).values.mean(-1)  # (B, T)
        augmented = torch.einsum("btk,kd->btd", att, self.memory_block)  # (B, T, D)
        return temporal_att, augmented


class TemporalEmbedding(nn.Module):
    def __init__(self, input_size: int, out_size: int):
        super().__init__()
        self.conv_1 = nn.Sequential(
            nn.Conv1d(input_size, out_size, kernel_size=3, stride=1, padding=1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1(x.transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def forward_chunked(self, x: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
        """The same, `chunk` rows at a time (each with its neighbour rows), into one (B, n, out) buffer."""
        conv = self.conv_1[0]
        out = x.new_empty(x.shape[0], x.shape[1], conv.out_channels, dtype=dtype)
        for a in range(0, x.shape[1], chunk):
            b = min(a + chunk, x.shape[1])
            w = _window(x, a, b, 1).to(dtype)  # rows a-1..b, zeros past the ends (the conv's padding 1)
            out[:, a:b] = F.relu(F.conv1d(w.transpose(1, 2), conv.weight, conv.bias)).transpose(1, 2)
        return out


class ClassifierHead(nn.Module):
    def __init__(self, in_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, 128), nn.ReLU(), nn.Linear(128, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@dataclass
class URDMUTrainOutput:
    """What UR-DMU's training losses use. B = 2 * b videos: the first b normal, the last b abnormal."""

    scores: torch.Tensor  # (B, T) snippet scores of all videos
    A_att: torch.Tensor  # (b, T) abnormal videos vs anomaly memory
    N_att: torch.Tensor  # (b, T) normal videos vs normal memory
    A_Natt: torch.Tensor  # (b, T) normal videos vs anomaly memory
    N_Aatt: torch.Tensor  # (b, T) abnormal videos vs normal memory
    N_aug_mu: torch.Tensor  # (b*crops, T, D) mean of the normal-memory augmentation of normal videos
    N_aug_var: torch.Tensor  # (b*crops, T, D) its log-variance
    triplet_margin: torch.Tensor  # scalar
    kl_loss: torch.Tensor  # scalar
    distance: torch.Tensor  # scalar


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(p=2, dim=-1, keepdim=True)


class URDMU(nn.Module):
    """The scorer. `input_dim`: the feature size it reads (1024 for InternViT-300M's CLS; set from the weights by
    load_anomaly_scorer). `chunk`: rows per step of the position-wise layers at inference."""

    chunk: int = 4096
    direct_budget: int = 512 * 2**20  # bytes the direct form may take at inference (see forward)

    def __init__(
        self, input_size: int = 1024, hidden: int = 512, a_slots: int = 60, n_slots: int = 60, dropout=0.5
    ):
        super().__init__()
        self.input_dim = input_size  # feature size it scores (the vision encoder's hidden size)
        self.hidden = hidden
        self.embedding = TemporalEmbedding(input_size, hidden)
        self.self_attn = Transformer(hidden, depth=2, heads=4, dim_head=128, mlp_dim=hidden, dropout=dropout)
        self.cls_head = ClassifierHead(2 * hidden)
        self.Amemory = MemoryUnit(a_slots, hidden)
        self.Nmemory = MemoryUnit(n_slots, hidden)
        self.encoder_mu = nn.Sequential(nn.Linear(hidden, hidden))
        self.encoder_var = nn.Sequential(nn.Linear(hidden, hidden))

    def _flatten(self, features: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, T, D) or (B, crops, T, D) -> (B * crops, T, D), B, crops."""
        if features.dim() not in (3, 4) or features.shape[-1] != self.input_dim:
            raise ValueError(
                f"expected features (B, T, {self.input_dim}) or (B, crops, T, {self.input_dim}), "
                f"got {tuple(features.shape)}"
            )
        if features.shape[-2] == 0:
            raise ValueError("no snippets to score: features have length 0")
        if features.dim() == 4:
            b, n, t, d = features.shape
            return features.reshape(b * n, t, d), b, n
        return features, features.shape[0], 1

    def _encode(self, features: torch.Tensor) -> torch.Tensor:
        x = features.to(self.embedding.conv_1[0].weight.dtype)
        return self.self_attn(self.embedding(x))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, hidden) -> (B, T) scores: classifier on [x, mu(A_aug) + mu(N_aug)]. mu is affine, so that sum is
        mu's weight times (A_aug + N_aug) plus twice its bias, and A_aug + N_aug is one recall over both units'
        slots (the units' top-k scores are not needed here): one projection instead of two, one recall instead."""
        slots = torch.cat([self.Amemory.memory_block, self.Nmemory.memory_block])
        aug = torch.sigmoid(F.linear(x, slots) / self.Amemory.dim**0.5) @ slots
        mu = self.encoder_mu[0]
        return self.cls_head(torch.cat([x, F.linear(aug, mu.weight, 2 * mu.bias)], dim=-1))[..., 0]

    def direct_bytes(self, rows: int, length: int) -> int:
        """Memory the direct form takes on `rows` sequences of `length` snippets: per snippet, an attention
        layer's activations (~3 hidden + 8 heads x dim_head floats), more than doubled for copies and the
        allocator's slack. Measured RSS growth, 26-36 KB a snippet, is under the 48 KB counted here
        (tests/test_ats_scorer.py)."""
        attn = self.self_attn.layers[0][0].fn
        width = 4 * self.hidden + 20 * attn.heads * attn.dim_head
        return rows * length * width * self.embedding.conv_1[0].weight.element_size()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (B, T) in [0, 1] (crops averaged). Two forms, the same scores: the direct one (whole
        sequence at once; always under autograd) while `direct_bytes` fits `direct_budget`, else the lean one (in
        place, position-wise layers `chunk` rows at a time)."""
        x, b, n = self._flatten(features)
        if torch.is_grad_enabled() or self.direct_bytes(x.shape[0], x.shape[1]) <= self.direct_budget:
            scores = self._direct(x)
        else:
            scores = self._lean(x)
        return scores.reshape(b, n, -1).mean(1)

    def _direct(self, x: torch.Tensor) -> torch.Tensor:
        return self._head(self._encode(x))

    @torch.no_grad()
    def _lean(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding.forward_chunked(x, self.chunk, self.embedding.conv_1[0].weight.dtype)
        self.self_attn.forward_lean_(h, self.chunk)
        return torch.cat([self._head(h[:, a : a + self.chunk]) for a in range(0, h.shape[1], self.chunk)], 1)

    def forward_train(self, features: torch.Tensor) -> URDMUTrainOutput:
        """UR-DMU's training forward: the first half of the batch normal videos, the second half abnormal."""
        x, b, n = self._flatten(features)
        if b % 2:
            raise ValueError(
                f"forward_train needs a batch of normal then abnormal videos (even size), got {b}"
            )
        x = self._encode(x)
        half, k = x.shape[0] // 2, x.shape[1] // 16 + 1
        normal, abnormal = x[:half], x[half:]
        A_att, A_aug = self.Amemory(abnormal)
        N_Aatt, N_Aaug = self.Nmemory(abnormal)
        A_Natt, A_Naug = self.Amemory(normal)
        N_att, N_aug = self.Nmemory(normal)

        def crops_mean(a: torch.Tensor) -> torch.Tensor:
            return a.reshape(b // 2, n, -1).mean(1)

        def pooled(feats: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
            """Mean of the top-k attended snippets, then over crops: (b, D)."""
            idx = att.topk(k, dim=-1).indices.unsqueeze(-1).expand(-1, -1, feats.shape[-1])
            return crops_mean(feats.gather(1, idx).mean(1))

        negative = pooled(abnormal, A_att)
        anchor = pooled(normal, N_att)
        positive = pooled(abnormal, N_Aatt)
        triplet = F.triplet_margin_loss(_l2(anchor), _l2(positive), _l2(negative), margin=1.0)

        N_aug_mu, N_aug_var = self.encoder_mu(N_aug), self.encoder_var(N_aug)
        N_aug_new = N_aug_mu + torch.randn_like(N_aug_var) * torch.exp(N_aug_var).sqrt()  # reparameterise
        A_aug_new = self.encoder_mu(A_aug)
        anchor_new, negative_new = pooled(N_aug_new, N_att), pooled(A_aug_new, A_att)
        kl = torch.mean(-0.5 * torch.sum(1 + N_aug_var - N_aug_mu**2 - N_aug_var.exp(), dim=1))
        distance = torch.relu(100 - negative_new.norm(p=2, dim=-1) + anchor_new.norm(p=2, dim=-1)).mean()

        aug = torch.cat([N_aug_new + self.encoder_mu(A_Naug), A_aug_new + self.encoder_mu(N_Aaug)], dim=0)
        scores = self.cls_head(torch.cat([x, aug], dim=-1)).reshape(b, n, -1).mean(1)
        return URDMUTrainOutput(
            scores=scores,
            A_att=crops_mean(A_att),
            N_att=crops_mean(N_att),
            A_Natt=crops_mean(A_Natt),
            N_Aatt=crops_mean(N_Aatt),
            N_aug_mu=N_aug_mu,
            N_aug_var=N_aug_var,
            triplet_margin=triplet,
            kl_loss=kl,
            distance=distance,
        )


@dataclass(frozen=True)
class LossWeights:
    """Weights of the scorer's training objectives (the one definition; holmesvau.ats.training and
    tools/train_scorer.py use it). UR-DMU's `AD_Loss`: MIL 1, the four memory BCEs 0.1 (on their sum), triplet 0.1,
    KL 0.001, distance 0.0001. `bce` (frame-level BCE from event boundaries) is ours, outside UR-DMU's total."""

    mil: float = 1.0
    memory: float = 0.1
    triplet: float = 0.1
    kl: float = 0.001
    distance: float = 0.0001
    bce: float = 1.0


def urdmu_terms(out: URDMUTrainOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """UR-DMU's unweighted loss terms under its own names (att_loss = the MIL term, N_Aatt, A_loss, N_loss,
    A_Nloss = the memory BCEs, triplet, kl_loss, distance), labels = (B,) video labels."""
    labels = labels.to(out.scores.dtype)
    k = out.scores.shape[1] // 16 + 1

    def topk_mean(a: torch.Tensor) -> torch.Tensor:
        return a.topk(k, dim=-1).values.mean(-1)

    ones = torch.ones(out.A_att.shape[0], dtype=labels.dtype, device=labels.device)
    return {
        "att_loss": F.binary_cross_entropy(topk_mean(out.scores), labels),
        "N_Aatt": F.binary_cross_entropy(topk_mean(1 - out.N_Aatt), ones),
        "A_loss": F.binary_cross_entropy(topk_mean(out.A_att), ones),
        "N_loss": F.binary_cross_entropy(out.N_att, torch.ones_like(out.N_att)),
        "A_Nloss": F.binary_cross_entropy(out.A_Natt, torch.zeros_like(out.A_Natt)),
        "triplet": out.triplet_margin,
        "kl_loss": out.kl_loss,
        "distance": out.distance,
    }


def objectives(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """UR-DMU's terms grouped as LossWeights weighs them: {mil, memory, triplet, kl, distance}."""
    return {
        "mil": terms["att_loss"],
        "memory": terms["A_loss"] + terms["N_Aatt"] + terms["N_loss"] + terms["A_Nloss"],
        "triplet": terms["triplet"],
        "kl": terms["kl_loss"],
        "distance": terms["distance"],
    }


def weighted_sum(objs: dict[str, torch.Tensor], names, weights: LossWeights | None = None) -> torch.Tensor:
    w = weights or LossWeights()
    return sum(getattr(w, name) * objs[name] for name in names)


def urdmu_loss(
    out: URDMUTrainOutput, labels: torch.Tensor, weights: LossWeights | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """UR-DMU's training loss: (total, {its terms by name, total_loss})."""
    terms = urdmu_terms(out, labels)
    objs = objectives(terms)  # UR-DMU's total: every objective but our "bce"
    total = weighted_sum(objs, objs.keys(), weights)
    return total, {**terms, "total_loss": total}


def read_scorer_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a scorer checkpoint: a plain state dict or `{"state_dict": ...}`, read with weights_only
    (no code from the file runs); any problem is a ScorerCheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise ScorerCheckpointError(f"{path}: anomaly-scorer checkpoint {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip/pickle errors, refused globals, truncated files, ...
        raise ScorerCheckpointError(
            f"{path}: not a torch checkpoint of plain tensors ({type(e).__name__}: {(str(e).splitlines() or [''])[0]})"
        ) from e
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise ScorerCheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def scorer_from_state(state: dict[str, torch.Tensor], name: str | Path = "state dict", **sizes) -> URDMU:
    """A URDMU holding `state` (train mode, as built). Its input_dim is read off the weights; `sizes` (hidden,
    a_slots, n_slots) default to the released architecture's; keys and shapes are checked strictly."""
    emb = state.get("embedding.conv_1.0.weight")
    if isinstance(emb, torch.Tensor) and emb.dim() == 3:
        sizes.setdefault("input_size", int(emb.shape[1]))
    model = URDMU(**sizes)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise ScorerCheckpointError(
            f"{name}: not an anomaly-scorer (URDMU) state dict: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


def load_anomaly_scorer(path: str | Path, device: str | torch.device = "cpu") -> URDMU:
    """The released scorer (`anomaly_scorer.pth` layout, or `{"state_dict": ...}`): strict keys and shapes,
    weights only, input_dim from the weights, eval mode."""
    return scorer_from_state(read_scorer_state(path), path).to(device).eval()
