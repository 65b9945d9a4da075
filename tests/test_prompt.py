"""Prompt building: internlm2-chat template, frame lines, image token expansion, multi-turn history."""

import pytest

from holmesvau.model.prompt import (
    IMAGE_PLACEHOLDER,
    build_prompt,
    chat_text,
    expand_image_placeholders,
    image_tokens,
    training_video_text,
    video_question,
)


def test_template_layout():
    text = chat_text("Q?", system_message="SYS")
    assert text == "<|im_start|>system\nSYS<|im_end|><|im_start|>user\nQ?<|im_end|><|im_start|>assistant\n"
    closed = chat_text("Q?", system_message="SYS", answer="A.")
    assert closed == text + "A.<|im_end|>"


def test_history_turns_in_order():
    text = chat_text("q3", history=[("q1", "a1"), ("q2", "a2")], system_message="S")
    assert text.index("q1") < text.index("a1") < text.index("q2") < text.index("a2") < text.index("q3")
    assert text.count("<|im_start|>assistant\n") == 3


def test_inference_and_training_frame_text_differ_as_the_original():
    assert video_question("Why?", 3) == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nWhy?"
    assert training_video_text(3) + "Why?" == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>Why?"


@pytest.mark.parametrize("tiles", [[1], [1, 1, 1], [2, 1, 3]])
def test_expansion_counts(tiles):
    q = "".join(f"Frame{i}: {IMAGE_PLACEHOLDER}\n" for i in range(len(tiles))) + "q"
    text = expand_image_placeholders(q, tiles, num_image_token=4)
    assert text.count("<IMG_CONTEXT>") == 4 * sum(tiles)
    assert text.count("<img>") == len(tiles) and IMAGE_PLACEHOLDER not in text
    assert image_tokens(2, 4) == "<img>" + "<IMG_CONTEXT>" * 8 + "</img>"


def test_mismatched_image_count_is_an_error():
    with pytest.raises(ValueError, match="2 <image> placeholders but 1 images"):
        expand_image_placeholders("<image><image>", [1])


def test_single_image_without_placeholder_is_prefixed():
    text = build_prompt("Describe.", [2], system_message="S", num_image_token=1)
    assert "user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nDescribe." in text
