"""holmesvau.ats scorer: parity with the original URDMU, strict checkpoint loading, the training outputs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from holmesvau.ats import URDMU, ScorerCheckpointError, load_anomaly_scorer, urdmu_loss


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


def test_forward_train_exposes_what_the_losses_need():
    torch.manual_seed(0)
    model = URDMU().train()
    x = torch.randn(4, 40, 1024)  # 2 normal videos, then 2 abnormal
    out = model.forward_train(x)
    assert out.scores.shape == (4, 40)
    for name in ("A_att", "N_att", "A_Natt", "N_Aatt"):
        att = getattr(out, name)
        assert att.shape == (2, 40) and ((att >= 0) & (att <= 1)).all()
    assert out.N_aug_mu.shape == out.N_aug_var.shape == (2, 40, 512)
    total, parts = urdmu_loss(out, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.isfinite(total) and set(parts) >= {"att_loss", "triplet", "kl_loss", "total_loss"}
    total.backward()
    assert model.Amemory.memory_block.grad is not None and model.cls_head.mlp[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even"):
        model.forward_train(torch.randn(3, 8, 1024))
