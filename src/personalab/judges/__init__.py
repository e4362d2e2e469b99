"""Judges that label model replies as refusal, compliance or other; ``get_judge(name)`` picks one by name."""

from personalab.judges.base import JUDGES, LABELS, Judge, Label, Verdict, get_judge, judge_many, register_judge
from personalab.judges.embedding import EmbeddingJudge
from personalab.judges.keyword import KeywordJudge
from personalab.judges.keyword_ext import KeywordExtJudge
from personalab.judges.routed import RoutedJudge

register_judge("keyword", KeywordJudge)
register_judge("keyword_ext", KeywordExtJudge)
register_judge("embedding", EmbeddingJudge)
register_judge("routed", RoutedJudge)

__all__ = [
    "JUDGES",
    "EmbeddingJudge",
    "LABELS",
    "Judge",
    "KeywordExtJudge",
    "KeywordJudge",
    "Label",
    "RoutedJudge",
    "Verdict",
    "get_judge",
    "judge_many",
    "register_judge",
]
