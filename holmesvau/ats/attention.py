"""The scorer's transformer layers (UR-DMU's `translayer.py`), with memory linear in the sequence length.

Each attention head runs a softmax attention next to a fixed one, exp(-|i - j| / e), on a fourth projection.
UR-DMU builds both as (n, n) matrices: 4 heads x n^2 floats per layer, ~34 GiB at 4.7 h of 30 fps video. Here the
softmax goes through `scaled_dot_product_attention` (flash / memory-efficient kernels: the matrix is never held) and
the fixed attention through a banded depthwise convolution (band chosen below so that the scores do not change);
at inference (no autograd) every position-wise step also runs in chunks of rows, in place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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


# Band of the fixed attention: its weights exp(-d / e) fall below 1e-12 for offsets d > 12 ln(10) e = 75.1, and
# those are dropped. Output i weighs t_j by exp(-|i-j| / e) / s_j with s_j >= 1, so the dropped part is below
# 2 * sum_{d > 75} exp(-d / e) < 5e-12 of max |t| (and s_j moves by less than that): far under float32's
# resolution (6e-8 relative), i.e. the same scores as the full (n, n) matrix.
DISTANCE_BAND = math.floor(12 * math.log(10) * math.e)  # = 75: offsets |i - j| <= 75 are kept


def _distance_kernel(band: int, device: torch.device) -> torch.Tensor:
    """exp(-|d| / e) for d = -band..band, float32 like the original (e itself rounded to float32 as it did)."""
    d = torch.arange(-band, band + 1, device=device, dtype=torch.float32).abs()
    return torch.exp(-d / torch.exp(torch.tensor(1.0, device=device)))


def distance_normaliser(n: int, band: int, device: torch.device) -> torch.Tensor:
    """(n,) s_j = sum_i exp(-|i - j| / e) over the sequence (within the band).

    The original divides its (n, n) matrix by `att.sum(-1)` broadcast over the LAST axis: entry (i, j) is divided
    by s_j, the sum of row j (= of column j: the matrix is symmetric). So output i is sum_j exp(-|i-j|/e) t_j / s_j,
    not a row-normalised average; near the ends these differ. Kept as is: it is what the weights learnt."""
    ones = torch.ones(1, 1, n, device=device)
    return F.conv1d(ones, _distance_kernel(band, device)[None, None], padding=band)[0, 0]


def _window(x: torch.Tensor, a: int, b: int, halo: int, value: float = 0.0) -> torch.Tensor:
    """Rows [a - halo, b + halo) of x (B, n, C), `value` outside [0, n): what a centred kernel sees for rows
    a..b-1. Only the window is copied."""
    n = x.shape[1]
    lo, hi = max(a - halo, 0), min(b + halo, n)
    return F.pad(x[:, lo:hi], (0, 0, halo - (a - lo), halo - (hi - b)), value=value)


def distance_attention(
    t: torch.Tensor, s: torch.Tensor, a: int = 0, b: int | None = None, band: int = DISTANCE_BAND
) -> torch.Tensor:
    """Rows a..b-1 of the fixed attention applied to t (B, n, C): sum_j exp(-|i-j|/e) t_j / s_j over |i - j| <= band,
    as one depthwise convolution of t / s: O(n * band) time and O((b - a + 2 band) * C) memory."""
    b = t.shape[1] if b is None else b
    # t_j / s_j on the window only (L = b - a + 2 band rows); outside the sequence t is 0 (s padded with 1)
    u = _window(t, a, b, band).float() / _window(s[None, :, None], a, b, band, value=1.0)
    bsz, length, c = u.shape
    u = u.transpose(1, 2).reshape(bsz * c, 1, length)
    out = F.conv1d(u, _distance_kernel(band, t.device)[None, None])  # kernel symmetric: conv = correlation
    return out.reshape(bsz, c, b - a).transpose(1, 2).to(t.dtype)


class DualAttention(nn.Module):
    """Per head: softmax(q k^T / sqrt(d)) v next to a fixed attention exp(-|i - j| / e) applied to a fourth
    projection t; the two halves of each head are concatenated. Memory is linear in the length: the softmax goes
    through scaled_dot_product_attention (its flash / memory-efficient kernels never hold the (n, n) matrix) and the
    fixed one through a banded convolution (distance_attention)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner * 4, bias=False)  # q, k, v, t
        self.to_out = nn.Sequential(nn.Linear(2 * inner, dim), nn.Dropout(dropout))

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, h * d) -> (B, h, n, d)."""
        return z.reshape(z.shape[0], z.shape[1], self.heads, self.dim_head).transpose(1, 2)

    def _merge(self, soft: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """softmax half (B, n, h, d) and fixed half (B, n, h * d) -> (B, n, h * 2d): per head [softmax, fixed], the
        original's layout."""
        bsz, n, _ = fixed.shape
        shape = (bsz, n, self.heads, self.dim_head)
        return torch.cat([soft.reshape(shape), fixed.reshape(shape)], dim=-1).reshape(bsz, n, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable form (training, gradients)."""
        q, k, v, t = self.to_qkv(x).chunk(4, dim=-1)
        soft = F.scaled_dot_product_attention(
            self._split(q), self._split(k), self._split(v), scale=self.scale
        )
        fixed = distance_attention(t, distance_normaliser(x.shape[1], DISTANCE_BAND, x.device))
        return self.to_out(self._merge(soft.transpose(1, 2), fixed))

    @torch.no_grad()
    def add_lean_(self, x: torch.Tensor, norm: nn.LayerNorm, chunk: int) -> None:
        """x += self(norm(x)) in place, holding only q, k, v and one (B, n, h * d) buffer at full length:
        position-wise steps go `chunk` rows at a time."""
        bsz, n, _ = x.shape
        inner = self.heads * self.dim_head
        w_q, w_k, w_v, w_t = self.to_qkv.weight.split(inner)
        q, k, v = (x.new_empty(bsz, self.heads, n, self.dim_head) for _ in range(3))
        for a in range(0, n, chunk):
            h = norm(x[:, a : a + chunk])
            for buf, w in ((q, w_q), (k, w_k), (v, w_v)):
                buf[:, :, a : a + chunk] = self._split(F.linear(h, w))
        soft = F.scaled_dot_product_attention(q, k, v, scale=self.scale).transpose(1, 2)  # (B, n, h, d) view
        del q, k, v
        t = x.new_empty(bsz, n, inner)
        for a in range(0, n, chunk):
            t[:, a : a + chunk] = F.linear(norm(x[:, a : a + chunk]), w_t)
        # Every read of x is done: from here x is updated in place, chunk by chunk.
        s = distance_normaliser(n, DISTANCE_BAND, x.device)
        for a in range(0, n, chunk):
            fixed = distance_attention(t, s, a, min(a + chunk, n))
            x[:, a : a + chunk] += self.to_out(self._merge(soft[:, a : a + chunk], fixed))


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

    @torch.no_grad()
    def forward_lean_(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        """The same, updating x in place; position-wise layers `chunk` rows at a time (inference)."""
        for attn, ff in self.layers:
            attn.fn.add_lean_(x, attn.norm, chunk)
            for a in range(0, x.shape[1], chunk):
                x[:, a : a + chunk] += ff(x[:, a : a + chunk])
        return x
