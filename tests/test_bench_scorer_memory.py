"""bench/scorer_memory.py reports what its inputs imply: the lengths it was given, the form the scorer's budget
picks at each, every form's scores equal to UR-DMU's direct form, the direct form's memory growing with the square
of the length and ours within what the switch counts, one training step with the same loss in every form."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import REPO, shared_path

from holmesvau.ats import URDMU

LENGTHS = (300, 1200)


@pytest.fixture(scope="module")
def result():
    """One smoke run in a fresh process (its memory figures are the growth of that process's resident set)."""
    shared_path("fixtures/ats-original/urdmu_random.pth")  # the bench's default weights
    lengths = ",".join(map(str, LENGTHS))
    cmd = [
        sys.executable,
        str(REPO / "bench" / "scorer_memory.py"),
        "--smoke",
        "--lengths",
        lengths,
        "--threads",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_length_and_form_is_reported(result):
    assert result["lengths"] == list(LENGTHS)
    assert result["rounds"] == 1 and result["threads"] == 1 and not result["failed"] and not result["skipped"]
    scorer = URDMU()
    assert result["direct_budget_mb"] == scorer.direct_budget / 2**20
    for n in LENGTHS:
        form = "direct" if scorer.direct_bytes(1, n) <= scorer.direct_budget else "lean"
        assert result["forms"][str(n)] == form == "direct"
        for name in ("ours", "ours_lean", "direct"):
            assert result["ms"][name][str(n)] > 0 and result["cpu_ms"][name][str(n)] > 0
        ms = result["ms"]
        assert result["ratio_vs_direct"][str(n)] == pytest.approx(
            ms["ours"][str(n)] / ms["direct"][str(n)], abs=2e-3
        )


def test_every_form_scores_as_the_direct_form(result):
    for name in ("ours", "ours_lean"):
        for n in LENGTHS:
            assert result["max_abs_diff_vs_direct"][name][str(n)] <= 1e-5
    assert result["max_abs_diff_vs_direct"]["direct"] == {str(n): 0.0 for n in LENGTHS}


def test_memory_direct_form_quadratic_ours_within_its_count(result):
    """UR-DMU's form holds q k^T and its softmax for 4 heads (8 n^2 floats) at least: its growth from 300 to 1,200
    snippets is at least that difference. Ours (its direct form here) stays within URDMU.direct_bytes (plus
    one-time buffers)."""
    growth = result["peak_growth_mb"]
    lo, hi = LENGTHS
    assert growth["direct"][str(hi)] - growth["direct"][str(lo)] >= 8 * 4 * (hi * hi - lo * lo) / 2**20
    for (
        n
    ) in LENGTHS:  # + 4 MB: one-time buffers (cached distance matrix, allocator arenas) that no length grows
        assert growth["ours"][str(n)] <= URDMU().direct_bytes(1, n) / 2**20 + 4
    assert growth["ours"][str(hi)] < growth["direct"][str(hi)] / 2


def test_training_step_same_loss_in_every_form(result):
    step = result["train_step"]
    assert (step["length"], step["batch"]) == (100, 2)
    assert set(step["ms"]) == set(step["loss"]) == {"ours", "direct"}
    assert math.isfinite(step["loss"]["ours"])
    assert step["loss"]["ours"] == pytest.approx(step["loss"]["direct"], abs=1e-5)
    assert step["ratio_vs_direct"] == pytest.approx(step["ms"]["ours"] / step["ms"]["direct"], abs=2e-3)
