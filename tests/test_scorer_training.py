"""Scorer training end to end on synthetic features: AUC rises, export = released layout, loads and scores alike."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import raw_db_entry

from holmesvau.ats import URDMU, load_anomaly_scorer
from holmesvau.ats.features import save_features
from holmesvau.ats.scorer import LossWeights
from holmesvau.ats.training import (
    LOSSES,
    TrainConfig,
    export_scorer,
    json_safe,
    parse_loss_weights,
    score_videos,
    train_scorer,
    validate,
)
from holmesvau.ats.training_data import load_scorer_videos

STRIDE = 16


def make_synthetic_set(
    root: Path, n_videos: int, dim: int, seed: int, shift: float = 0.1
) -> tuple[Path, Path]:
    """Fake videos (400-1500 frames, 30 fps), every other one anomalous with one event; gaussian features whose
    snippets inside the event (by their middle frame) are shifted by `shift` in every dimension."""
    rng = np.random.default_rng(seed)
    feats, db = root / "feats", {}
    for i in range(n_videos):
        anomalous = i % 2 == 1
        n, fps = int(rng.integers(400, 1500)), 30.0
        name = f"{'Fight' if anomalous else 'Normal'}{i:03d}"
        if anomalous:
            start = float(rng.uniform(0, n / fps * 0.5))
            events = [[round(start, 3), round(min(n / fps, start + rng.uniform(3, 15)), 3)]]
        else:
            events = [[0.0, round(n / fps, 3)]]
        db[name] = raw_db_entry(n, fps, ["Fighting"] if anomalous else [], events)
        idx = np.arange(0, n, STRIDE)
        x = rng.standard_normal((idx.size, dim)).astype(np.float32)
        if anomalous:
            f0, f1 = (math.floor(t * fps + 0.5) for t in events[0])
            x[(idx + STRIDE // 2 >= f0) & (idx + STRIDE // 2 < f1)] += shift
        save_features(feats / f"{name}.npz", x, idx, fps, n, STRIDE)
    (root / "db.json").write_text(json.dumps(db))
    return feats, root / "db.json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorer")
    train, skipped = load_scorer_videos(*make_synthetic_set(root / "train", 16, 1024, seed=0))
    val, _ = load_scorer_videos(*make_synthetic_set(root / "val", 6, 1024, seed=1))
    assert not skipped and sum(v.anomalous for v in train) == 8
    torch.manual_seed(0)
    untrained = validate(URDMU(), val)["auc"]
    cfg = TrainConfig(steps=30, batch_size=2, snippets=64, val_every=15, log_every=5, seed=0)
    result = train_scorer(train, val, cfg, log_path=root / "train_log.jsonl", progress=False)
    return {"root": root, "val": val, "untrained": untrained, "result": result}


def test_validation_auc_rises_well_above_chance(trained):
    result = trained["result"]
    vals = [h["val"]["auc"] for h in result.history if "val" in h]
    assert len(vals) == 2
    assert result.best_metrics["auc"] == max(vals) > 0.9
    assert result.best_metrics["auc"] > trained["untrained"] + 0.15
    assert result.best_metrics["ap"] > 0.5
    log = [json.loads(line) for line in (trained["root"] / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["config"]["input_dim"] == 1024 and any("val" in r for r in log)
    assert all(set(LOSSES) <= set(r) for r in log if "loss" in r)


def test_export_loads_with_the_sampler_loader_and_scores_alike(trained, tmp_path):
    model = trained["result"].model
    path = export_scorer(model, tmp_path / "scorer.pth")
    loaded = load_anomaly_scorer(path)
    ours, theirs = score_videos(model, trained["val"]), score_videos(loaded, trained["val"])
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], atol=1e-6)
    assert validate(loaded, trained["val"])["auc"] == pytest.approx(trained["result"].best_metrics["auc"])
    state = torch.load(path, weights_only=True)
    assert type(state) is dict and all(t.dtype == torch.float32 for t in state.values())


def test_export_has_the_released_key_layout(trained, shared, tmp_path):
    released = torch.load(shared("fixtures/ats-original/urdmu_random.pth"), weights_only=True)
    state = torch.load(export_scorer(trained["result"].model, tmp_path / "s.pth"), weights_only=True)
    assert list(state) == list(released)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in released.items()}


def test_config_rejects_unknown_losses_and_bad_numbers():
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig(losses=("bce", "focal"))
    for bad, match in (({"lr": float("inf")}, "lr"), ({"weight_decay": -1.0}, "weight_decay")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="select_metric"):
        TrainConfig(select_metric="f1")
    with pytest.raises(ValueError, match="loss weights"):
        TrainConfig(weights=parse_loss_weights("kl=nan"))
    assert parse_loss_weights(" memory=0.2, kl=0") == LossWeights(memory=0.2, kl=0.0)


def test_json_written_by_training_never_holds_nan():
    assert json_safe({"auc": float("nan"), "x": [1.0, float("-inf")], "n": 3}) == {
        "auc": None,
        "x": [1.0, None],
        "n": 3,
    }


REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, wait: bool = True):
    """tools/train_scorer.py in a subprocess (what a user runs), this checkout's package first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(REPO / "tools/train_scorer.py"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc.communicate(timeout=600) + (proc.returncode,) if wait else proc


def test_cli_trains_64d_features_and_writes_checkpoint_log_and_metrics(tmp_path):
    """Four runs of the tool (~30 s on 2 busy cores, most of it starting interpreters)."""
    feats, db = make_synthetic_set(tmp_path / "tr", 4, 64, seed=2, shift=1.0)
    vfeats, vdb = make_synthetic_set(tmp_path / "va", 2, 64, seed=3, shift=1.0)
    out = tmp_path / "run" / "scorer.pth"
    common = ["--features", str(feats), "--annotations", str(db), "--val-features", str(vfeats)]
    common += ["--val-annotations", str(vdb), "--steps", "4", "--snippets", "16", "--batch-size", "1"]
    common += ["--val-every", "2", "--losses", "bce,mil", "--device", "cpu", "--no-progress"]
    stdout, stderr, rc = run_cli(*common, "--output", str(out))
    assert rc == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["input_dim"] == 64 and summary["n_train"] == 4 and summary["best_step"] in (2, 4)
    assert summary["loss_weights"] == {
        "mil": 1.0,
        "memory": 0.1,
        "triplet": 0.1,
        "kl": 0.001,
        "distance": 0.0001,
        "bce": 1.0,
    }
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "best_metrics.json",
        "scorer.pth",
        "train_log.jsonl",
    ]
    assert (
        json.loads((out.parent / "best_metrics.json").read_text())["best_metrics"] == summary["best_metrics"]
    )
    log = [json.loads(line) for line in (out.parent / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["config"]["losses"] == ["bce", "mil"] and sum("val" in r for r in log) == 2
    state = torch.load(out, weights_only=True)
    assert state["embedding.conv_1.0.weight"].shape == (512, 64, 3)
    assert load_anomaly_scorer(out).input_dim == 64  # the released loader reads the sizes
    # --init, plain and {"state_dict": ...} (as inference accepts): lr 0 keeps the weights exactly
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    for init in (out, tmp_path / "wrapped.pth"):
        again = tmp_path / f"from-{init.stem}" / "scorer.pth"
        _, stderr, rc = run_cli(*common, "--output", str(again), "--init", str(init), "--lr", "0")
        assert rc == 0, stderr
        assert all(torch.equal(t, state[k]) for k, t in torch.load(again, weights_only=True).items())
    # a checkpoint for other feature sizes is refused, saying both
    feats8, db8 = make_synthetic_set(tmp_path / "tr8", 4, 8, seed=5)
    _, stderr, rc = run_cli(
        "--features", str(feats8), "--annotations", str(db8), "--output", str(tmp_path / "x.pth"),
        "--steps", "1", "--init", str(out), "--device", "cpu", "--no-progress",
    )  # fmt: skip
    assert rc == 2 and "--init" in stderr and "take 64-d features but the training features are 8-d" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "x.pth").exists()


def test_cli_bad_arguments_fail_in_one_line_before_any_work(tmp_path):
    """Each: exit 2, one `error:` line naming the culprit, no traceback, nothing written. The features folder is
    valid, so each error comes from the argument under test. ~15 s (one interpreter per case, run in parallel)."""
    feats, db = make_synthetic_set(tmp_path / "tr", 2, 8, seed=6)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    (tmp_path / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "folder.pth").mkdir()
    torch.save({"w": torch.zeros(2)}, tmp_path / "keys.pth")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # needs unpickling code: refused
    torch.save(URDMU(input_size=8).state_dict(), tmp_path / "good.pth")
    (tmp_path / "outdir").mkdir()
    out = str(tmp_path / "run" / "scorer.pth")
    cases = {
        "text.pth": ["--init", str(tmp_path / "text.pth")],
        "random.pth": ["--init", str(tmp_path / "random.pth")],
        "folder.pth: anomaly-scorer checkpoint is a folder": ["--init", str(tmp_path / "folder.pth")],
        "keys.pth: not an anomaly-scorer": ["--init", str(tmp_path / "keys.pth")],
        "module.pth: not a torch checkpoint of plain tensors": ["--init", str(tmp_path / "module.pth")],
        "--output .*outdir: is a folder": ["--output", str(tmp_path / "outdir")],
        "lr must be a finite": ["--lr", "nan"],
        "loss weight 'kl=abc'": ["--loss-weights", "kl=abc"],
        "loss weight 'focal=1'": ["--loss-weights", "focal=1"],
        "--features .*nowhere: not a folder": ["--features", str(tmp_path / "nowhere")],
    }
    base = ["--features", str(feats), "--annotations", str(db), "--output", out, "--device", "cpu"]
    base += ["--no-progress", "--init", str(tmp_path / "good.pth")]
    procs = {what: run_cli(*base, *extra, wait=False) for what, extra in cases.items()}
    for what, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2, (what, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(what, lines[0]), (
            what,
            stderr,
        )
        assert stdout == ""
    assert not (tmp_path / "run").exists() and list((tmp_path / "outdir").iterdir()) == []


@pytest.mark.filterwarnings("ignore:.*without annotation ignored")
def test_cli_refuses_a_training_set_without_normal_videos(tmp_path):
    feats, db = make_synthetic_set(tmp_path / "tr", 4, 8, seed=4)
    data = json.loads(db.read_text())
    (tmp_path / "anom.json").write_text(json.dumps({k: v for k, v in data.items() if v["label"]}))
    _, stderr, rc = run_cli(
        "--features", str(feats), "--annotations", str(tmp_path / "anom.json"), "--output",
        str(tmp_path / "s.pth"), "--steps", "1", "--no-progress", "--device", "cpu",
    )  # fmt: skip
    assert rc == 2 and "0 normal" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "s.pth").exists()
