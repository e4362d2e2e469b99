"""Judges that label model replies as refusal, compliance or other; ``get_judge(name)`` picks one by name."""

from personalab.judges.base import JUDGES, LABELS, Judge, Label, Verdict, get_judge, judge_many, register_judge
from personalab.judges.embedding import EmbeddingJudge
from personalab.judges.finetuned import FineTunedJudge
from personalab.judges.keyword import KeywordJudge
from personalab.judges.keyword_ext import KeywordExtJudge
from personalab.judges.keyword_ext3 import KeywordExt3Judge
from personalab.judges.keyword_ext4 import KeywordExt4Judge
from personalab.judges.keyword_ext5 import KeywordExt5Judge
from personalab.judges.routed import RoutedFineTunedJudge, RoutedJudge

register_judge("keyword", KeywordJudge)
register_judge("keyword_ext", KeywordExtJudge)
register_judge("keyword_ext3", KeywordExt3Judge)
register_judge("keyword_ext4", KeywordExt4Judge)
register_judge("keyword_ext5", KeywordExt5Judge)
register_judge("embedding", EmbeddingJudge)
register_judge("routed", RoutedJudge)
register_judge("finetuned", FineTunedJudge)
register_judge("routed_ft", RoutedFineTunedJudge)

__all__ = [
    "JUDGES",
    "EmbeddingJudge",
    "FineTunedJudge",
    "LABELS",
    "Judge",
    "KeywordExt3Judge",
    "KeywordExt4Judge",
    "KeywordExt5Judge",
    "KeywordExtJudge",
    "KeywordJudge",
    "Label",
    "RoutedFineTunedJudge",
    "RoutedJudge",
    "Verdict",
    "get_judge",
    "judge_many",
    "register_judge",
]
