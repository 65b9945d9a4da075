"""The paper's published numbers (Table 1 detection, Table 2 reasoning), read from paper_results.json (package data).

Only values checked against the paper's text are in the file; nothing is computed or filled in here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def paper_results() -> dict:
    """The whole paper_results.json (see its `paper.notes`)."""
    return json.loads(resources.files("holmesvau.eval").joinpath("paper_results.json").read_text("utf-8"))


def paper_detection() -> dict[str, dict]:
    """{"ucf-crime": {"metric": "AUC", "unit": "%", "value": 88.96}, "xd-violence": {...}} (Table 1)."""
    return paper_results()["table1"]["values"]


def paper_reasoning() -> dict[str, dict[str, float]]:
    """{metric: {level: value}} for BLEU (= BLEU-1 + ... + BLEU-4), CIDEr, METEOR, ROUGE (Table 2)."""
    return paper_results()["table2"]["values"]
