"""UR-DMU's training path against the original code: losses, outputs and gradients of the ORIGINAL model and
`AD_Loss` on urdmu_random.pth (../shared/fixtures/ats-original/urdmu_loss_reference.*), for a plain batch and one
with crops. Train mode with the dropout modules in eval mode, the seed set right before the forward (the one
random draw is the reparameterisation noise)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from holmesvau.ats.scorer import LossWeights, scorer_from_state, urdmu_loss
from holmesvau.ats.training import LOSSES, scorer_loss

TERMS = ("total_loss", "att_loss", "N_Aatt", "A_loss", "N_loss", "A_Nloss", "triplet", "kl_loss", "distance")


@pytest.fixture(scope="module")
def reference():
    from conftest import shared_path

    root = "fixtures/ats-original"
    meta = json.loads(shared_path(f"{root}/urdmu_loss_reference.json").read_text())
    tensors = load_file(str(shared_path(f"{root}/urdmu_loss_reference.safetensors")))
    state = torch.load(shared_path(f"{root}/{meta['weights']}"), weights_only=True)
    return {c["name"]: c for c in meta["cases"]}, tensors, state


def _train_forward(state, tensors, case):
    model = scorer_from_state(state).train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    torch.manual_seed(case["torch_manual_seed_before_forward"])
    out = model.forward_train(tensors[f"{case['name']}_features"])
    return model, out


def _rel(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


@pytest.mark.parametrize("name", ["plain", "crops"])
def test_losses_outputs_and_gradients_match_the_original(reference, name):
    cases, tensors, state = reference
    case = cases[name]
    assert tuple(tensors[f"{name}_features"].shape) == tuple(case["features_shape"])
    # the fixture's noise is what the seed draws: our forward must draw it first and only it
    eps = tensors[f"{name}_epsilon"]
    torch.manual_seed(case["torch_manual_seed_before_forward"])
    assert torch.equal(torch.randn(eps.shape), eps)

    model, out = _train_forward(state, tensors, case)
    total, parts = urdmu_loss(out, tensors[f"{name}_labels"])
    assert set(case["losses"]) == set(TERMS)
    for term in TERMS:
        got = float(parts[term].detach())
        assert _rel(got, case["losses"][term]) < 1e-5, (term, got)
    assert total is parts["total_loss"]

    torch.testing.assert_close(out.scores, tensors[f"{name}_frame_scores"], rtol=0, atol=1e-5)
    for att in ("A_att", "N_att", "A_Natt", "N_Aatt"):
        torch.testing.assert_close(getattr(out, att), tensors[f"{name}_{att}"], rtol=0, atol=1e-5, msg=att)

    total.backward()
    params = dict(model.named_parameters())
    assert set(params) == set(case["grad_norms"])
    for pname, p in params.items():
        assert _rel(float(p.grad.norm()), case["grad_norms"][pname]) < 1e-4, pname
    stored = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}_grad.")}
    assert len(stored) == sum(p.numel() <= 200_000 for p in params.values()) == 23
    for pname, want in stored.items():
        err = float((params[pname].grad - want).norm() / want.norm())
        assert err < 1e-4, (pname, err)
        torch.testing.assert_close(params[pname].grad, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("name", ["plain", "crops"])
def test_the_training_objective_is_urdmu_plus_frame_bce(reference, name):
    """What tools/train_scorer.py optimises: UR-DMU's total with every UR-DMU objective, plus the frame-level BCE
    (weight 1) when "bce" is selected; the BCE is recomputed here from the original's frame scores."""
    cases, tensors, state = reference
    case = cases[name]
    _, out = _train_forward(state, tensors, case)
    video = tensors[f"{name}_labels"]
    frame_labels = torch.zeros_like(out.scores)
    frame_labels[video.bool(), 5:9] = 1.0
    urdmu_only = tuple(x for x in LOSSES if x != "bce")
    total, _ = scorer_loss(out, frame_labels, video, urdmu_only)
    assert _rel(total.item(), case["losses"]["total_loss"]) < 1e-5
    total, parts = scorer_loss(out, frame_labels, video, LOSSES)
    p = tensors[f"{name}_frame_scores"].double()
    y = frame_labels.double()
    bce = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
    assert _rel(parts["bce"], bce) < 1e-5
    assert _rel(total.item(), case["losses"]["total_loss"] + bce) < 1e-5


def test_loss_weights_are_urdmus_and_change_the_total(reference):
    cases, tensors, state = reference
    case = cases["plain"]
    _, out = _train_forward(state, tensors, case)
    w = LossWeights()
    assert (w.mil, w.memory, w.triplet, w.kl, w.distance) == (1.0, 0.1, 0.1, 0.001, 0.0001)
    heavier_kl = LossWeights(kl=0.002)
    total, _ = urdmu_loss(out, tensors["plain_labels"], heavier_kl)
    want = case["losses"]["total_loss"] + 0.001 * case["losses"]["kl_loss"]
    assert _rel(total.item(), want) < 1e-5


@pytest.mark.parametrize("name", ["plain", "crops"])
def test_each_objective_alone_is_the_originals_terms_and_their_gradients_add_up(reference, name):
    """Each objective tools/train_scorer.py can select, alone: its value is the original's terms (mil = att_loss,
    memory = A_loss + N_Aatt + N_loss + A_Nloss, triplet, kl = kl_loss, distance; bce from the original's frame
    scores), and the weighted sum of the UR-DMU objectives' gradients is the original total loss's gradient."""
    cases, tensors, state = reference
    case, t = cases[name], cases[name]["losses"]
    model, out = _train_forward(state, tensors, case)
    video = tensors[f"{name}_labels"]
    frame_labels = torch.zeros_like(out.scores)
    frame_labels[video.bool(), 5:9] = 1.0
    p, y = tensors[f"{name}_frame_scores"].double(), frame_labels.double()
    want = {
        "mil": t["att_loss"],
        "memory": t["A_loss"] + t["N_Aatt"] + t["N_loss"] + t["A_Nloss"],
        "triplet": t["triplet"],
        "kl": t["kl_loss"],
        "distance": t["distance"],
        "bce": float(-(y * p.log() + (1 - y) * (1 - p).log()).mean()),
    }
    assert set(want) == set(LOSSES)
    params = [p for _, p in model.named_parameters()]
    summed = [torch.zeros_like(p) for p in params]
    w = LossWeights()
    for loss in LOSSES:
        total, parts = scorer_loss(out, frame_labels, video, (loss,))
        assert list(parts) == [loss] and _rel(parts[loss], want[loss]) < 1e-5, loss
        assert _rel(total.item(), getattr(w, loss) * want[loss]) < 1e-5, loss
        grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), (
            loss
        )  # each objective trains something
        if loss != "bce":
            for s, g in zip(summed, grads):
                if g is not None:
                    s += g  # `total` is the objective times its weight
    stored = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}_grad.")}
    by_name = dict(zip((n for n, _ in model.named_parameters()), summed))
    for pname, g in stored.items():
        assert float((by_name[pname] - g).norm() / g.norm()) < 1e-4, pname
