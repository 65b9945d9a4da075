"""Fetch the released HIVAU-70k annotations into this folder, where split_video.py, check_video.py,
tools/predict.py and tools/reproduce.py look for them; each verified by its git blob id before it is put in place.

    python HIVAU-70k/download.py                  # test: instruction/merge_instruction_test_final.jsonl,
                                                  #       raw_annotations/{ucf,xd}_database_test.json
    python HIVAU-70k/download.py --all            # train too (instruction + raw databases)
    python HIVAU-70k/download.py --root data/HIVAU-70k

ROOT defaults to the folder of this script. Files already in place are verified and kept (one that differs from the
release is refused, never replaced); run it again after an interruption and it resumes. Behind a proxy: HTTPS_PROXY;
an internal mirror of raw.githubusercontent.com: HOLMESVAU_GITHUB_MIRROR=https://host/prefix. Exit status 2 when a
file could not be fetched or was refused (the message names each one).
"""

import sys
from pathlib import Path

from holmesvau.data.download import main

if __name__ == "__main__":
    sys.exit(main(default_root=Path(__file__).resolve().parent))
