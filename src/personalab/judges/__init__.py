"""Judges that label model replies as refusal, compliance or other; ``get_judge(name)`` picks one by name."""

from .base import JUDGES, LABELS, Judge, Label, Verdict, get_judge, judge_many, register_judge
from .keyword import KeywordJudge

register_judge("keyword", KeywordJudge)

__all__ = [
    "JUDGES",
    "LABELS",
    "Judge",
    "KeywordJudge",
    "Label",
    "Verdict",
    "get_judge",
    "judge_many",
    "register_judge",
]
