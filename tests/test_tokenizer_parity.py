"""The converted tokenizer (plain AutoTokenizer, no remote code) reproduces the original InternLM2Tokenizer."""

import json

import pytest

from holmesvau.model.tokenizer import (
    IM_END,
    IMG_CONTEXT,
    decode_like_original,
    load_tokenizer,
    save_native_tokenizer,
)


@pytest.fixture(scope="module")
def tok_and_ref(tmp_path_factory):
    from conftest import shared_path

    root = shared_path("fixtures/internlm2-tokenizer")
    dst = tmp_path_factory.mktemp("tok")
    save_native_tokenizer(root / "tokenizer", dst, "system")
    ref = json.loads((root / "tokenizer_reference.json").read_text())
    return load_tokenizer(dst), ref


def _cases():
    from conftest import shared_root

    f = shared_root() / "fixtures/internlm2-tokenizer/tokenizer_reference.json"
    if not f.exists():
        return [0]
    return list(range(len(json.loads(f.read_text())["cases"])))


@pytest.mark.parametrize("i", _cases())
def test_ids_and_decodings(tok_and_ref, i):
    tok, ref = tok_and_ref
    case = ref["cases"][i]
    assert tok(case["text"])["input_ids"] == case["ids"]
    assert tok(case["text"], add_special_tokens=False)["input_ids"] == case["ids_no_special"]
    assert tok.decode(case["ids"], skip_special_tokens=True) == case["decoded_skip_special"]
    assert decode_like_original(tok, case["ids"], skip_special_tokens=True) == case["decoded_skip_special"]
    assert decode_like_original(tok, case["ids"]) == case["decoded"]


def test_special_ids(tok_and_ref):
    tok, ref = tok_and_ref
    assert tok.convert_tokens_to_ids(IMG_CONTEXT) == ref["img_context_token_id"]
    assert tok.convert_tokens_to_ids(IM_END) == ref["im_end_token_id"]
    assert tok.bos_token_id == 1 and tok.eos_token_id == 2
    # <|im_end|> is an ordinary piece for decoding: skip_special_tokens keeps it, as the original does
    assert IM_END in tok.decode([ref["im_end_token_id"]], skip_special_tokens=True)


def test_chat_template_matches_prompt_builder(tok_and_ref):
    from holmesvau.model.prompt import chat_text

    tok, _ = tok_and_ref
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == tok.bos_token + chat_text("hi", system_message="system")
