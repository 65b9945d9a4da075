"""Small builders shared by several test files (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np


def raw_db_entry(n_frames: int, fps: float, label: list[str], events: list[list[float]]) -> dict:
    """One video of a raw annotation database (`ucf_database_*.json` layout), one clip per event."""
    return {
        "n_frames": n_frames,
        "fps": fps,
        "label": label,
        "events": events,
        "clips": [[ev] for ev in events],
        "clips_caption": [["c"] for _ in events],
        "events_summary": ["s" for _ in events],
        "events_summary_split": [{"judgement": "j", "description": "d"} for _ in events],
        "video_summary": "v",
        "video_summary_split": {"judgement": "j", "description": "d"},
    }


def predict_args(d, scorer, model, out) -> list[str]:
    """tools/predict.py arguments for a small generated set in `d` (test.jsonl + videos/), tiny model on CPU."""
    return ["--annotations", str(d / "test.jsonl"), "--video-root", str(d / "videos"), "--model", str(model),
            "--scorer", str(scorer), "--output", str(out), "--select-frames", "2", "--dense-stride", "4",
            "--max-new-tokens", "3", "--device", "cpu", "--quiet"]  # fmt: skip


# --- ATS oracles ----------------------------------------------------------------------------------------------------
def naive_density_sampling(scores, num_frames: int, tau: float = 0.1) -> list[int]:
    """Density-aware sampling re-implemented naively (plain Python, no numpy) as an oracle for the library's sampler.

    Cumulative sum of score + tau with a leading 0; `num_frames` targets evenly spaced from 1 to the rounded total;
    each target mapped to a position by linear interpolation on the segment holding it (the last segment
    extrapolates past the end); floored; clamped to [0, T - 1]. No more scores than frames, or scores summing below
    1: evenly spaced positions over [0, T - 1], rounded half to even.
    """
    s = [float(x) for x in scores]
    t, n = len(s), num_frames
    if n <= 0:
        return []
    if t <= n or sum(s) < 1:
        return [round(k * (t - 1) / (n - 1)) if n > 1 else 0 for k in range(n)]
    cum = [0.0]
    for x in s:
        cum.append(cum[-1] + x + tau)
    total = round(cum[-1])
    out = []
    for k in range(n):
        target = 1 + k * (total - 1) / (n - 1) if n > 1 else 1.0
        seg = next((i for i in range(t) if cum[i] <= target <= cum[i + 1]), t - 1)
        pos = seg + (target - cum[seg]) / (cum[seg + 1] - cum[seg])
        out.append(min(t - 1, max(0, math.floor(pos))))
    return out


def expected_ats_frames(result: dict, num_frames: int, tau: float = 0.1) -> list[int]:
    """The frames ATS must pick given a result's reported dense scores and dense frame indices (AnalysisResult
    dict or inference.py --output JSON)."""
    dense = result["dense_frame_indices"]
    return [dense[p] for p in naive_density_sampling(result["dense_scores"], num_frames, tau)]


def make_planted_scorer(lm, path, seed: int = 0):
    """A URDMU checkpoint (released key layout) whose curve is ~1 on `synthetic_frame(bright=True)` frames and ~0 on
    ordinary ones, for `lm`'s vision encoder: everything but one path is zeroed, so that
    score = sigmoid(12 * relu((cls . d - c) / s) - 6), with d the direction from ordinary to bright CLS features and c
    the midpoint between the two groups (measured on 16 frames of each). Returns the checkpoint path."""
    import torch

    from holmesvau.ats import URDMU
    from holmesvau.model import vit_cls_features
    from holmesvau.preprocess import frames_to_pixel_values
    from holmesvau.testing.synthetic import synthetic_frame

    def cls(bright: bool) -> torch.Tensor:
        frames = np.stack([synthetic_frame(i * 7, bright=bright) for i in range(16)])
        with torch.no_grad():
            return vit_cls_features(lm, frames_to_pixel_values(frames)).double().cpu()

    normal, bright = cls(False), cls(True)
    d = bright.mean(0) - normal.mean(0)
    pn, pb = normal @ d, bright @ d
    assert pb.min() > pn.max(), "bright and ordinary frames are not separable along the mean difference"
    c = float((pb.min() + pn.max()) / 2)
    s = float(pb.min()) - c
    torch.manual_seed(seed)
    model = URDMU(input_size=d.numel())
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    keep = (
        "norm.",
        "memory_block",
        "encoder_var",
        "to_qkv",
        "net.0.",
    )  # harmless once the outputs are zeroed
    state.update({k: v for k, v in model.state_dict().items() if any(x in k for x in keep)})
    state["embedding.conv_1.0.weight"][0, :, 1] = (d / s).float()  # centre tap only: no temporal smoothing
    state["embedding.conv_1.0.bias"][0] = -c / s
    state["cls_head.mlp.0.weight"][0, 0] = 1.0
    state["cls_head.mlp.2.weight"][0, 0] = 12.0
    state["cls_head.mlp.2.bias"][0] = -6.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def user_folder(parent: Path, config: str = "{}") -> Path:
    """parent/mine: a folder of the user's own files (notes.txt and a config.json), nothing a tool of ours wrote."""
    dst = parent / "mine"
    dst.mkdir()
    (dst / "notes.txt").write_text("my notes")
    (dst / "config.json").write_text(config)
    return dst


def tagged_processes(token: str) -> dict[int, str]:
    """Live processes (pid -> command line) whose environment has HOLMESVAU_TEST_RUN=`token`: all a run started.
    Reads /proc: on a system without it the test fails (it cannot check what it is for), it does not skip."""
    import pytest

    if not Path("/proc/self/environ").is_file():
        pytest.fail("this test lists the processes a run started through /proc (Linux); there is none here")
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie waits to be reaped: it runs nothing
            if f"HOLMESVAU_TEST_RUN={token}".encode() in (d / "environ").read_bytes().split(b"\0"):
                found[int(d.name)] = (
                    (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
        except (OSError, IndexError):
            continue
    return found


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> sha256 of its bytes (an independent record of what was there)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(parent: Path) -> list[str]:
    """Staging folders of holmesvau.output_guard left in `parent` (there should be none after any run)."""
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def kill_and_expect_no_tagged(proc, token: str, sig: int, what: str) -> None:
    """Send `sig` to `proc` only (as `kill PID` does, not its process group), then require that every process
    tagged with `token` (tagged_processes) is gone within 5 s; whatever is left is SIGKILLed before failing."""
    import os
    import signal
    import time

    try:
        os.kill(proc.pid, sig)
        proc.wait()
        deadline = time.time() + 5
        while tagged_processes(token) and time.time() < deadline:
            time.sleep(0.1)
        assert tagged_processes(token) == {}, f"processes left running after {what} was killed"
    finally:
        proc.kill()
        for pid in tagged_processes(token):  # only what this test started
            os.kill(pid, signal.SIGKILL)


def check_overwrite_policy(write, dst: Path) -> dict[str, str]:
    """The holmesvau.output_guard rules for a tool `write(overwrite: bool)` whose output folder `dst` it has just
    written: a rerun without overwrite refuses and changes nothing; with overwrite it replaces its own (even a
    changed) file; a file the user added makes overwrite refuse, and that file survives. -> the first digest."""
    import pytest

    from holmesvau.output_guard import MARKER, OutputError

    first = digest(dst)
    with pytest.raises(OutputError, match="--overwrite"):  # ours, but not asked to replace it
        write(False)
    assert digest(dst) == first
    (dst / "model.safetensors").write_bytes(b"stale")  # a file of ours, changed: replaced by the rerun
    write(True)
    assert {k: v for k, v in digest(dst).items() if k != MARKER} == {
        k: v for k, v in first.items() if k != MARKER
    }
    (dst / "my_eval.json").write_text("{}")  # the user added a file: replacing the folder would delete it
    with pytest.raises(OutputError, match="my_eval.json"):
        write(True)
    assert (dst / "my_eval.json").read_text() == "{}"
    return first


# tools/predict.py, each output row followed by a pause of 0.25 s
SLOW_WRITES = """
import runpy, sys, time
from holmesvau.jsonl import JsonlAppender
write = JsonlAppender.write
def slow_write(self, row):
    write(self, row)
    time.sleep(0.25)
JsonlAppender.write = slow_write
sys.argv[0] = "tools/predict.py"
runpy.run_path("tools/predict.py", run_name="__main__")
"""
