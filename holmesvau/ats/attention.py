"""The scorer's transformer layers (UR-DMU's `translayer.py`), with memory linear in the sequence length.

UR-DMU builds each head's softmax attention and its fixed one, exp(-|i - j| / e), as (n, n) matrices: ~34 GiB
at 4.7 h of 30 fps video. Here the softmax goes through `scaled_dot_product_attention` (the matrix is never held)
and the fixed attention through banded block products (the band leaves the scores unchanged). Two forms
(URDMU.forward picks one by memory): `DualAttention.forward` over the whole sequence, and `add_lean_`: every
position-wise step in chunks of rows, in place. docs/ats-scorer.md.
"""

from __future__ import annotations

import functools
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
# The banded product runs over blocks of DISTANCE_BLOCK rows (a block meets its two neighbours through band x band
# corners); up to DISTANCE_DENSE rows one (n, n) matrix is cheaper. On 2 CPU cores, 512 channels, blocks of 128 are
# 2-3x faster than one (n, n) matrix from ~750 rows on (docs/ats-scorer.md).
DISTANCE_BLOCK = 128
DISTANCE_DENSE = 2 * DISTANCE_BLOCK


@functools.lru_cache(maxsize=8)
def _distance_matrix(band: int, device: torch.device) -> torch.Tensor:
    """(M, M) exp(-|i - j| / e), zero past the band, M = max(DISTANCE_DENSE, DISTANCE_BLOCK + band): the products
    below use slices of it. float32 (e too) as the original. Made outside inference mode so autograd may save it."""
    m = max(DISTANCE_DENSE, DISTANCE_BLOCK + band)
    with torch.inference_mode(False), torch.no_grad():
        pos = torch.arange(m, device=device, dtype=torch.float32)
        d = (pos[:, None] - pos[None, :]).abs()
        w = torch.exp(-d / torch.exp(torch.tensor(1.0, device=device)))
        return torch.where(d <= band, w, torch.zeros((), device=device))


@functools.lru_cache(maxsize=8)
def distance_normaliser(n: int, band: int, device: torch.device) -> torch.Tensor:
    """(n,) s_j = sum_i exp(-|i - j| / e) over the sequence (within the band). Cached per length.

    The original divides its (n, n) matrix by `att.sum(-1)` broadcast over the LAST axis: entry (i, j) is divided
    by s_j, the sum of row j (= of column j: the matrix is symmetric). So output i is sum_j exp(-|i-j|/e) t_j / s_j,
    not a row-normalised average; near the ends these differ. Kept as is: it is what the weights learnt.
    Here s_j = c(min(j, band)) + c(min(n - 1 - j, band)) - 1 with c(k) = sum_{d <= k} exp(-d / e)."""
    with torch.inference_mode(False), torch.no_grad():
        w = _distance_matrix(band, device)[0, : band + 1]
        c = w.double().cumsum(0).float()  # band + 1 terms, once per length
        j = torch.arange(n, device=device)
        return c[j.clamp(max=band)] + c[(n - 1 - j).clamp(max=band)] - w[0]


def _rows_for(n: int) -> int:
    """n up to DISTANCE_DENSE, else n rounded up to whole blocks: the rows banded_product works on."""
    return n if n <= DISTANCE_DENSE else -(-n // DISTANCE_BLOCK) * DISTANCE_BLOCK


def banded_product(u: torch.Tensor, band: int = DISTANCE_BAND) -> torch.Tensor:
    """(B, n, C) -> (B, n, C): out_i = sum_{|i - j| <= band} exp(-|i - j| / e) u_j, zeros outside the sequence.
    Beyond DISTANCE_DENSE rows: per block its own product plus band x band corners from its two neighbours, added
    in place (no buffer but the output)."""
    bsz, n, c = u.shape
    mat = _distance_matrix(band, u.device)
    if n <= DISTANCE_DENSE:
        return torch.matmul(mat[:n, :n], u)
    bk = DISTANCE_BLOCK
    if band > bk:
        raise ValueError(f"band {band} wider than a block ({bk} rows)")
    rows = _rows_for(n)
    if rows != n:
        u = F.pad(u, (0, 0, 0, rows - n))
    nb = rows // bk
    blocks = u.reshape(bsz, nb, bk, c)
    out = torch.bmm(mat[:bk, :bk].expand(bsz * nb, bk, bk), blocks.reshape(bsz * nb, bk, c))
    out4 = out.view(bsz, nb, bk, c)
    if band and nb > 1:
        from_prev = mat[bk : bk + band, bk - band : bk].expand(nb - 1, band, band)
        from_next = mat[bk - band : bk, bk : bk + band].expand(nb - 1, band, band)
        for i in range(bsz):  # per sequence: a block's neighbours are in the same one
            out4[i, 1:, :band].baddbmm_(from_prev, blocks[i, :-1, bk - band :])
            out4[i, :-1, bk - band :].baddbmm_(from_next, blocks[i, 1:, :band])
    return out.view(bsz, rows, c)[:, :n]


def distance_attention(
    t: torch.Tensor, s: torch.Tensor, a: int = 0, b: int | None = None, band: int = DISTANCE_BAND
) -> torch.Tensor:
    """Rows a..b-1 of the fixed attention applied to t (B, n, C): sum_j exp(-|i-j|/e) t_j / s_j over |i - j| <= band
    (banded_product of t / s on the rows they see): O(n * block) time, O((b - a + 2 band) * C) memory."""
    n = t.shape[1]
    b = n if b is None else b
    lo, hi = max(a - band, 0), min(b + band, n)  # the rows that rows a..b-1 see
    rows = _rows_for(hi - lo)
    if torch.is_grad_enabled() and t.requires_grad:
        u = F.pad(t[:, lo:hi].float() / s[lo:hi, None], (0, 0, 0, rows - (hi - lo)))
    else:  # divided straight into the padded buffer
        u = t.new_empty(t.shape[0], rows, t.shape[2], dtype=torch.float32)
        u[:, hi - lo :] = 0
        torch.div(t[:, lo:hi], s[lo:hi, None], out=u[:, : hi - lo])
    return banded_product(u, band)[:, a - lo : b - lo].to(t.dtype)


def _window(x: torch.Tensor, a: int, b: int, halo: int, value: float = 0.0) -> torch.Tensor:
    """Rows [a - halo, b + halo) of x (B, n, C), `value` outside [0, n): what a centred kernel sees for rows
    a..b-1. Only the window is copied."""
    n = x.shape[1]
    lo, hi = max(a - halo, 0), min(b + halo, n)
    return F.pad(x[:, lo:hi], (0, 0, halo - (a - lo), halo - (hi - b)), value=value)


class DualAttention(nn.Module):
    """Per head: softmax(q k^T / sqrt(d)) v next to the fixed attention exp(-|i - j| / e) of a fourth projection t,
    concatenated. The fixed attention mixes snippets, never channels, so it commutes with t's projection: it is
    applied to the layer's input and t's projection folded into the output one (`_out_weight`)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner * 4, bias=False)  # q, k, v, t
        self.to_out = nn.Sequential(nn.Linear(2 * inner, dim), nn.Dropout(dropout))
        # (the weights' identity, _out_weight) once built at inference
        self._folded: tuple[tuple, torch.Tensor] | None = None

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, h * d) -> (B, h, n, d)."""
        return z.reshape(z.shape[0], z.shape[1], self.heads, self.dim_head).transpose(1, 2)

    def _out_weight(self) -> torch.Tensor:
        """(dim, h d + dim): to_out's weight over [softmax half (B, n, h d), fixed attention of the input]: its
        softmax columns, then its fixed columns times t's projection. Without autograd, cached until a weight
        changes (in place, moved or reloaded); with it, built per call so that gradients reach both weights."""
        w_o, w_qkvt = self.to_out[0].weight, self.to_qkv.weight
        grad = torch.is_grad_enabled() and (w_o.requires_grad or w_qkvt.requires_grad)
        key = (w_o._version, w_qkvt._version, w_o.data_ptr(), w_qkvt.data_ptr(), w_o.dtype, w_o.device)
        if not grad and self._folded is not None and self._folded[0] == key:
            return self._folded[1]
        inner = self.heads * self.dim_head
        halves = w_o.unflatten(1, (self.heads, 2, self.dim_head))  # per head [softmax, fixed] columns
        w = torch.cat([halves[:, :, 0].flatten(1), halves[:, :, 1].flatten(1) @ w_qkvt[3 * inner :]], dim=1)
        if not grad:
            self._folded = (key, w)
        return w

    def _project(self, soft: torch.Tensor, fixed: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """softmax half (B, n, h, d) and fixed attention of the input (B, n, dim) -> (B, n, dim)."""
        merged = torch.cat([soft.reshape(*fixed.shape[:2], -1), fixed], dim=-1)
        return self.to_out[1](F.linear(merged, w, self.to_out[0].bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The direct form (training, gradients, and inference while it fits the memory budget): one projection
        and one softmax attention over the whole sequence."""
        inner = self.heads * self.dim_head
        q, k, v = F.linear(x, self.to_qkv.weight[: 3 * inner]).chunk(3, dim=-1)
        soft = F.scaled_dot_product_attention(
            self._split(q), self._split(k), self._split(v), scale=self.scale
        )
        fixed = distance_attention(x, distance_normaliser(x.shape[1], DISTANCE_BAND, x.device))
        return self._project(soft.transpose(1, 2), fixed, self._out_weight())

    @torch.no_grad()
    def add_lean_(self, x: torch.Tensor, norm: nn.LayerNorm, chunk: int, buf: torch.Tensor) -> None:
        """x += self(norm(x)) in place, holding at full length only `buf` (B, n, 3 h d: q, k, v, then norm(x) in
        its first columns; the caller reuses it across layers) and the softmax output: position-wise steps go
        `chunk` rows at a time."""
        bsz, n, dim = x.shape
        inner = self.heads * self.dim_head
        w_qkv = self.to_qkv.weight[: 3 * inner]
        for a in range(0, n, chunk):
            buf[:, a : a + chunk] = F.linear(norm(x[:, a : a + chunk]), w_qkv)
        q, k, v = (self._split(z) for z in buf.split(inner, dim=-1))
        soft = F.scaled_dot_product_attention(q, k, v, scale=self.scale).transpose(1, 2)  # (B, n, h, d) view
        del q, k, v
        xn = buf[..., :dim] if dim <= buf.shape[-1] else x.new_empty(x.shape)  # q, k, v are spent
        for a in range(0, n, chunk):
            xn[:, a : a + chunk] = norm(x[:, a : a + chunk])
        # Every read of x is done: from here x is updated in place, chunk by chunk.
        s, w = distance_normaliser(n, DISTANCE_BAND, x.device), self._out_weight()
        for a in range(0, n, chunk):
            fixed = distance_attention(xn, s, a, min(a + chunk, n))
            x[:, a : a + chunk] += self._project(soft[:, a : a + chunk], fixed, w)


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
        first = self.layers[0][0].fn
        buf = x.new_empty(x.shape[0], x.shape[1], 3 * first.heads * first.dim_head)  # one for every layer
        for attn, ff in self.layers:
            attn.fn.add_lean_(x, attn.norm, chunk, buf)
            for a in range(0, x.shape[1], chunk):
                x[:, a : a + chunk] += ff(x[:, a : a + chunk])
        return x
