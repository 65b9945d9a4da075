"""Convert an original-format InternVL2 / HolmesVAU checkpoint to transformers' native InternVL format.

    python tools/convert_internvl2.py path/to/HolmesVAU-2B path/to/HolmesVAU-2B-hf
    python tools/convert_internvl2.py SRC DST --dtype bfloat16
    python tools/convert_internvl2.py SRC DST --overwrite      # replace an earlier conversion of ours in DST

SRC holds config.json (InternVLChatModel), model.safetensors (or shards + index) and the InternLM2 tokenizer files.
No code from SRC is executed. DST then loads with `InternVLForConditionalGeneration.from_pretrained(DST)` and
`AutoTokenizer.from_pretrained(DST)`. DST must be new or empty; a folder holding anything we did not write is never
replaced, and DST may not be, contain or lie inside SRC. The result is written beside DST and renamed into place.
"""

import argparse
import sys

import torch

from holmesvau.model import CheckpointError, convert_checkpoint
from holmesvau.output_guard import OutputError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="original-format checkpoint folder")
    ap.add_argument("dst", help="output folder (native format)")
    ap.add_argument("--dtype", help="float32 | bfloat16 | float16 (default: the checkpoint's own)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier output of this tool in DST")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    try:
        out = convert_checkpoint(args.src, args.dst, dtype=dtype, overwrite=args.overwrite)
    except (CheckpointError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"converted {args.src} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
