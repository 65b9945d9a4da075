"""Merge a LoRA adapter (from internvl_chat.train) into its base model: a standalone native checkpoint.

    python tools/merge_lora.py work_dirs/internvl2_2b_finetune_lora HolmesVAU-2B-mine     # last checkpoint-N
    python tools/merge_lora.py work_dirs/.../checkpoint-400 OUT --base path/to/InternVL2-2B
    python tools/merge_lora.py RUN OUT --dtype bfloat16
    python tools/merge_lora.py RUN OUT --overwrite      # replace an earlier merge of ours in OUT

The first argument is a training output folder (its last checkpoint-N is taken; the final adapter at its top when
it has no checkpoint) or one checkpoint/adapter folder. The base model is the one recorded in adapter_config.json
(as it was given to training: hub id or path) unless --base says otherwise. OUT gets weights (safetensors),
config, generation config and tokenizer: `holmesvau.model.load_model(OUT)` and inference.py load it directly.
OUT must be new or empty (or, with --overwrite, an earlier merge of ours holding nothing else); it may not be,
contain or lie inside the adapter or the base model. The result is written beside OUT and renamed into place.
The last stdout line is a JSON summary. The work is internvl_chat.merge.merge_lora.
"""

from __future__ import annotations

import argparse
import json
import sys

from holmesvau.output_guard import OutputError
from internvl_chat.merge import MergeError, merge_lora


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("adapter", help="training output folder (last checkpoint-N is used) or an adapter folder")
    ap.add_argument("out", help="folder for the merged checkpoint (new, empty, or an earlier merge of ours)")
    ap.add_argument("--base", help="base model (hub id or folder); default: the one the adapter records")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier output of this tool in OUT")
    args = ap.parse_args(argv)
    try:
        summary = merge_lora(args.adapter, args.out, args.base, args.dtype, overwrite=args.overwrite)
    except (MergeError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
