"""The model set up for training: LoRA on the language model only, frozen ViT/projector unless asked, any format."""

from __future__ import annotations

from internvl_chat.train import ModelArguments, build_model, parse_args


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_only_on_language_model_from_original_format(tiny_original_dir, tmp_path):
    *_, targs = parse_args(["--output_dir", str(tmp_path), "--report_to", "none"])
    model, tokenizer, path = build_model(ModelArguments(model_name_or_path=str(tiny_original_dir)), targs)
    names = trainable(model)
    assert names and all(".language_model." in n and ".lora_" in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip
    assert not any("vision_tower" in n or "multi_modal_projector" in n for n in names)
    assert model.peft_config["default"].base_model_name_or_path == str(tiny_original_dir)
    assert tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>") == model.config.image_token_id


def test_unfreeze_flags(tiny_model_dir, tmp_path):
    *_, targs = parse_args(["--output_dir", str(tmp_path), "--report_to", "none"])
    margs = ModelArguments(model_name_or_path=str(tiny_model_dir), unfreeze_projector=True)
    names = trainable(build_model(margs, targs)[0])
    assert any("multi_modal_projector" in n for n in names)
    assert not any("vision_tower" in n for n in names)
    margs = ModelArguments(model_name_or_path=str(tiny_model_dir), unfreeze_vision=True)
    names = trainable(build_model(margs, targs)[0])
    assert any("vision_tower" in n for n in names) and not any("multi_modal_projector" in n for n in names)
