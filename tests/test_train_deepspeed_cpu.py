"""DeepSpeed ZeRO-1 on CPU (gloo) through torchrun: a checkpoint with DeepSpeed's layout and a falling log.

Opt-in (HOLMESVAU_TEST_DEEPSPEED=1): the first DeepSpeed start on a machine compiles its CPU communication op,
which takes minutes; later runs take seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from holmesvau.testing.toy_sft import make_toy_data

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("HOLMESVAU_TEST_DEEPSPEED") != "1",
    reason="set HOLMESVAU_TEST_DEEPSPEED=1 (slow first build)",
)


def test_zero1_on_cpu(tmp_path, tiny_model_dir):
    meta = make_toy_data(tmp_path / "data", num_frames=16)
    out = tmp_path / "ds"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29631",
        "-m", "internvl_chat.train", "--model_name_or_path", str(tiny_model_dir), "--meta", str(meta),
        "--output_dir", str(out), "--clip_min_frames", "2", "--clip_max_frames", "2", "--event_frames", "2",
        "--video_frames", "2", "--per_device_train_batch_size", "1", "--max_steps", "2", "--save_steps", "2",
        "--dataloader_num_workers", "0", "--report_to", "none", "--max_seq_length", "1024",
        "--deepspeed", str(REPO / "internvl_chat" / "zero_stage1_config.json"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["global_step"] == 2
    assert (out / "checkpoint-2" / "global_step2").is_dir() and (
        out / "checkpoint-2" / "adapter_model.safetensors"
    ).is_file()
    assert len((out / "train_log.jsonl").read_text().splitlines()) >= 2
