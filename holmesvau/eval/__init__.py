"""Evaluation: reasoning metrics (BLEU/METEOR/ROUGE-L/CIDEr, judgement accuracy) and frame-level detection AUC/AP.

Entry point: tools/evaluate.py. Submodules import their heavy dependencies (pycocoevalcap, scikit-learn,
matplotlib) lazily, so importing this package stays cheap.
"""

from holmesvau.eval.detection import (
    MissingScoresError,
    evaluate_detection,
    evaluate_ground_truth,
    expand_scores,
    run_detection,
)
from holmesvau.eval.judgement import judgement_label
from holmesvau.eval.paper import paper_detection, paper_reasoning
from holmesvau.eval.protocols import PROTOCOLS, get_protocol
from holmesvau.eval.reasoning import evaluate_reasoning, markdown_tables, read_predictions

__all__ = [
    "PROTOCOLS",
    "MissingScoresError",
    "evaluate_ground_truth",
    "get_protocol",
    "paper_detection",
    "paper_reasoning",
    "evaluate_detection",
    "evaluate_reasoning",
    "expand_scores",
    "judgement_label",
    "markdown_tables",
    "read_predictions",
    "run_detection",
]
