"""The paper's numbers file holds exactly the values printed in the paper (CVPR 2025, arXiv 2412.06171):
Table 1 and Table 2, row "Holmes-VAU (Ours)" — typed here from the tables, not read from the code."""

from holmesvau.eval.paper_table import paper_detection, paper_reasoning, paper_results
from holmesvau.eval.reasoning import PAPER_HOLMES_VAU


def test_table1_detection_row():
    assert paper_detection() == {
        "xd-violence": {"metric": "AP", "unit": "%", "value": 87.68},
        "ucf-crime": {"metric": "AUC", "unit": "%", "value": 88.96},
    }
    assert paper_results()["table1"]["row"] == "Holmes-VAU (Ours)"


def test_table2_reasoning_row():
    # columns of Table 2: BLEU C E V | CIDEr C E V | METEOR C E V | ROUGE C E V
    printed = [0.913, 0.804, 0.566, 0.467, 1.519, 1.437, 0.190, 0.165, 0.121, 0.329, 0.370, 0.355]
    got = paper_reasoning()
    assert [
        got[m][lv] for m in ("BLEU", "CIDEr", "METEOR", "ROUGE") for lv in ("clip", "event", "video")
    ] == printed
    assert PAPER_HOLMES_VAU == got  # the reasoning report's paper row comes from the same file
    assert paper_results()["table2"]["params"] == "2B"
