"""LoRA merging (internvl_chat.merge, tools/merge_lora.py): the merged weights are W + (alpha / r) B A, and the
output folder never replaces what we did not write (holmesvau.output_guard)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import check_overwrite_policy, digest, leftovers, user_folder
from safetensors.torch import load_file

from holmesvau.output_guard import MARKER, OutputError
from internvl_chat.merge import MergeError, merge_lora, peft_quietly

REPO = Path(__file__).resolve().parents[1]
RANK, ALPHA = 4, 8


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A training run folder holding checkpoint-3 with a random (non-zero B) LoRA on the LM's q/v projections."""
    from peft import LoraConfig, get_peft_model
    from transformers import InternVLForConditionalGeneration

    torch.manual_seed(0)
    base = InternVLForConditionalGeneration.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    cfg = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        init_lora_weights=False,
    )
    with peft_quietly():
        model = get_peft_model(base, cfg)
    model.peft_config["default"].base_model_name_or_path = str(tiny_model_dir)
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(str(run / "checkpoint-3"))
    return run


def test_merged_weights_are_base_plus_scaled_lora_product(run_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "merged"
    summary = merge_lora(run_dir, out)
    assert summary["adapter"] == str(run_dir / "checkpoint-3") and summary["base"] == str(tiny_model_dir)
    assert summary["dtype"] == "float32" and summary["out"] == str(out)
    from transformers import InternVLForConditionalGeneration

    def weights(folder):  # by module name (the file's own key layout is transformers' business)
        return InternVLForConditionalGeneration.from_pretrained(str(folder), dtype=torch.float32).state_dict()

    base, merged = weights(tiny_model_dir), weights(out)
    lora = load_file(run_dir / "checkpoint-3" / "adapter_model.safetensors")
    assert merged.keys() == base.keys()
    pairs = {k.split(".lora_A")[0] for k in lora if ".lora_A" in k}
    assert len(pairs) == 2 * 2  # q and v of the tiny LM's two layers
    changed = set()
    for prefix in pairs:  # "base_model.model.model.language_model.layers.0.self_attn.q_proj"
        key = prefix.removeprefix("base_model.model.") + ".weight"
        a, b = lora[prefix + ".lora_A.weight"], lora[prefix + ".lora_B.weight"]
        torch.testing.assert_close(merged[key], base[key] + (ALPHA / RANK) * b @ a, atol=1e-6, rtol=1e-5)
        assert not torch.equal(merged[key], base[key])
        changed.add(key)
    for key in base.keys() - changed:
        assert torch.equal(merged[key], base[key]), key
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["files"]) == set(digest(out)) - {MARKER}
    ours = {"config.json", "model.safetensors", "tokenizer.json", "holmesvau_merge.json"}
    assert ours <= set(marker["files"])
    assert leftovers(tmp_path) == []


def test_refuses_a_folder_holding_unrelated_files(run_dir, tmp_path):
    """Regression: the merge used to save into an existing folder, replacing the user's config.json."""
    dst = user_folder(tmp_path, '{"mine": true}')
    before = digest(dst)
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / "merge_lora.py"), str(run_dir), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and "not written by HolmesVAU" in res.stderr
    assert str(dst) in res.stderr and "Traceback" not in res.stderr
    assert digest(dst) == before
    with pytest.raises(OutputError, match="not written by HolmesVAU"):  # not ours: not even with overwrite
        merge_lora(run_dir, dst, overwrite=True)
    assert digest(dst) == before and leftovers(tmp_path) == []


def test_overwrite_replaces_only_our_own_merge(run_dir, tmp_path):
    dst = tmp_path / "merged"
    merge_lora(run_dir, dst)
    check_overwrite_policy(lambda overwrite: merge_lora(run_dir, dst, overwrite=overwrite), dst)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["adapter", "run", "inside-adapter", "base", "inside-base"])
def test_refuses_the_adapter_and_the_base_model(run_dir, tiny_model_dir, tmp_path, where):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    dst = {
        "adapter": run / "checkpoint-3",
        "run": run,
        "inside-adapter": run / "checkpoint-3" / "merged",
        "base": base,
        "inside-base": base / "merged",
    }[where]
    before = digest(tmp_path)
    with pytest.raises(OutputError, match="source|not written by HolmesVAU"):
        merge_lora(run, dst, base=str(base), overwrite=True)
    assert digest(tmp_path) == before and leftovers(tmp_path) == [] and leftovers(run) == []


def test_unusable_inputs_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(MergeError, match="no such folder"):
        merge_lora(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MergeError, match="neither a LoRA adapter"):
        merge_lora(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(MergeError, match="base model 'gone/nowhere/model'.*--base"):
        merge_lora(run_dir, tmp_path / "out", base="gone/nowhere/model")
    assert not (tmp_path / "out").exists()
