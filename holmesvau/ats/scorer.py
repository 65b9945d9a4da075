"""The ATS anomaly scorer: UR-DMU ("Dual Memory Units with Uncertainty Regulation for Weakly Supervised Video
Anomaly Detection", AAAI 2023) as Holmes-VAU uses it, with the key layout of its released `anomaly_scorer.pth`.

features (B, T, 1024) -> temporal conv -> 2 transformer blocks (softmax attention + a fixed distance-decay
attention) -> anomaly / normal memory units -> classifier on [x, mu(A_aug) + mu(N_aug)] -> scores (B, T) in [0, 1].

`forward` is the inference path. `forward_train` is UR-DMU's training path (batch = normal videos then as many
abnormal ones) and returns everything its losses use; `urdmu_loss` combines them as UR-DMU does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class ScorerCheckpointError(RuntimeError):
    """An anomaly-scorer checkpoint that cannot be loaded: the message names the file and what is wrong."""


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DualAttention(nn.Module):
    """Per head: softmax(q k^T) v next to a fixed attention exp(-|i - j| / e) applied to a fourth projection t."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner * 4, bias=False)  # q, k, v, t
        self.to_out = nn.Sequential(nn.Linear(2 * inner, dim), nn.Dropout(dropout))

    @staticmethod
    def distance_attention(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        pos = torch.linspace(1, n, n, device=device, dtype=dtype)
        att = torch.exp(-(pos[None, :] - pos[:, None]).abs() / math.e)
        # The original divides by `att.sum(-1)` broadcast over the last axis, i.e. column sums; the matrix is
        # symmetric so those equal the row sums of the same index. Kept as is: it is what the weights learnt.
        return att / att.sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v, t = (
            z.reshape(b, n, self.heads, -1).transpose(1, 2) for z in self.to_qkv(x).chunk(4, dim=-1)
        )
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        fixed = self.distance_attention(n, x.device, x.dtype)
        out = torch.cat([attn @ v, fixed @ t], dim=-1)  # (b, h, n, 2 * dim_head)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, DualAttention(dim, heads, dim_head, dropout)),
                    PreNorm(dim, FeedForward(dim, mlp_dim, dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


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
    def __init__(
        self, input_size: int = 1024, hidden: int = 512, a_slots: int = 60, n_slots: int = 60, dropout=0.5
    ):
        super().__init__()
        self.input_dim = input_size  # feature size it scores (the vision encoder's hidden size)
        self.embedding = TemporalEmbedding(input_size, hidden)
        self.self_attn = Transformer(hidden, depth=2, heads=4, dim_head=128, mlp_dim=hidden, dropout=dropout)
        self.cls_head = ClassifierHead(2 * hidden)
        self.Amemory = MemoryUnit(a_slots, hidden)
        self.Nmemory = MemoryUnit(n_slots, hidden)
        self.encoder_mu = nn.Sequential(nn.Linear(hidden, hidden))
        self.encoder_var = nn.Sequential(nn.Linear(hidden, hidden))

    @staticmethod
    def _flatten(features: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, T, D) or (B, crops, T, D) -> (B * crops, T, D), B, crops."""
        if features.dim() == 4:
            b, n, t, d = features.shape
            return features.reshape(b * n, t, d), b, n
        if features.dim() != 3:
            raise ValueError(f"expected features (B, T, D) or (B, crops, T, D), got {tuple(features.shape)}")
        return features, features.shape[0], 1

    def _encode(self, features: torch.Tensor) -> torch.Tensor:
        x = features.to(self.embedding.conv_1[0].weight.dtype)
        return self.self_attn(self.embedding(x))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (B, T) in [0, 1] (crops, if given, are averaged)."""
        x, b, n = self._flatten(features)
        x = self._encode(x)
        _, a_aug = self.Amemory(x)
        _, n_aug = self.Nmemory(x)
        x = torch.cat([x, self.encoder_mu(a_aug) + self.encoder_mu(n_aug)], dim=-1)
        return self.cls_head(x).reshape(b, n, -1).mean(1)

    def forward_train(self, features: torch.Tensor) -> URDMUTrainOutput:
        """UR-DMU's training forward: the first half of the batch normal videos, the second half abnormal."""
        x, b, n = self._flatten(features)
        if b % 2:
            raise ValueError(
                f"forward_train needs a batch of normal then abnormal videos (even size), got {b}"
            )
        x = self._encode(x)
        t, half = x.shape[1], x.shape[0] // 2
        k = t // 16 + 1
        normal, abnormal = x[:half], x[half:]
        A_att, A_aug = self.Amemory(abnormal)
        N_Aatt, N_Aaug = self.Nmemory(abnormal)
        A_Natt, A_Naug = self.Amemory(normal)
        N_att, N_aug = self.Nmemory(normal)

        def pooled(feats: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
            """Mean of the top-k attended snippets, then over crops: (b, D)."""
            idx = att.topk(k, dim=-1).indices.unsqueeze(-1).expand(-1, -1, feats.shape[-1])
            return feats.gather(1, idx).mean(1).reshape(b // 2, n, -1).mean(1)

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

        def crops_mean(a: torch.Tensor) -> torch.Tensor:
            return a.reshape(b // 2, n, -1).mean(1)

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


def urdmu_loss(out: URDMUTrainOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """UR-DMU's weighted sum: top-k MIL BCE + 0.1 memory BCEs + 0.1 triplet + 0.001 KL + 0.0001 distance."""
    labels = labels.to(out.scores.dtype)
    b, t = out.A_att.shape[0], out.scores.shape[1]
    k = t // 16 + 1

    def topk_mean(a: torch.Tensor) -> torch.Tensor:
        return a.topk(k, dim=-1).values.mean(-1)

    ones = torch.ones(b, dtype=labels.dtype, device=labels.device)
    parts = {
        "att_loss": F.binary_cross_entropy(topk_mean(out.scores), labels),
        "N_Aatt": F.binary_cross_entropy(topk_mean(1 - out.N_Aatt), ones),
        "A_loss": F.binary_cross_entropy(topk_mean(out.A_att), ones),
        "N_loss": F.binary_cross_entropy(out.N_att, torch.ones_like(out.N_att)),
        "A_Nloss": F.binary_cross_entropy(out.A_Natt, torch.zeros_like(out.A_Natt)),
        "triplet": out.triplet_margin,
        "kl_loss": out.kl_loss,
    }
    memory = parts["A_loss"] + parts["N_Aatt"] + parts["N_loss"] + parts["A_Nloss"]
    total = (
        parts["att_loss"]
        + 0.1 * memory
        + 0.1 * out.triplet_margin
        + 0.001 * out.kl_loss
        + 0.0001 * out.distance
    )
    parts["total_loss"] = total
    return total, parts


def _sizes_of(state: dict) -> dict:
    """The input size read off a state dict, so scorers trained on other encoders (e.g. a 64-d tiny ViT) load too;
    every other size is the released architecture's and is checked strictly."""
    emb = state.get("embedding.conv_1.0.weight")
    if isinstance(emb, torch.Tensor) and emb.dim() == 3:
        return {"input_size": int(emb.shape[1])}
    return {}


def load_anomaly_scorer(path: str | Path, device: str | torch.device = "cpu") -> URDMU:
    """The released scorer (`anomaly_scorer.pth` layout): strict keys and shapes, weights only, eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ScorerCheckpointError(f"{path}: anomaly-scorer checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ScorerCheckpointError(
            f"{path}: not a torch checkpoint of plain tensors ({type(e).__name__}: {e})"
        ) from e
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ScorerCheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    model = URDMU(**_sizes_of(state))
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
            f"{path}: not an anomaly-scorer (URDMU) state dict: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device).eval()
