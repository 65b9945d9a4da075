"""Evaluate HolmesVAU outputs: reasoning text metrics, or frame-level detection AUC/AP.

Reasoning (predictions jsonl from tools/predict.py vs the HIVAU-70k test instructions; Java: docs/evaluation.md):
    python tools/evaluate.py reasoning --predictions preds.jsonl \
        --annotations HIVAU-70k/instruction/merge_instruction_test_final.jsonl --output reasoning_report.json

Detection (a folder of per-video dense scores vs a test set's annotations; docs/evaluation.md, Protocols):
    # UCF-Crime, the official 290-video protocol behind published AUCs (folder with the two official files)
    python tools/evaluate.py detection --scores scores/ --protocol ucf-crime --annotations UCF-Crime/ \
        --output detection_report.json [--stride 16] [--plot-dir plots/]
    # XD-Violence, 800 videos (300 normal ones all-negative): AP and the trapezoidal PR area
    python tools/evaluate.py detection --scores scores/ --protocol xd-violence --annotations XD-Violence/
    # explicit files: a raw database .json (HIVAU's 251-video UCF subset), or a temporal txt
    python tools/evaluate.py detection --scores scores/ --annotations HIVAU-70k/raw_annotations/ucf_database_test.json
    python tools/evaluate.py detection --scores scores/ --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt \
        --frame-counts test_annotation_with_frame_counts.txt      # or --test-list test_videos.txt
    # a ground-truth video without scores is an error; --allow-missing evaluates the rest and says so

Both write JSON and print a summary (reasoning: markdown tables laid out like the paper's Table 2).
"""

import sys

from holmesvau.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main(description=__doc__))
