"""Read an anomaly judgement ("is there an anomaly?") out of free text: True (anomaly), False (normal), None.

Designed on the released HIVAU-70k test answers, which open with the verdict in many phrasings:
"An anomaly exists, specifically ...", "The anomaly exists and is specifically identified as ...", "There is a
potential anomaly ...", "Two anomaly events exist ...", "Based on the caption, an anomaly exists ..." (anomaly) and
"No anomaly exists in the video.", "There is no anomaly in this video segment, specifically no Abuse ...",
"No anomaly event (Shoplifting) exists ..." (normal). Rule: whichever comes first wins, a negated mention
("no/not/without ... anomaly", "nothing abnormal", "the video is normal", a leading "No") or a plain mention
("anomaly", "anomalous", "abnormal", a leading "Yes"). Later mentions ("..., specifically there is no car
accident") do not flip the verdict. Text that mentions neither is undecided (None).
"""

from __future__ import annotations

import re

_ANOM = r"(?:anomal\w*|abnormal\w*)"
# Idioms whose "no"/"not" does not negate the verdict.
_NOT_NEGATIONS = re.compile(r"\b(?:no|without|beyond)\s+(?:a\s+)?doubt\b|\bnot\s+only\b|\bno\s+question\b")
_NEGATIVE = re.compile(
    r"^\s*no\b(?!\s*[-,]?\s*doubt)"  # leading "No" / "No, ..."
    rf"|\b(?:no|not|never|without|none\s+of)\b(?:[\s,]+[\w()'-]+){{0,3}}?[\s,]+\(?{_ANOM}"  # "no (obvious) anomaly"
    rf"|n't\b(?:[\s,]+[\w()'-]+){{0,3}}?[\s,]+\(?{_ANOM}"  # "there isn't any anomaly"
    r"|\bnothing\s+(?:\w+\s+)?(?:abnormal|anomalous|unusual|suspicious)"
    r"|\bno\s+(?:\w+\s+)?(?:unusual|suspicious|irregular)\s+(?:\w+\s+)?(?:event|activit|behaviou?r|incident)"
    r"|\b(?:video|scene|clip|footage|segment|everything|situation|activit\w*|behaviou?r)\s+"
    r"(?:is|are|was|were|appears?|seems?|looks?|remains?)\s+(?:to\s+be\s+)?(?:\w+ly\s+)?normal\b"
)
_POSITIVE = re.compile(rf"^\s*yes\b|\b{_ANOM}")


def judgement_label(text: str | None) -> bool | None:
    """True if the text says an anomaly is present, False if it says there is none, None if it says neither."""
    if not text:
        return None
    t = _NOT_NEGATIONS.sub(" ", text.lower().replace("\u2019", "'"))
    neg = _NEGATIVE.search(t)
    pos = _POSITIVE.search(t)
    if neg is None and pos is None:
        return None
    if neg is None:
        return True
    if pos is None:
        return False
    return neg.start() > pos.start() if neg.start() != pos.start() else False
