"""Write a tiny random InternVL2-architecture checkpoint (real sentencepiece tokenizer), for tests and demos.

python tools/make_tiny_model.py tiny-internvl2                     # native (transformers) format
python tools/make_tiny_model.py tiny-internvl2-orig --format original
"""

import argparse

from holmesvau.testing.tiny_model import TinyConfig, make_tiny_checkpoint


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--format", choices=["native", "original"], default="native")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = make_tiny_checkpoint(args.out, args.format, TinyConfig(seed=args.seed))
    print(f"wrote tiny {args.format} checkpoint to {out}")


if __name__ == "__main__":
    main()
