"""Judges that label model replies as refusal, compliance or other; ``get_judge(name)`` picks one by name."""

from personalab.judges.base import JUDGES, LABELS, Judge, Label, Verdict, get_judge, judge_many, register_judge
from personalab.judges.embedding import EmbeddingJudge
from personalab.judges.keyword import KeywordJudge

register_judge("keyword", KeywordJudge)
register_judge("embedding", EmbeddingJudge)

__all__ = [
    "JUDGES",
    "EmbeddingJudge",
    "LABELS",
    "Judge",
    "KeywordJudge",
    "Label",
    "Verdict",
    "get_judge",
    "judge_many",
    "register_judge",
]
