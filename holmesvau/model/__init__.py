"""InternVL2 / HolmesVAU-2B on transformers' native InternVL classes: conversion, loading, prompts, chat."""

from .chat import ChatOutput, chat, vit_cls_features, vit_encoder
from .convert import DEFAULT_SYSTEM_MESSAGE, convert_checkpoint, is_original_checkpoint
from .errors import CheckpointError
from .loading import DEFAULT_MODEL, LoadedModel, default_device, default_dtype, load_model, resolve_checkpoint
from .prompt import build_prompt, chat_text, expand_image_placeholders, training_video_text, video_question

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM_MESSAGE",
    "ChatOutput",
    "CheckpointError",
    "LoadedModel",
    "build_prompt",
    "chat",
    "chat_text",
    "convert_checkpoint",
    "default_device",
    "default_dtype",
    "expand_image_placeholders",
    "is_original_checkpoint",
    "load_model",
    "resolve_checkpoint",
    "training_video_text",
    "video_question",
    "vit_cls_features",
    "vit_encoder",
]
