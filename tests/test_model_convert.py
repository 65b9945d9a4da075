"""Conversion against the ORIGINAL code's outputs: the original-format tiny checkpoint of ../shared, converted by
tools/convert_internvl2.py and loaded with plain transformers (no holmesvau loader, no remote code), reproduces the
logits, ViT and projector features, prompt ids and greedy tokens the original InternVL2 code computed; its config
carries the original config's facts. Plus round trips, and clear refusals of bad checkpoints."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from holmesvau.model import CheckpointError, convert_checkpoint, load_model
from holmesvau.model.convert import convert_state_dict, read_original_config
from holmesvau.model.loading import default_dtype, resolve_checkpoint
from holmesvau.testing.tiny_model import to_original_state_dict

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4  # float32 CPU, as ../shared/README.md asks


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(checkpoint folder, reference.json, reference outputs) of the original code."""
    from conftest import shared_path

    root = shared_path("fixtures/internvl2-original-tiny")
    ref = json.loads((root / "reference.json").read_text())
    return root / "checkpoint", ref, load_file(str(root / "reference_outputs.safetensors"))


@pytest.fixture(scope="module")
def converted(original, tmp_path_factory):
    """The original checkpoint converted by the command-line tool."""
    dst = tmp_path_factory.mktemp("convert") / "native"
    res = subprocess.run(
        [sys.executable, "tools/convert_internvl2.py", str(original[0]), str(dst)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return dst


@pytest.fixture(scope="module")
def plain(converted):
    """The converted folder loaded with transformers alone."""
    from transformers import AutoTokenizer, InternVLForConditionalGeneration

    model = InternVLForConditionalGeneration.from_pretrained(str(converted), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(converted))


def _prompt_text(ref: dict) -> str:
    n = ref["num_image_token_per_tile"]
    return ref["prompt_text"].replace(f"<IMG_CONTEXT>*{n}", "<IMG_CONTEXT>" * n)


def test_converted_logits_and_features_match_original(plain, original):
    model, _ = plain
    _, _, out = original
    with torch.no_grad():
        vit = model.model.vision_tower(pixel_values=out["pixel_values"]).last_hidden_state
        proj = model.model.get_image_features(pixel_values=out["pixel_values"]).pooler_output
        logits = model(input_ids=out["input_ids"], pixel_values=out["pixel_values"]).logits
    assert vit.shape == out["vit_last_hidden_state"].shape and logits.shape == out["logits"].shape
    assert (vit - out["vit_last_hidden_state"]).abs().max() < TOL
    assert (proj - out["projected_image_features"]).abs().max() < TOL
    assert (logits - out["logits"]).abs().max() < TOL


def test_converted_tokenizer_gives_original_prompt_ids(plain, original):
    _, tok = plain
    _, ref, out = original
    assert tok(_prompt_text(ref)).input_ids == out["input_ids"][0].tolist()
    assert tok.convert_tokens_to_ids("<IMG_CONTEXT>") == ref["img_context_token_id"] == 2002


def test_original_folder_loads_in_memory(tiny_original_dir, tiny_model_dir, tmp_path):
    """Loading an original-format folder converts in memory: same logits as the native tiny checkpoint, and no
    second copy of the weights in the cache; tools that need a native folder convert once into the cache."""
    a = load_model(tiny_original_dir, device="cpu", cache_dir=tmp_path / "cache")
    b = load_model(tiny_model_dir, device="cpu")
    ids = torch.tensor([[1, 5, 17, 300, 42]])
    with torch.no_grad():
        la, lb = a.model(input_ids=ids).logits, b.model(input_ids=ids).logits
    assert torch.allclose(la, lb, atol=1e-5)
    assert a.random_weights is True and a.path == tiny_original_dir
    assert not (tmp_path / "cache").exists()
    native = resolve_checkpoint(tiny_original_dir, tmp_path / "cache")
    assert native.parent == tmp_path / "cache" / "converted" and (native / "model.safetensors").is_file()
    assert resolve_checkpoint(tiny_original_dir, tmp_path / "cache") == native


def test_converted_greedy_generation_matches_original(plain, original):
    model, tok = plain
    _, ref, out = original
    ids = out["input_ids"]
    with torch.no_grad():
        gen = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=out["pixel_values"],
            max_new_tokens=ref["generation_config"]["max_new_tokens"],
            do_sample=False,
        )
    new = gen[0, ids.shape[1] :].tolist()
    assert new == out["generate_output"][0, 1:].tolist()  # the original's output starts with bos
    assert tok.decode(new, skip_special_tokens=True).strip() == ref["response"]  # the original's chat strips


def test_converted_config_keeps_original_facts(plain, original, converted):
    import sentencepiece as spm

    model, _ = plain
    src, ref, _ = original
    ocfg = json.loads((src / "config.json").read_text())
    vis, llm = ocfg["vision_config"], ocfg["llm_config"]
    cfg = model.config
    assert (cfg.vision_config.hidden_size, cfg.vision_config.num_hidden_layers) == (vis["hidden_size"], 2)
    assert cfg.vision_config.image_size == [448, 448] and cfg.vision_config.patch_size == [14, 14]
    assert cfg.downsample_ratio == ocfg["downsample_ratio"] == 0.5
    assert cfg.image_seq_length == ref["num_image_token_per_tile"] == 256
    assert cfg.image_token_id == ref["img_context_token_id"]
    t = cfg.text_config
    assert t.model_type == "llama" and not cfg.tie_word_embeddings
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) == (64, 2, 4, 2)
    assert t.vocab_size == llm["vocab_size"] == 2009 and t.intermediate_size == llm["intermediate_size"]
    assert t.rope_parameters["rope_type"] == "dynamic" and t.rope_parameters["factor"] == 2.0
    assert t.rope_parameters["rope_theta"] == llm["rope_theta"] == 1_000_000
    # generation stops at <|im_end|>: its id in the original sentencepiece model
    im_end = spm.SentencePieceProcessor(model_file=str(src / "tokenizer.model")).piece_to_id("<|im_end|>")
    gen = json.loads((converted / "generation_config.json").read_text())
    assert gen["eos_token_id"] == im_end == model.generation_config.eos_token_id


def test_state_dict_conversion_round_trips(original):
    """A round trip only (convert, then the inverse): every tensor of the original comes back bit for bit."""
    src = original[0]
    sd = load_file(str(src / "model.safetensors"))
    cfg = read_original_config(src)
    back = to_original_state_dict(convert_state_dict(sd, cfg), cfg)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_save_pretrained_round_trip_keeps_original_logits(plain, original, tmp_path):
    model, _ = plain
    _, _, out = original
    model.save_pretrained(tmp_path / "copy")
    from transformers import InternVLForConditionalGeneration

    again = InternVLForConditionalGeneration.from_pretrained(str(tmp_path / "copy"), dtype=torch.float32)
    with torch.no_grad():
        logits = again(input_ids=out["input_ids"], pixel_values=out["pixel_values"]).logits
    assert (logits - out["logits"]).abs().max() < TOL


@pytest.fixture
def broken(original, tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(original[0], dst)
    for f in dst.iterdir():
        f.chmod(0o644)  # ../shared is read-only
    return dst


def _convert(src, tmp_path):
    return convert_checkpoint(src, tmp_path / "out")


def test_missing_tensor_is_named(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    del sd["mlp1.1.weight"]
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lacks 1 tensors.*multi_modal_projector.linear_1.weight"):
        _convert(broken, tmp_path)


def test_wrong_shape_is_named(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    sd["vision_model.encoder.layers.0.mlp.fc1.weight"] = torch.zeros(3, 3)
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer.0.mlp.fc1.weight has shape \(3, 3\)"):
        _convert(broken, tmp_path)


def test_unknown_tensor_is_refused(broken, tmp_path):
    sd = load_file(str(broken / "model.safetensors"))
    sd["something.else"] = torch.zeros(1)
    save_file(sd, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="something.else"):
        _convert(broken, tmp_path)


def test_truncated_safetensors_is_named(broken, tmp_path):
    f = broken / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable safetensors"):
        _convert(broken, tmp_path)


def test_missing_tokenizer_is_named(broken, tmp_path):
    (broken / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match="missing tokenizer.model"):
        _convert(broken, tmp_path)


def test_unknown_architecture_is_named(broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["llm_config"]["architectures"] = ["Qwen2ForCausalLM"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json: language model.*Qwen2ForCausalLM"):
        _convert(broken, tmp_path)


def test_failed_conversion_leaves_no_output(broken, tmp_path):
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError):
        _convert(broken, tmp_path)
    assert not (tmp_path / "out").exists()


def test_missing_local_folder_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no such folder"):
        load_model(tmp_path / "nope", device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="pass the local folder instead"):
        resolve_checkpoint("someone/NotCached-2B", cache_dir=tmp_path)


def test_default_dtype():
    assert default_dtype("cpu") == torch.float32


def test_cli_refuses_a_missing_folder(tmp_path):
    bad = subprocess.run(
        [sys.executable, "tools/convert_internvl2.py", str(tmp_path / "missing"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "missing: not a folder" in bad.stderr
