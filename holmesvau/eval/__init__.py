"""Evaluation: reasoning metrics (BLEU/METEOR/ROUGE-L/CIDEr, judgement accuracy) and frame-level detection AUC/AP.

Entry point: tools/evaluate.py. Submodules import their heavy dependencies (pycocoevalcap, scikit-learn,
matplotlib) lazily, so importing this package stays cheap.
"""

from holmesvau.eval.detection import evaluate_detection, expand_scores, run_detection
from holmesvau.eval.judgement import judgement_label
from holmesvau.eval.reasoning import evaluate_reasoning, markdown_tables, read_predictions

__all__ = [
    "evaluate_detection",
    "evaluate_reasoning",
    "expand_scores",
    "judgement_label",
    "markdown_tables",
    "read_predictions",
    "run_detection",
]
