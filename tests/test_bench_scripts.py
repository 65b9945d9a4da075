"""Every bench/ script runs here in a seconds-long smoke mode (tiny shapes, short clips, one repeat), and its JSON
figures are checked against what the inputs imply, so none can rot. (bench/throughput.py: test_bench_throughput.py;
bench/scorer_memory.py has tests of its own.) GPU-only scripts run their CPU smoke
path and refuse to start without CUDA otherwise."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
import torch
from conftest import REPO, shared_path

from holmesvau.testing.synthetic import make_video


def _bench(name: str):
    sys.path.insert(0, str(REPO / "bench"))  # reproduce_rate.py imports gpu_full_size.py
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(name: str, argv: list[str], monkeypatch, capsys) -> dict:
    """The script's main() on `argv`, in this process (no second torch import); its last stdout line, parsed."""
    mod = _bench(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    mod.main()
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _prompt_tokens(frames: int, text: int = 80) -> int:
    """gpu_full_size.prompt_ids by hand: BOS, 40 tokens, per frame 4 tokens + <img> + 256 context + </img>, text."""
    return 1 + 40 + frames * (4 + 1 + 256 + 1) + text


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("bench") / "clip.mp4", 70, width=64, height=48)


def test_decode_step(monkeypatch, capsys):
    out = _bench("decode_step").main(["--layers", "1", "--rows", "2", "--prompt", "32", "--steps", "2"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    assert (out["layers"], out["rows"], out["prompt_tokens"], out["steps"], out["dtype"]) == (
        1,
        2,
        32,
        2,
        "float32",
    )
    # K and V, per layer, row, KV head (8) and position, 128 values of 4 bytes
    assert out["kv_cache_mb"] == round(2 * 1 * 2 * 8 * 32 * 128 * 4 / 2**20, 1)
    assert all(out[k] > 0 for k in ("ms_step_serial_b1", "ms_step_concat", "ms_step_in_place"))
    assert out["in_place_speedup"] == pytest.approx(out["ms_step_concat"] / out["ms_step_in_place"], abs=0.02)
    assert out["rows_per_step_cost_vs_b1"] == pytest.approx(
        out["ms_step_in_place"] / out["ms_step_serial_b1"], abs=0.02
    )


def test_reproduce_rate(monkeypatch, capsys):
    shared = shared_path(".")
    argv = ["--frames", "1", "--new-tokens", "2", "--vit-batch", "1", "--shared", str(shared)]
    out = _run("reproduce_rate", argv, monkeypatch, capsys)
    counts = (shared / "data/UCF-Crime/test_annotation_with_frame_counts.txt").read_text().split("\n")
    frames = sum(int(line.split()[1]) for line in counts if line.strip())
    rows = (shared / "data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl").read_text().splitlines()
    answers = [json.loads(r)["anwser"] for r in rows if r.strip()]
    assert (out["ucf_test_frames"], out["hivau_rows"], out["prompt_tokens"]) == (
        frames,
        len(answers),
        _prompt_tokens(1),
    )
    assert out["mean_answer_words"] == round(sum(len(a.split()) for a in answers) / len(answers), 1)
    rate = out["llm_prefill_tokens_per_s"]  # None when the LLM's share of the prefill is below the noise
    llm_s = out["prefill_s"] - 1 / out["vit_tiles_per_s"]  # the prefill less its one frame's ViT
    if llm_s > 0.05:  # well above the rounding of the figures
        assert rate == pytest.approx(out["prompt_tokens"] / llm_s, rel=0.05)
    want = 12 / out["vit_tiles_per_s"] + (3265 / rate if rate else 0.0)
    assert out["prefill_12_frames_s"] == pytest.approx(want, abs=0.02)
    dense = out["dense_pass_s_per_1000_frames"]
    assert dense == pytest.approx(1000 / 16 / out["vit_tiles_per_s"], rel=0.01)
    assert out["ucf_dense_pass_h"] == pytest.approx(frames / 1000 * dense / 3600, abs=0.01)
    assert out["xd_dense_pass_h_per_video_hour"] == pytest.approx(24 * dense / 1000, abs=0.001)
    if out["decode_tokens_per_s"]:
        per_row = out["prefill_12_frames_s"] + out["mean_answer_words"] / out["decode_tokens_per_s"]
        assert out["reasoning_s_per_row"] == pytest.approx(per_row, abs=0.01)
        assert out["reasoning_h"] == pytest.approx(len(answers) * per_row / 3600, abs=0.01)


def test_gpu_full_size_smoke_and_refusal(monkeypatch, capsys):
    argv = ["--smoke", "--frames", "1", "--new-tokens", "2", "--vit-batch", "2", "--train-batches", "1"]
    out = _run("gpu_full_size", argv, monkeypatch, capsys)
    assert out["device"] == "cpu-smoke" and out["cls_dim"] == 64  # the tiny InternViT's width
    assert out["prompt_tokens"] == _prompt_tokens(1)
    assert out["ats_dense_vit_s_per_1000_frames"] == pytest.approx(
        1000 / 16 / out["vit_tiles_per_s"], rel=0.02
    )
    assert out["lora_trainable_m"] > 0 and out["train_step_s_bs1"] > 0 and "train_step_s_bs2" not in out
    if not torch.cuda.is_available():
        monkeypatch.setattr(sys, "argv", ["gpu_full_size.py"])
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            _bench("gpu_full_size").main()


def test_gpu_pipeline_smoke_and_refusal(clip, tmp_path, monkeypatch, capsys):
    out = _run(
        "gpu_pipeline",
        [str(clip), "--smoke", "--max-new-tokens", "2", "--work", str(tmp_path)],
        monkeypatch,
        capsys,
    )
    # 70 frames <= 16 x 12: uniform sampling, no dense pass; the video as generated
    assert out["sampling"] == "uniform" and out["dense_scores"] == 0 and len(out["frame_indices"]) == 12
    assert out["video"] == {"num_frames": 70, "fps": 30.0} and out["dtype"] == "torch.float32"
    assert (tmp_path / "original").is_dir() and (tmp_path / "anomaly_scorer.pth").is_file()
    if not torch.cuda.is_available():
        monkeypatch.setattr(sys, "argv", ["gpu_pipeline.py", str(clip)])
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            _bench("gpu_pipeline").main()


def test_watch_agreement(clip, tmp_path, monkeypatch, capsys):
    """A 70-frame clip has 5 snippets: a window of 16 covers it, and with 4 snippets of right context every score
    is taken over the whole clip, so that online curve is the offline one. (A given tiny scorer: no training.)"""
    from holmesvau.testing import make_random_scorer

    scorer = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    argv = ["--videos", str(clip), "--window", "16", "--scorer", str(scorer)]
    out = _run("watch_agreement", argv, monkeypatch, capsys)
    assert out["window"] == 16 and list(out["clips"]) == ["clip/given"]
    row = out["clips"]["clip/given"]
    assert row["snippets"] == math.ceil(70 / 16)
    assert set(row["sweep"]) == {f"w{w}_d{d}" for w in (16, 32, 128) for d in (0, 1, 2, 4)}
    whole = row["sweep"]["w16_d4"]
    assert whole["max_abs_diff"] == 0.0 and whole["mean_abs_diff"] == 0.0
    for figures in (row["default"], *row["sweep"].values()):
        assert 0.0 <= figures["mean_abs_diff"] <= figures["max_abs_diff"]


def test_ats_pipeline_stages(clip, monkeypatch, capsys):
    """Each measured stage (normally a child process) on the clip: frame counts the clip implies; ATS selects 12
    frames among the dense ones; the parent refuses to run without a video."""
    bench = _bench("ats_pipeline")
    floor = bench.stage_floor(str(clip), "pyav", 1)
    ours = bench.stage_ours(str(clip), "pyav", 1, 16, 4)
    naive = bench.stage_naive(str(clip), 16)
    assert floor["frames"] == 70 and ours["frames"] == naive["frames"] == math.ceil(70 / 16)
    assert ours["decoded"] == 64 + 1  # up to the last planned frame; a clip without B-frames: each one
    ats = bench.stage_ats(str(clip), "pyav", 4, 12)
    assert (ats["frames"], ats["dense"]) == (70, math.ceil(70 / 4)) and len(ats["selected"]) == 12
    assert set(ats["selected"]) <= set(range(0, 70, 4)) and ats["selected"] == sorted(ats["selected"])
    monkeypatch.setattr(sys, "argv", ["ats_pipeline.py"])
    with pytest.raises(SystemExit):
        bench.main()
    assert "VIDEO is required" in capsys.readouterr().err


def test_load_time_child(tiny_original_dir, tmp_path, monkeypatch):
    """One measurement of bench/load_time.py (normally a child process): loading an original-format checkpoint
    converts in memory and writes nothing; converting to disk writes the converted folder."""
    bench = _bench("load_time")
    monkeypatch.setenv("HOLMESVAU_CACHE", str(tmp_path))  # child() sets it: restored after the test
    loaded = bench.child("load", tiny_original_dir, "cpu", tmp_path / "a")
    assert loaded["written_to_cache_gb"] == 0.0 and loaded["dtype"] == "float32" and loaded["seconds"] > 0
    converted = bench.child("convert_to_disk", tiny_original_dir, "cpu", tmp_path / "b")
    assert (tmp_path / "b" / "converted" / "config.json").is_file()
    assert converted["written_to_cache_gb"] == round(bench._tree_bytes(tmp_path / "b") / 1e9, 3)


def test_gpu_checks_sh_command_lines_parse(monkeypatch):
    """Every bench command of bench/gpu_checks.sh (the one GPU lease) is accepted by its script's argparse: a renamed
    or removed flag fails here, not minutes into a GPU run. Parsing only: the parser stops the script right after."""
    import argparse
    import re
    import shlex

    class Parsed(Exception):
        pass

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)  # SystemExit(2) on a flag the script does not have
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    text = (REPO / "bench" / "gpu_checks.sh").read_text()
    text = text.replace("${HOLMESVAU_SHARED:-../shared}", str(shared_path(".")))
    lines = re.findall(r"\$PY bench/(\w+)\.py([^>\n;&]*)", text.replace("\\\n", " "))
    assert len(lines) == 7, lines
    for name, rest in lines:
        argv = shlex.split(rest)
        monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
        with pytest.raises(Parsed):
            mod = _bench(name)
            mod.main(argv) if "argv" in mod.main.__code__.co_varnames else mod.main()


def test_watch_latency(tmp_path, monkeypatch, capsys):
    """Latency (real-time play), real-time factor and the long-stream memory run with 2 cameras in one watcher, on
    a generated clip: the figures are those the inputs imply (snippets played, stream length, planted events)."""
    fps, frames, latency_s, minutes = 25.0, 150, 2.0, 1.6
    clip = make_video(tmp_path / "clip.mp4", frames, fps=fps, width=320, height=240)
    argv = ["--clip", str(clip), "--latency-s", str(latency_s), "--long-minutes", str(minutes), "--long-cameras",
            "2", "--work-dir", str(tmp_path / "work")]  # fmt: skip
    out = _run("watch_latency", argv, monkeypatch, capsys)
    # snippets every 16 frames; the one at or past latency_s stops the play
    assert out["latency_snippets"] == sum(k * 16 / fps < latency_s for k in range(frames)) + 1
    assert 0 < out["latency_p50_s"] <= out["latency_p95_s"] < 1.0
    assert out["fast_stream_s"] == pytest.approx((frames - 1) / fps, abs=1e-6) and out["realtime_factor"] > 0
    assert out["long_cameras"] == 2 and out["long_stream_min"] == pytest.approx(minutes, abs=1 / 60)
    planted = len(
        range(60, int(minutes * 60) - 30, 120)
    )  # the bench plants a 20 s event every 2 min from 60 s
    assert out["long_planted"] == planted == 1 and out["long_events"] == [planted, planted]
    assert out["long_explained"] == 2 * planted
    peaks = out["rss_peak_mb_by_window"]  # windows of a sixth of the stream (5 min of a 30 min one)
    assert out["rss_window_min"] == round(minutes / 6, 2) and len(peaks) == 6
    assert out["rss_growth_mb"] == pytest.approx(peaks[-1] - peaks[1], abs=0.11)
