"""bench/throughput.py counts what it claims: a short run on the tiny model and real clips, its hook-counted
figures checked against what the rows themselves say (one generate and FRAMES ViT tiles a row serially, FRAMES a
distinct cut file when batched), its answers against serial, and the report's replayed serial path against the
figures counted from the report's questions."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO, shared_path

ROWS, FRAMES, NEW_TOKENS = 8, 8, 3


def _bench():
    spec = importlib.util.spec_from_file_location("bench_throughput", REPO / "bench" / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run():
    videos = shared_path("videos")
    instructions = shared_path("data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl")
    bench = _bench()
    argv = f"--rows {ROWS} --max-new-tokens {NEW_TOKENS} --batch-size 4 --frames {FRAMES}".split()
    argv += ["--videos", str(videos), "--instructions", str(instructions), "--report-replay"]
    result = bench.main(argv)
    return result, bench.pick_rows(instructions, ROWS, 0)


def test_serial_figures_match_the_rows(run):
    result, rows = run
    assert result["rows"] == len(rows) == ROWS
    assert result["generate_calls_serial"] == ROWS
    assert result["vit_tiles_serial"] == ROWS * FRAMES
    # every generated token after a generate's first costs one decode forward
    assert result["decode_steps_serial"] == result["new_tokens_serial"] - ROWS


def test_batched_encodes_each_cut_file_once_and_answers_as_serial(run):
    result, rows = run
    cut_files = {r.video for r in rows}
    assert len(cut_files) < ROWS  # the drawn rows do share frame sets, or this test would prove little
    assert result["vit_tiles_ours"] == FRAMES * len(cut_files)
    assert result["same_answers"] == ROWS
    assert result["new_tokens_ours"] == result["new_tokens_serial"]
    assert result["prefill_tokens_ours"] < result["prefill_tokens_serial"]
    assert {k: v for k, v in result["levels"].items() if v} == {
        t: sum(r.type == t for r in rows) for t in {r.type for r in rows}
    }


def test_report_counted_before_equals_replayed(run):
    result, _ = run
    assert result["report_before"] == "measured: one chat() per question"
    assert result["report_generate_calls_before"] == result["report_questions"]
    assert result["report_vit_tiles_before"] == result["report_vit_tiles_counted"]
    assert result["report_vit_tiles_after"] <= 0.40 * result["report_vit_tiles_before"]  # the target
