"""SFT tokenisation: parity with the original fine-tuning code, label masking token by token, truncation."""

from __future__ import annotations

import json

import pytest

from holmesvau.model.prompt import DEFAULT_SYSTEM_MESSAGE
from holmesvau.model.tokenizer import IM_END, load_tokenizer, save_native_tokenizer
from internvl_chat.sft import IGNORE_INDEX, SFTError, expand_video, tokenize_conversation


@pytest.fixture
def ref_tokenizer(shared, tmp_path):
    """The original fixture tokenizer, in native form."""
    save_native_tokenizer(
        shared("fixtures/internlm2-tokenizer/tokenizer"), tmp_path / "tok", DEFAULT_SYSTEM_MESSAGE
    )
    return load_tokenizer(tmp_path / "tok")


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def test_sft_matches_original_case_by_case(shared, ref_tokenizer):
    ref = json.loads(shared("fixtures/sft-original/sft_reference.json").read_text())
    rows = [
        json.loads(x)
        for x in shared("data/HIVAU-70k/instruction/train_format_example.jsonl").read_text().splitlines()
    ]
    assert ref["cases"]
    for case in ref["cases"]:
        conv = rows[case["row_id"]]["conversations"]
        assert expand_video(conv, case["num_frames"]) == case["conversations_after_video_expansion"]
        ex = tokenize_conversation(ref_tokenizer, conv, case["num_frames"])
        assert ex.input_ids == case["input_ids"], f"row {case['row_id']}: ids differ"
        assert ex.labels == case["labels"], f"row {case['row_id']}: labels differ"
        supervised = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX]
        assert ref_tokenizer.decode(supervised) == case["supervised_text"]


def test_labels_mask_exactly_the_non_answer_tokens(tiny_tokenizer):
    """Multi-turn: walk the ids; a token is supervised iff it belongs to an answer or the `<|im_end|>` closing it."""
    answers = ["A man is walking on the street.", "Because there is a fire."]
    conv = [
        {"from": "human", "value": "<video>\nWhat happens in the video?"},
        {"from": "gpt", "value": answers[0]},
        {"from": "human", "value": "Why is it abnormal?"},
        {"from": "gpt", "value": answers[1]},
    ]
    tok = tiny_tokenizer
    ex = tokenize_conversation(tok, conv, num_frames=2, num_image_token=4)
    assert len(ex.input_ids) == len(ex.labels)
    im_end = tok.convert_tokens_to_ids(IM_END)
    assistant = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    # expected mask: after each "<|im_start|>assistant\n", supervise up to and including the next <|im_end|>
    expected, inside, i = [], False, 0
    ids = ex.input_ids
    while i < len(ids):
        if not inside and ids[i : i + len(assistant)] == assistant:
            expected += [False] * len(assistant)
            i += len(assistant)
            inside = True
            continue
        expected.append(inside)
        if inside and ids[i] == im_end:
            inside = False
        i += 1
    got = [lab != IGNORE_INDEX for lab in ex.labels]
    assert got == expected
    assert all(lab == t for lab, t in zip(ex.labels, ids) if lab != IGNORE_INDEX)
    spans = tok.decode([t for t, s in zip(ids, got) if s]).split(IM_END)
    assert [s for s in spans if s] == answers
    assert ids[0] == tok.bos_token_id and ex.labels[0] == IGNORE_INDEX
    assert ex.text.count("<IMG_CONTEXT>") == 2 * 4
    assert (
        "Frame1: <img>" in ex.text and "</img>\nFrame2: <img>" in ex.text and "</img>What happens" in ex.text
    )


def test_truncation_never_cuts_image_tokens(tiny_tokenizer):
    conv = [{"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "A man " * 40}]
    full = tokenize_conversation(tiny_tokenizer, conv, num_frames=2, num_image_token=8)
    img_end = tiny_tokenizer.convert_tokens_to_ids("</img>")
    last_image = max(i for i, t in enumerate(full.input_ids) if t == img_end)
    # cut inside the answer: kept, truncated, still supervised
    cut = tokenize_conversation(tiny_tokenizer, conv, 2, 8, max_seq_length=len(full.input_ids) - 5)
    assert cut.input_ids == full.input_ids[:-5] and cut.labels == full.labels[:-5]
    # cut inside the image tokens: refused
    with pytest.raises(SFTError) as e:
        tokenize_conversation(tiny_tokenizer, conv, 2, 8, max_seq_length=last_image)
    assert e.value.kind == "too_long"
    # cut before any answer token: refused too
    first_label = next(i for i, lab in enumerate(full.labels) if lab != IGNORE_INDEX)
    with pytest.raises(SFTError):
        tokenize_conversation(tiny_tokenizer, conv, 2, 8, max_seq_length=first_label)


def test_video_token_added_when_absent_and_values_stripped():
    turns = expand_video(
        [{"from": "human", "value": "  Describe it. "}, {"from": "gpt", "value": " Ok \n"}], 3
    )
    assert turns[0]["value"] == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>Describe it."
    assert turns[1]["value"] == "Ok"
