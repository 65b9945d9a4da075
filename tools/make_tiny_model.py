"""Write a tiny random InternVL2-architecture checkpoint (real sentencepiece tokenizer), for tests and demos.

python tools/make_tiny_model.py tiny-internvl2                     # native (transformers) format
python tools/make_tiny_model.py tiny-internvl2-orig --format original
python tools/make_tiny_model.py tiny-internvl2 --overwrite         # replace an earlier tiny model of ours

The output folder must be new or empty; a folder holding anything we did not write is never replaced.
"""

import argparse
import sys

from holmesvau.output_guard import OutputError
from holmesvau.testing.tiny_model import TinyConfig, make_tiny_checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--format", choices=["native", "original"], default="native")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier output of this tool in OUT")
    args = ap.parse_args(argv)
    try:
        out = make_tiny_checkpoint(
            args.out, args.format, TinyConfig(seed=args.seed), overwrite=args.overwrite
        )
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote tiny {args.format} checkpoint to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
