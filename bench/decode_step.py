"""One padded decode step of the batched answering core, isolated: where a 16-row step's time goes.

    python bench/decode_step.py                                 # CPU: InternLM2-1.8B shapes, 2 of 24 layers, fp32
    python bench/decode_step.py --device cuda --layers 24       # the whole 1.8B LLM in bf16 (GPU)

The language model of InternVL2-2B (hidden 2048, 16 heads / 8 KV heads of 128, MLP 8192; random weights, first
`--layers` layers) decodes `--steps` tokens after `--rows` prompts of about `--prompt` tokens (HIVAU rows at 12
frames are ~3.3k), left-padded to the longest, with the per-row position ids and the padding mask of
`holmesvau.model.batch`. Timed, each in one run, device synchronised per step:
  serial_b1   one row, no padding, transformers' DynamicCache (what `generate` does per step, batch 1);
  concat      the batch with DynamicCache, which appends each step with torch.cat (a copy of the whole cache);
  in_place    the batch with holmesvau.model.kv_cache (the step written in place into a roomier buffer).
The last line is one JSON object: milliseconds per step and the KV cache size.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def build(layers: int, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=layers, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, vocab_size=16, max_position_embeddings=32768,
        rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0}, rms_norm_eps=1e-5,
    )  # fmt: skip
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return LlamaModel(cfg).to(device, dtype).eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.inference_mode()
def time_steps(model, lengths: list[int], steps: int, mode: str, device: str, dtype) -> float:
    """Milliseconds per decode step after prefilling `lengths` (one row each), caches merged as `mode` says."""
    from transformers import DynamicCache

    from holmesvau.model.kv_cache import cache_kwarg, left_padded_cache

    hidden, ckw = model.config.hidden_size, cache_kwarg(model)
    rows = []
    for n in lengths:  # each prompt prefilled on its own, as answer_batch does
        cache = DynamicCache()
        model(inputs_embeds=torch.randn(1, n, hidden, device=device, dtype=dtype), use_cache=True,
              **{ckw: cache}, position_ids=torch.arange(n, device=device)[None])  # fmt: skip
        rows.append([(layer.keys, layer.values) for layer in cache.layers])
        del cache
    width, b = max(lengths), len(lengths)
    if mode == "in_place":
        cache = left_padded_cache(rows, room=steps + 1)
    else:
        cache = DynamicCache()
        for layer in range(len(rows[0])):
            k0 = rows[0][layer][0]
            keys = k0.new_zeros(b, k0.shape[1], width, k0.shape[3])
            values = torch.zeros_like(keys)
            for j, kv in enumerate(rows):
                keys[j, :, width - lengths[j] :], values[j, :, width - lengths[j] :] = (
                    kv[layer][0][0],
                    kv[layer][1][0],
                )
            cache.update(keys, values, layer)
    del rows
    mask = torch.zeros(b, width + steps + 1, dtype=torch.long, device=device)
    for j, n in enumerate(lengths):
        mask[j, width - n :] = 1
    mask[:, width:] = 1
    pos = torch.tensor(lengths, device=device)[:, None]
    times = []
    for step in range(1, steps + 1):
        x = torch.randn(b, 1, hidden, device=device, dtype=dtype)
        am = None if b == 1 else mask[:, : width + step]
        _sync(device)
        t = time.perf_counter()
        model(inputs_embeds=x, attention_mask=am, position_ids=pos, **{ckw: cache}, use_cache=True)
        _sync(device)
        times.append(time.perf_counter() - t)
        pos = pos + 1
    times = times[2:] or times  # the first steps warm up kernels and the allocator
    return 1000 * sum(times) / len(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", type=int, default=None, help="default 24 on a GPU, 2 on the CPU")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=3300, help="tokens of the longest prompt")
    ap.add_argument(
        "--steps", type=int, default=None, help="decode steps timed (default 32 on a GPU, 8 on the CPU)"
    )
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    layers, steps = args.layers or (24 if cuda else 2), args.steps or (32 if cuda else 8)
    dtype = torch.bfloat16 if cuda else torch.float32
    model = build(layers, args.device, dtype)
    lengths = [args.prompt - 7 * (j % 5) for j in range(args.rows)]  # HIVAU prompts differ by a few tokens
    out = {"device": torch.cuda.get_device_name() if cuda else "cpu", "layers": layers, "dtype": str(dtype)[6:],
           "rows": args.rows, "prompt_tokens": args.prompt, "steps": steps}  # fmt: skip
    kv_bytes = 2 * layers * args.rows * 8 * args.prompt * 128 * torch.finfo(dtype).bits // 8
    out["kv_cache_mb"] = round(kv_bytes / 2**20, 1)
    out["ms_step_serial_b1"] = round(time_steps(model, lengths[:1], steps, "concat", args.device, dtype), 2)
    for mode in ("concat", "in_place"):
        out[f"ms_step_{mode}"] = round(time_steps(model, lengths, steps, mode, args.device, dtype), 2)
    out["in_place_speedup"] = round(out["ms_step_concat"] / out["ms_step_in_place"], 2)
    out["rows_per_step_cost_vs_b1"] = round(out["ms_step_in_place"] / out["ms_step_serial_b1"], 2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
