"""holmesvau.ats scorer: parity with the original URDMU and with the direct (quadratic) form written out below,
the banded fixed attention, memory linear in the length, strict checkpoint loading, the training outputs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from holmesvau.ats import URDMU, ScorerCheckpointError, load_anomaly_scorer
from holmesvau.ats.attention import DISTANCE_BAND, distance_attention, distance_normaliser


def direct_scores(state: dict, x: torch.Tensor) -> torch.Tensor:
    """UR-DMU's inference forward written out from its description, with both attentions as (n, n) matrices
    (the quadratic form), from the raw state dict: the independent oracle for the linear-memory scorer."""

    def lin(h, name):
        return F.linear(h, state[f"{name}.weight"], state.get(f"{name}.bias"))

    def norm(h, name):
        return F.layer_norm(h, h.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"])

    w, b = state["embedding.conv_1.0.weight"], state["embedding.conv_1.0.bias"]
    h = torch.relu(F.conv1d(x.transpose(1, 2), w, b, padding=1)).transpose(1, 2)
    n = h.shape[1]
    pos = torch.arange(1, n + 1, dtype=torch.float32)
    fixed = torch.exp(-(pos[:, None] - pos[None, :]).abs() / math.e)
    fixed = fixed / fixed.sum(-1)  # as the original: entry (i, j) over the sum of row j (broadcast)
    for layer in range(2):
        p = f"self_attn.layers.{layer}"
        q, k, v, t = F.linear(norm(h, f"{p}.0.norm"), state[f"{p}.0.fn.to_qkv.weight"]).chunk(4, -1)
        heads = []
        for i in range(4):
            s = slice(128 * i, 128 * (i + 1))
            att = torch.softmax(q[..., s] @ k[..., s].transpose(-1, -2) / math.sqrt(128), dim=-1)
            heads += [att @ v[..., s], fixed @ t[..., s]]
        h = h + lin(torch.cat(heads, -1), f"{p}.0.fn.to_out.0")
        h = h + lin(F.gelu(lin(norm(h, f"{p}.1.norm"), f"{p}.1.fn.net.0")), f"{p}.1.fn.net.3")

    def recall(memory):
        return torch.sigmoid(h @ memory.T / math.sqrt(memory.shape[1])) @ memory

    aug = lin(recall(state["Amemory.memory_block"]), "encoder_mu.0")
    aug = aug + lin(recall(state["Nmemory.memory_block"]), "encoder_mu.0")
    z = torch.relu(lin(torch.cat([h, aug], -1), "cls_head.mlp.0"))
    return torch.sigmoid(lin(z, "cls_head.mlp.2"))[..., 0]


@pytest.fixture
def checkpoint(shared):
    return shared("fixtures/ats-original/urdmu_random.pth")


def test_scores_match_the_original_for_every_length(shared, checkpoint):
    scorer = load_anomaly_scorer(checkpoint)
    assert not scorer.training
    reference = load_file(str(shared("fixtures/ats-original/urdmu_reference.safetensors")))
    lengths = sorted(int(k.split("_T")[1]) for k in reference if k.startswith("features_T"))
    assert lengths  # T = 1, 7, 171, 505
    for t in lengths:
        with torch.no_grad():
            scores = scorer(reference[f"features_T{t}"])
        assert scores.shape == (1, t)
        assert ((scores >= 0) & (scores <= 1)).all()
        torch.testing.assert_close(scores[0], reference[f"scores_T{t}"], atol=1e-5, rtol=0)


def test_the_direct_form_reproduces_the_original(shared, checkpoint):
    """The oracle below is itself checked against what the original module returned."""
    state = torch.load(checkpoint, weights_only=True)
    reference = load_file(str(shared("fixtures/ats-original/urdmu_reference.safetensors")))
    for t in (7, 171, 505):
        got = direct_scores(state, reference[f"features_T{t}"])[0]
        torch.testing.assert_close(got, reference[f"scores_T{t}"], atol=1e-5, rtol=0)


def _spy_forms(monkeypatch) -> list[str]:
    """Record which form each URDMU forward takes ("direct" / "lean")."""
    taken: list[str] = []
    for name in ("_direct", "_lean"):
        real = getattr(URDMU, name)

        def spy(self, x, real=real, name=name):
            taken.append(name[1:])
            return real(self, x)

        monkeypatch.setattr(URDMU, name, spy)
    return taken


def _forced(scorer: URDMU, form: str, x: torch.Tensor) -> torch.Tensor:
    """The scores of one form: the direct one under an unlimited budget, the lean one under none."""
    budget = scorer.direct_budget
    scorer.direct_budget = 1 << 62 if form == "direct" else 0
    try:
        with torch.no_grad():
            return scorer(x)
    finally:
        scorer.direct_budget = budget


def test_every_form_equals_the_direct_form(checkpoint, monkeypatch):
    """Lengths around the band (75), the one-matrix limit (256) and block borders (128 rows); the lean form also
    with chunks of 50 rows, whose borders fall inside the band everywhere. Every form: the direct one (whole
    sequence), the lean one (no autograd, in place, chunked) and the differentiable one."""
    scorer = load_anomaly_scorer(checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    taken = _spy_forms(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    for t in (1, 2, 76, 153, 256, 257, 385):
        x = torch.randn(1, t, 1024, generator=gen) * 0.5 + 0.1
        with torch.no_grad():
            want = direct_scores(state, x)
        for form, chunk in (("direct", 4096), ("lean", 4096), ("lean", 50)):
            monkeypatch.setattr(URDMU, "chunk", chunk)
            taken.clear()
            got = _forced(scorer, form, x)
            assert taken == [form]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=f"{form} form, chunk {chunk}, T={t}")
        with torch.enable_grad():
            grad_path = scorer(x.requires_grad_())
        torch.testing.assert_close(grad_path.detach(), want, atol=1e-5, rtol=0, msg=f"autograd path, T={t}")
    assert want.std() > 0.02  # scores that vary: the comparison means something


def test_the_switch_follows_the_budget_and_both_sides_agree(checkpoint, monkeypatch):
    """With a budget that the direct form fits up to 300 snippets (one video) or 150 (two): at the switch length
    and on both sides, the form taken is the one the budget allows, and both forms give the direct form's scores
    there (the other one forced)."""
    scorer = load_anomaly_scorer(checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    monkeypatch.setattr(URDMU, "direct_budget", scorer.direct_bytes(1, 300))
    assert scorer.direct_bytes(2, 150) == scorer.direct_budget  # memory counts batch rows x length
    taken = _spy_forms(monkeypatch)
    gen = torch.Generator().manual_seed(300)
    for batch, t, form in (
        (1, 299, "direct"),
        (1, 300, "direct"),
        (1, 301, "lean"),
        (2, 150, "direct"),
        (2, 151, "lean"),
    ):
        x = torch.randn(batch, t, 1024, generator=gen) * 0.5 + 0.1
        with torch.no_grad():
            want = direct_scores(state, x)
            taken.clear()
            got = scorer(x)
        assert taken == [form], (batch, t)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=f"{form} form at {batch} x {t}")
        other = "lean" if form == "direct" else "direct"
        torch.testing.assert_close(_forced(scorer, other, x), want, atol=1e-5, rtol=0, msg=f"{other} at {t}")


def test_a_long_input_never_takes_the_direct_path(monkeypatch):
    """Under the default budget (512 MiB): a day of video, or a batch whose rows x length is past the budget,
    is scored by the lean form; the direct path is never entered. Run for real on a narrow scorer (hidden 32):
    4,400 sequences of 3 snippets (13,200 rows, past the budget) — its scores equal the direct form's."""
    assert URDMU.direct_budget == 512 * 2**20
    day = URDMU()
    assert day.direct_bytes(1, 24 * 3600 * 30 // 16) > 14 * day.direct_budget  # 24 h: ~8 GB
    assert day.direct_bytes(1, 10_900) <= day.direct_budget < day.direct_bytes(1, 11_000)  # 48 KB a snippet
    torch.manual_seed(0)
    scorer = URDMU(input_size=8, hidden=32).eval()
    x = torch.randn(4400, 3, 8)
    assert scorer.direct_bytes(4400, 3) > scorer.direct_budget
    taken = _spy_forms(monkeypatch)
    with torch.no_grad():
        got = scorer(x)
    assert taken == ["lean"]
    want = _forced(scorer, "direct", x[:50])  # the direct form on a few rows (batch rows are independent)
    torch.testing.assert_close(got[:50], want, atol=1e-5, rtol=0)
    assert want.std() > 0.01


def test_scores_equal_the_direct_form_at_4000_snippets(checkpoint, monkeypatch):
    """Both forms at 4,000 snippets, two videos (the default budget takes the direct one); the lean one with
    chunk borders at 1500 and 3000 and a short last chunk. ~15 s on 2 busy cores: the oracle's 4,000 x 4,000
    attentions are the cost."""
    monkeypatch.setattr(URDMU, "chunk", 1500)
    scorer = load_anomaly_scorer(checkpoint)
    x = torch.randn(2, 4000, 1024, generator=torch.Generator().manual_seed(4000)) * 0.5 + 0.1
    taken = _spy_forms(monkeypatch)
    with torch.no_grad():
        want = direct_scores(torch.load(checkpoint, weights_only=True), x[1:])
        got = scorer(x)
    assert taken == ["direct"] and want.std() > 0.02
    torch.testing.assert_close(got[1:], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[:1], scorer(x[:1]), atol=1e-6, rtol=0)  # batch rows independent
    torch.testing.assert_close(_forced(scorer, "lean", x[1:]), want, atol=1e-5, rtol=0)


def test_band_width_is_where_the_weights_fall_below_1e_12():
    assert DISTANCE_BAND == 75
    assert math.exp(-(DISTANCE_BAND + 1) / math.e) < 1e-12 <= math.exp(-DISTANCE_BAND / math.e)


@pytest.mark.parametrize("n,band", [(23, 0), (23, 1), (23, 3), (23, 7), (600, 7), (600, 75)])
def test_banded_attention_equals_the_masked_matrix_on_every_window(n, band):
    """distance_attention with a band = the (n, n) matrix with |i - j| > band zeroed and the original's
    normalisation (entry (i, j) over the sum of column j), for whole sequences and for windows a..b: one matrix
    (23 rows) and blocks of 128 rows (600, windows across block borders)."""
    t = torch.randn(2, n, 5, dtype=torch.float64)
    pos = torch.arange(n, dtype=torch.float64)
    dist = (pos[:, None] - pos[None, :]).abs()
    mat = torch.where(dist <= band, torch.exp(-dist / math.e), 0)
    want = (mat / mat.sum(0, keepdim=True)) @ t
    s = distance_normaliser(n, band, t.device)
    torch.testing.assert_close(s.double(), mat.sum(0), rtol=1e-6, atol=0)
    torch.testing.assert_close(distance_attention(t, s, band=band), want, rtol=1e-5, atol=1e-6)
    windows = [(0, 1), (0, 5), (3, 9), (band, n - band), (n - 4, n), (n - 1, n)]
    windows += [(100, 500), (0, 300), (127, 129), (n - 300, n)] if n > 300 else []
    for a, b in windows:
        got = distance_attention(t, s, a, b, band=band)
        torch.testing.assert_close(got, want[:, a:b], rtol=1e-5, atol=1e-6, msg=f"window {a}:{b}")


def _scoring_growth_mb(checkpoint, form: str, batch: int, t: int) -> float:
    """Growth of peak RSS while one form scores (batch, t) random features, in a fresh process."""
    code = textwrap.dedent(f"""
        import resource, torch
        from holmesvau.ats import load_anomaly_scorer
        scorer = load_anomaly_scorer({str(checkpoint)!r})
        scorer.direct_budget = {1 << 62 if form == "direct" else 0}
        x = torch.randn({batch}, {t}, 1024)
        with torch.no_grad():
            scorer(x[:, :64])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with torch.inference_mode():
            scores = scorer(x)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, float(scores.std()))
    """)
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's package, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    growth_mb, spread = map(float, out.stdout.split())
    assert spread > 0.01
    return growth_mb


def test_scoring_memory_is_linear_in_length(checkpoint):
    """8,000 snippets in the lean form: the direct (quadratic) form holds 4 x 8,000^2 floats per attention (1 GB,
    2.1 GB with the softmax and the distance matrix); the lean one x, q, k, v (t in q's place) and the softmax
    output at full length, the rest in chunks: ~120 MB measured. ~15 s on 2 busy cores."""
    growth_mb = _scoring_growth_mb(checkpoint, "lean", 1, 8000)
    assert growth_mb < 250, f"scoring 8,000 snippets took {growth_mb:.0f} MB more"


def test_the_direct_forms_memory_is_within_what_the_switch_counts(checkpoint):
    """URDMU.direct_bytes, which the switch weighs against the budget, bounds what the direct form takes: one
    video of 2,000 snippets, eight of 750 (measured ~60 and ~205 MB against 94 and 281 MB counted)."""
    scorer = URDMU()
    for batch, t in ((1, 2000), (8, 750)):
        growth_mb = _scoring_growth_mb(checkpoint, "direct", batch, t)
        assert growth_mb <= scorer.direct_bytes(batch, t) / 2**20, (batch, t, growth_mb)


def test_input_dim_is_an_attribute_set_from_the_weights(checkpoint, tmp_path):
    assert URDMU().input_dim == 1024 and URDMU(input_size=64).input_dim == 64
    assert load_anomaly_scorer(checkpoint).input_dim == 1024
    small = _save(URDMU(input_size=48).state_dict(), tmp_path / "small.pth")
    scorer = load_anomaly_scorer(small)
    assert scorer.input_dim == 48 and scorer.embedding.conv_1[0].in_channels == 48
    with pytest.raises(ValueError, match=r"\(B, T, 48\).*\(1, 5, 64\)"):
        scorer(torch.randn(1, 5, 64))
    with pytest.raises(ValueError, match="length 0"):
        scorer(torch.randn(1, 0, 48))


def test_released_key_layout(checkpoint):
    released = torch.load(checkpoint, weights_only=True)
    ours = URDMU().state_dict()
    assert len(ours) == 34
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in released.items()}


def _save(state, path):
    torch.save(state, path)
    return path


def test_wrong_checkpoints_name_the_file(tmp_path, checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    missing = dict(state)
    del missing["Amemory.memory_block"]
    extra = dict(state, **{"head.bias": torch.zeros(1)})
    shape = dict(state, **{"Nmemory.memory_block": torch.zeros(30, 512)})
    cases = {
        "missing.pth": ("missing.*Amemory.memory_block", _save(missing, tmp_path / "missing.pth")),
        "extra.pth": ("unexpected.*head.bias", _save(extra, tmp_path / "extra.pth")),
        "shape.pth": (r"Nmemory.memory_block \(30, 512\)", _save(shape, tmp_path / "shape.pth")),
        "notensors.pth": ("state dict", _save([1, 2, 3], tmp_path / "notensors.pth")),
    }
    (tmp_path / "text.pth").write_text("not a checkpoint")
    cases["text.pth"] = ("not a torch checkpoint", tmp_path / "text.pth")
    _save(
        {"w": torch.zeros(1), "obj": torch.nn.Linear(1, 1)}, tmp_path / "pickled.pth"
    )  # needs unpickling code
    cases["pickled.pth"] = ("not a torch checkpoint", tmp_path / "pickled.pth")
    cases["absent.pth"] = ("not found", tmp_path / "absent.pth")
    for name, (what, path) in cases.items():
        with pytest.raises(ScorerCheckpointError, match=f"{name}.*{what}"):
            load_anomaly_scorer(path)


def test_crops_are_averaged_and_batches_independent(checkpoint):
    scorer = load_anomaly_scorer(checkpoint)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 1024)
    with torch.no_grad():
        by_crops = scorer(x)
        per_crop = torch.stack([scorer(x[:, c]) for c in range(3)]).mean(0)
        single = scorer(x[1:, 0])
    assert by_crops.shape == (2, 20)
    torch.testing.assert_close(by_crops, per_crop)
    torch.testing.assert_close(single, scorer(x[:, 0])[1:])


def test_forward_train_needs_normal_then_abnormal_halves():
    """(forward_train's scores, attentions, losses and gradients are pinned to the original's values in
    test_urdmu_loss_parity.py.)"""
    with pytest.raises(ValueError, match="even"):
        URDMU().train().forward_train(torch.randn(3, 8, 1024))


def test_the_folded_projection_follows_new_weights():
    """t's projection is folded into the output one and cached at inference: weights loaded or changed in place
    after a first call, or a change of dtype, must give the scores of a fresh model holding those weights."""
    torch.manual_seed(0)
    x = torch.randn(1, 300, 64)
    a, b = URDMU(input_size=64).eval(), URDMU(input_size=64).eval()
    with torch.no_grad():
        a(x)  # the fold of a's weights is now cached
        a.load_state_dict(b.state_dict())
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=1e-6)
        for m in (a, b):  # in place, on the output projection only
            m.self_attn.layers[1][0].fn.to_out[0].weight.mul_(1.5)
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=1e-6)
        a.double()
        fresh = URDMU(input_size=64).double().eval()
        fresh.load_state_dict(b.state_dict())
        torch.testing.assert_close(a(x.double()), fresh(x.double()), rtol=0, atol=1e-9)
