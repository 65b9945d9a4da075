"""Issue 24: a reproduction says what it is (partial / smoke: first line, results.json, no Δ; warnings; undefined
metrics with the reason; a smoke subset with both classes), data checks name the folder they searched, and a bare
temporal annotation does not silently drop score files. No model: the data check, the table and evaluate.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from holmesvau.eval.paper_table import mark_partial, results_markdown
from holmesvau.eval.score_files import save_scores
from holmesvau.reproduce import DataError, ReproduceConfig, check_data

REPO = Path(__file__).resolve().parents[1]


def test_data_root_finds_the_annotation_folders_beside_it(shared, tmp_path):
    """`--data-root ../shared/data/HIVAU-70k`: UCF-Crime/ and XD-Violence/ sit beside it, not inside. The missing
    videos are then named with the folder they were looked for in."""
    root = shared("data/HIVAU-70k")
    cfg = ReproduceConfig(root, tmp_path / "o", tasks=("detection-ucf", "detection-xd"))
    with pytest.raises(DataError) as e:
        check_data(cfg)
    msg = str(e.value)
    assert "annotation file(s) not found" not in msg, msg
    assert (
        f"detection-ucf: 290 of 290 test videos missing in {root / 'videos/ucf-crime/videos/test'}: " in msg
    )
    assert (
        f"detection-xd: 800 of 800 test videos missing in {root / 'videos/xd-violence/videos/test'}: " in msg
    )


def test_a_smoke_subset_takes_both_classes(shared, tmp_path):
    """`--limit 3` on XD-Violence took its first three videos, all normal, and printed AP "–". The subset now
    alternates anomalous and normal videos in the test list's order (oracle: the two files read here)."""
    xd = shared("data/XD-Violence")
    anomalous = {
        line.split()[0] for line in (xd / "annotations.txt").read_text().splitlines() if line.strip()
    }
    order = [ln.strip() for ln in (xd / "test_videos.txt").read_text().splitlines() if ln.strip()]
    first_a = [n for n in order if n in anomalous][:2]
    first_n = [n for n in order if n not in anomalous][:1]
    assert [n for n in order[:3] if n in anomalous] == []  # the old subset: three normal videos
    cfg = ReproduceConfig(tmp_path, tmp_path / "o", tasks=("detection-xd",), xd_annotations=xd, limit=3)
    cfg.allow_partial = True
    (tmp_path / "videos/xd-violence/videos/test").mkdir(parents=True)
    with pytest.raises(DataError, match="3 of 3 test videos missing in"):
        check_data(cfg)
    from holmesvau.reproduce import _check_detection

    data = _check_detection(cfg, "detection-xd")
    assert list(data.gt) == [n for n in order if n in set(first_a + first_n)]
    assert (data.listed, data.listed_all) == (3, 800)


def _det(n, listed, auc, partial, anomalous_frames=10, warnings=None) -> dict:
    return {
        "dataset": "UCF-Crime", "description": "d", "auc": auc, "ap": auc, "ap_trapezoid": auc,
        "n_videos": n, "n_videos_listed": listed, "n_videos_in_protocol": 290, "n_frames": 100,
        "n_anomalous_frames": anomalous_frames, "partial": partial, "warnings": warnings or {},
        "comparison": {"metric": "AUC", "paper": 88.96, "ours": None if auc is None else 100 * auc,
                       "delta": None if auc is None else 100 * auc - 88.96},
    }  # fmt: skip


@pytest.mark.parametrize("case", ["allow_partial", "limit", "complete"])
def test_a_partial_result_says_so_first_and_has_no_delta(case):
    """--allow-partial on 2 of 290 videos wrote Δ −27.31 with no banner; --limit 3 said "smoke run" in the table but
    `"partial": false` and "3 of 3". Frame-count mismatches now come as warnings; an undefined metric says why."""
    det = {
        "allow_partial": _det(2, 290, 0.6165, True, warnings={"Abuse028_x264": "score file says 120 frames"}),
        "limit": _det(3, 3, None, False, anomalous_frames=0),
        "complete": _det(290, 290, 0.9, False),
    }[case]
    results = {"config": {"model": "m", "scorer": "s", "limit": 3 if case == "limit" else None},
               "detection": {"ucf-crime": det}}  # fmt: skip
    mark_partial(results, results["config"]["limit"])
    md = results_markdown(results)
    first = md.splitlines()[0]
    c = det["comparison"]
    if case == "complete":
        assert results["partial"] is False and first.startswith("# Reproduction")
        assert c["delta"] == pytest.approx(90 - 88.96) and "| +1.04 | 290 of 290 |" in md
        return
    assert results["partial"] is True and first.startswith("**PARTIAL RESULT, not comparable to the paper")
    assert c["delta"] is None and "| – |" in md
    if case == "allow_partial":
        assert "ucf-crime: 2 of 290 videos evaluated" in first and "| 2 of 290 (partial) |" in md
        assert results["warnings"] == ["ucf-crime: Abuse028_x264: score file says 120 frames"]
        assert md.rstrip().endswith("- ucf-crime: Abuse028_x264: score file says 120 frames")
    else:
        assert "smoke run: --limit 3" in first and "| 3 of 290 (partial) |" in md
        assert "AUC undefined: every evaluated frame is normal (3 normal videos)" in md


def test_a_bare_temporal_annotation_does_not_drop_score_files(shared, tmp_path):
    """`evaluate.py detection --annotations XD-Violence/annotations.txt` evaluated the 500 annotated videos of 800
    and only noted "unmatched_scores: 300". It is now an error naming the fix, unless --allow-missing."""
    xd = shared("data/XD-Violence")
    anomalous = [
        line.split()[0] for line in (xd / "annotations.txt").read_text().splitlines() if line.strip()
    ]
    normal = [ln.strip() for ln in (xd / "test_videos.txt").read_text().splitlines() if ln.strip()]
    normal = [n for n in normal if n not in set(anomalous)]
    scores = tmp_path / "scores"
    rng = np.random.default_rng(0)
    for name in anomalous[:2] + normal[:2]:
        save_scores(scores / f"{name}.npz", rng.random(8), 16, n_frames=128)
    ann = tmp_path / "annotations.txt"
    ann.write_text("".join(ln + "\n" for ln in (xd / "annotations.txt").read_text().splitlines()
                           if ln.split() and ln.split()[0] in anomalous[:2]))  # fmt: skip
    base = [sys.executable, str(REPO / "tools/evaluate.py"), "detection", "--scores", str(scores),
            "--annotations", str(ann), "--output", str(tmp_path / "r.json")]  # fmt: skip
    proc = subprocess.run(base, capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and err.count("\n") == 0, err
    assert f"error: 2 score file(s) in {scores} have no line in {ann}" in err
    assert "--protocol xd-violence" in err and "--test-list" in err and "--allow-missing" in err
    assert not (tmp_path / "r.json").exists()
    proc = subprocess.run([*base, "--allow-missing"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "evaluated 2 of 2 videos" in proc.stdout, proc.stderr
