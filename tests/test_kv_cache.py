"""The decode cache that writes in place (holmesvau.model.kv_cache) against transformers' own DynamicLayer, which
concatenates: the same updates and row selections give the same keys and values, bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from holmesvau.model.kv_cache import RoomyLayer, left_padded_cache


def _kv(b: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, n, 8, generator=g), torch.randn(b, 2, n, 8, generator=g)


@pytest.mark.parametrize("grow", [1, 3, 256])
def test_roomy_layer_equals_dynamic_layer(monkeypatch, grow):
    monkeypatch.setattr("holmesvau.model.kv_cache.GROW", grow)
    k, v = _kv(4, 5, 0)
    ours, theirs = (
        RoomyLayer(torch.cat([k, torch.zeros(4, 2, 2, 8)], 2), torch.cat([v, v[:, :, :2]], 2), 5),
        DynamicLayer(),
    )
    theirs.update(k, v)
    for step in range(12):
        nk, nv = _kv(ours.keys.shape[0], 1 + step % 2, 100 + step)  # one or two tokens at a time
        got, want = ours.update(nk, nv), theirs.update(nk, nv)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert ours.get_seq_length() == theirs.get_seq_length() == 5 + sum(1 + s % 2 for s in range(step + 1))
        if step in (4, 9):  # rows leave the batch
            keep = torch.tensor([0, 2]) if step == 4 else torch.tensor([1])
            ours.batch_select_indices(keep)
            theirs.batch_select_indices(keep)
            assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
    assert ours.keys.shape[0] == 1


def test_left_padded_cache_right_aligns_each_row(monkeypatch):
    monkeypatch.setattr("holmesvau.model.kv_cache.GROW", 4)
    lengths = [3, 7, 5]
    rows = [[_kv(1, n, 10 * i + layer) for layer in range(2)] for i, n in enumerate(lengths)]
    expect = [  # naive: zeros on the left, the row's own cache on the right
        [torch.cat([torch.zeros(1, 2, 7 - n, 8), rows[i][layer][0]], 2) for i, n in enumerate(lengths)]
        for layer in range(2)
    ]
    cache = left_padded_cache([list(r) for r in rows], room=100)
    assert cache.get_seq_length() == 7 and len(cache.layers) == 2
    for layer in range(2):
        assert torch.equal(cache.layers[layer].keys, torch.cat(expect[layer]))
        assert cache.layers[layer]._k.shape[2] == 7 + 4  # room capped at GROW
    nk, nv = _kv(3, 1, 99)
    keys, values = cache.update(nk, nv, 1)
    assert torch.equal(keys[:, :, 7:], nk) and torch.equal(values[:, :, 7:], nv)
    assert torch.equal(keys[:, :, :7], torch.cat(expect[1]))
