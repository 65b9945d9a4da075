"""Real-size checks on a GPU: InternVL2-2B shapes (InternViT-300M + InternLM2-1.8B) with random weights.

    python bench/gpu_full_size.py                  # needs CUDA; the last line is one JSON object
    python bench/gpu_full_size.py --frames 12 --new-tokens 128 --train-batches 1,2

Measures, in bf16 with sdpa attention: InternViT CLS throughput (the ATS dense pass), prefill latency and decode
speed of a 12-frame question, and the peak GPU memory of one LoRA training step (r=64, alpha=128 on the LLM's
projections, gradient checkpointing) at the given per-device batch sizes. Random weights: speed and memory are
those of the real model; the text is not.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

IMG_START, IMG_END, IMG_CONTEXT = 92544, 92545, 92546  # the InternVL2-2B tokenizer's ids


def build_model(device: str, dtype: torch.dtype, smoke: bool = False):
    from transformers import InternVLForConditionalGeneration

    from holmesvau.model.convert import native_config
    from holmesvau.testing.tiny_model import TinyConfig, internvl2_2b_sizes, original_config

    cfg = TinyConfig(vocab_size=92553) if smoke else internvl2_2b_sizes()
    config = native_config(original_config(cfg, cfg.vocab_size), IMG_CONTEXT, 1, 2, 2)
    with torch.device(device):
        model = InternVLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def prompt_ids(frames: int, text_tokens: int = 80, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    seq = [1] + torch.randint(100, 90000, (40,), generator=g).tolist()
    for _ in range(frames):
        seq += (
            torch.randint(100, 90000, (4,), generator=g).tolist()
            + [IMG_START]
            + [IMG_CONTEXT] * 256
            + [IMG_END]
        )
    seq += torch.randint(100, 90000, (text_tokens,), generator=g).tolist()
    return torch.tensor([seq] * batch)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def timed(fn, repeat: int = 3) -> float:
    fn()
    _sync()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--vit-batch", type=int, default=64)
    ap.add_argument("--train-batches", default="1,2")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks this script runs")
    args = ap.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --smoke)")
    dev, dtype = ("cpu", torch.float32) if args.smoke else ("cuda", torch.bfloat16)
    out: dict = {
        "device": "cpu-smoke" if args.smoke else torch.cuda.get_device_name(),
        "torch": torch.__version__,
    }
    import transformers

    out["transformers"] = transformers.__version__
    t = time.perf_counter()
    model = build_model(dev, dtype, args.smoke)
    out["build_s"] = round(time.perf_counter() - t, 2)
    out["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)

    from holmesvau.model.chat import vit_cls_features
    from holmesvau.model.loading import LoadedModel

    lm = LoadedModel(model, None, None, torch.device(dev), dtype, 256, "", 92542, IMG_CONTEXT)
    pv = torch.randn(args.vit_batch, 3, 448, 448, device=dev, dtype=dtype)
    with torch.inference_mode():
        s = timed(lambda: vit_cls_features(lm, pv))
        out["vit_tiles_per_s"] = round(args.vit_batch / s, 1)
        out["ats_dense_vit_s_per_1000_frames"] = round(1000 / 16 / (args.vit_batch / s), 3)
        feats = vit_cls_features(lm, pv[:2])
        out["cls_dim"] = int(feats.shape[1])

        ids = prompt_ids(args.frames).to(dev)
        frames_pv = torch.randn(args.frames, 3, 448, 448, device=dev, dtype=dtype)
        out["prompt_tokens"] = int(ids.shape[1])
        _reset_peak()
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=frames_pv, do_sample=False,
                  pad_token_id=2)  # fmt: skip
        out["prefill_s"] = round(timed(lambda: model.generate(**kw, max_new_tokens=1, min_new_tokens=1)), 4)
        full = timed(
            lambda: model.generate(**kw, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens), 2
        )
        out["decode_tokens_per_s"] = round((args.new_tokens - 1) / max(full - out["prefill_s"], 1e-6), 1)
        out["inference_peak_gib"] = _peak_gib()

    if not args.skip_train:
        from peft import LoraConfig, get_peft_model

        from internvl_chat.merge import peft_quietly
        from internvl_chat.train import LORA_TARGETS

        model.requires_grad_(False)
        model.config.use_cache = False
        no_reentrant = {"use_reentrant": False}
        # transformers >= 5.23 has the new name; the old one warns there
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=no_reentrant)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=no_reentrant)
        model.enable_input_require_grads()
        with peft_quietly():
            lora = LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, target_modules=LORA_TARGETS)
            peft = get_peft_model(model, lora)
        peft.train()
        out["lora_trainable_m"] = round(sum(p.numel() for p in peft.parameters() if p.requires_grad) / 1e6, 2)
        opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=4e-5)
        for b in [int(x) for x in args.train_batches.split(",")]:
            _reset_peak()
            ids = prompt_ids(args.frames, batch=b).to(dev)
            pvb = torch.randn(args.frames * b, 3, 448, 448, device=dev, dtype=dtype)
            labels = ids.clone()
            labels[:, :-64] = -100

            def step(ids=ids, pvb=pvb, labels=labels):
                loss = peft(input_ids=ids, pixel_values=pvb, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return loss

            s = timed(step, repeat=2)
            out[f"train_step_s_bs{b}"] = round(s, 3)
            out[f"train_peak_gib_bs{b}"] = _peak_gib()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
