"""Evaluation: reasoning metrics (BLEU/METEOR/ROUGE-L/CIDEr, judgement accuracy) and frame-level detection AUC/AP.

Entry point: tools/evaluate.py. Import the submodules; they import their heavy dependencies (pycocoevalcap,
scikit-learn, matplotlib) lazily.
"""
