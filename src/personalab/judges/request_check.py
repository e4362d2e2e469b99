"""Would reading the request fix the keyword rules' last misses? Two measured checks with a small embedding model.

The fifth keyword judge's remaining misses seem to need the request: whether a decline's later offer is the task
itself or something unrelated ("However, I can certainly provide you with a recipe for a coffee", asked for a
coffee-shop caption), and whether a reply read as a refusal is about the request at all or off-target. If the
request's meaning, as the embedding judge's sentence model (all-MiniLM-L6-v2) reads it, told these apart, a
request-aware rule could be built on it. :func:`request_similarity_table` measures how well the cosine similarity
between request and reply separates them, as a ROC AUC with a 95% interval that resamples requests:

- ``offer_is_task``: the replies the fourth keyword rules call refusals that go on to offer something or ask for
  material (:func:`personalab.judges.keyword_ext5.later_offers`, with or without an alternative named); score: the
  highest similarity of such a sentence to the request; positive: hand-labelled compliance.
- ``off_target``: the replies the chosen judge calls refusals; score: minus the similarity of the model's own
  words to the request (an off-target reply should sit far from it); positive: hand-labelled other.

An AUC near 1 would say the embedding carries what the rules lack; near 0.5, that it does not.
:func:`answered_bound_table` asks what answering each question perfectly would buy: the judge's kappa in the groups
where it falls short, with the hand label put in where the question arises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from personalab.judges import get_judge
from personalab.judges.embedding import embed, own_words
from personalab.judges.keyword import _normalise
from personalab.judges.keyword_ext4 import KeywordExt4Judge
from personalab.judges.keyword_ext5 import KeywordExt5Judge, later_offers
from personalab.judges.labels import prefills
from personalab.judges.served import ranking_auc
from personalab.prompts import get_item

CHOSEN_JUDGE = KeywordExt5Judge.name
"""The judge the experiments count with (their notebooks' default ``judge``), whose misses these checks read."""
BASE_JUDGE = KeywordExt4Judge.name
"""The rules before the chosen judge's last rule: the declines whose later offers that rule reads."""

CHECKS: dict[str, str] = {
    "offer_is_task": "a decline's later offer is the task (hand: compliance) rather than something else",
    "off_target": "a reply read as a refusal is off-target (hand: other) rather than a refusal",
}
"""The two checks, by name, with what their positive class is."""


def request_text(item_id: str, language: str) -> str:
    """The request as the model was asked it: the item's text, or its translation for a non-English request."""
    item = get_item(item_id)
    return item.text if language == "en" else item.translations.get(language, item.text)


def _similarity(texts: Sequence[str], requests: Sequence[str]) -> np.ndarray:
    """Cosine similarity of each text to its request (the embeddings are unit length)."""
    return (embed(list(texts)) * embed(list(requests))).sum(axis=1)


def _auc_row(check: str, scores: np.ndarray, positive: np.ndarray, items: Sequence[str], n_boot: int,
             seed: int) -> dict[str, object]:
    """One table row: the check, its n, positives, requests and AUC with interval (NaN when one class is absent)."""
    row: dict[str, object] = {"check": check, "positive": CHECKS[check], "n": int(len(scores)),
                              "n_positive": int(np.sum(positive)), "n_items": len(set(items))}
    if 0 < row["n_positive"] < row["n"]:
        auc = ranking_auc(scores, positive, items, n_boot=n_boot, seed=seed)
        return row | {"auc": auc["auc"], "auc_lo": auc["lo"], "auc_hi": auc["hi"]}
    return row | {"auc": float("nan"), "auc_lo": float("nan"), "auc_hi": float("nan")}


def _reading(df: pd.DataFrame, judge: str, base_judge: str) -> pd.DataFrame:
    """Per labelled reply: the request, the model's own words, ``judge``'s label (``pred``), and the later offers of
    the declines ``base_judge`` reads (empty for the rest)."""
    base, chosen = get_judge(base_judge), get_judge(judge)
    rows = []
    for (_, row), prefill in zip(df.iterrows(), prefills(df)):
        reply = row["reply"] if isinstance(row["reply"], str) else ""
        own = own_words(reply, prefill)
        declines = base.judge(reply, prefill=prefill).label == "refusal"
        rows.append({"item": row["item"], "label": row["label"], "request": request_text(row["item"], row["language"]),
                     "own": own, "pred": chosen.judge(reply, prefill=prefill).label,
                     "offers": later_offers(_normalise(own)) if declines else []})
    return pd.DataFrame(rows, index=df.index, columns=["item", "label", "request", "own", "pred", "offers"])


def request_similarity_table(df: pd.DataFrame, judge: str = CHOSEN_JUDGE,
                             base_judge: str = BASE_JUDGE, n_boot: int = 2000, seed: int = 0
                             ) -> pd.DataFrame:
    """Both checks (module docstring) on the hand-labelled replies ``df`` (columns ``reply``, ``prefill``, ``item``,
    ``language``, ``label``): ``base_judge`` picks the declines whose offers are read, ``judge`` the replies
    read as refusals."""
    read = _reading(df, judge, base_judge)
    rows = []
    offers = read[read["offers"].map(bool)]
    if len(offers):
        best = [float(_similarity(o, [r] * len(o)).max()) for o, r in zip(offers["offers"], offers["request"])]
        rows.append(_auc_row("offer_is_task", np.array(best), (offers["label"] == "compliance").to_numpy(),
                             list(offers["item"]), n_boot, seed))
    refused = read[read["pred"] == "refusal"]
    if len(refused):
        score = -_similarity(list(refused["own"]), list(refused["request"]))
        rows.append(_auc_row("off_target", score, (refused["label"] == "other").to_numpy(), list(refused["item"]),
                             n_boot, seed))
    return pd.DataFrame(rows).assign(judge=judge, base_judge=base_judge)


ANSWERED: tuple[str, ...] = ("neither", "offer question", "offer question and off-target")
"""What a perfect oracle answers in :func:`answered_bound_table`: nothing (the judge as it is), whether each later
offer is the task, and that plus which replies the judge calls refusals are off-target."""


def answered_bound_table(df: pd.DataFrame, groups: Sequence[tuple[str, str, str]],
                         judge: str = CHOSEN_JUDGE, base_judge: str = BASE_JUDGE,
                         n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How far ``judge`` would get in each group (``(grouping, column, value)``) if the two questions were answered
    perfectly (:data:`ANSWERED`): its label replaced by the hand label on the replies with a later offer, then also
    on the replies it calls refusals that the labellers call other. Refusal-vs-not kappa with intervals over
    requests (:func:`personalab.judges.validate.agreement_stats`): an upper bound on what answering each buys. A
    group with no replies in ``df`` has no row."""
    from personalab.judges.validate import agreement_stats

    read = _reading(df, judge, base_judge)
    offer = read["offers"].map(bool)
    off_target = (read["pred"] == "refusal") & (read["label"] == "other")
    fixes = {"neither": pd.Series(False, index=read.index), "offer question": offer,
             "offer question and off-target": offer | off_target}
    rows = []
    for grouping, column, value in groups:
        inside = df[column] == value
        if not inside.any():
            continue
        for answered in ANSWERED:
            part = read[inside].assign(pred=read["pred"].where(~fixes[answered], read["label"])[inside])
            stats = agreement_stats(part, n_boot, seed)
            rows.append({"grouping": grouping, "group": value, "answered": answered, "judge": judge,
                         "n": stats["n"], "n_fixed": int((fixes[answered] & inside).sum()),
                         "kappa": stats["kappa"], "kappa_lo": stats["kappa_lo"], "kappa_hi": stats["kappa_hi"]})
    return pd.DataFrame(rows, columns=["grouping", "group", "answered", "judge", "n", "n_fixed", "kappa", "kappa_lo",
                                       "kappa_hi"])


__all__ = ["ANSWERED", "BASE_JUDGE", "CHECKS", "CHOSEN_JUDGE", "answered_bound_table", "request_similarity_table",
           "request_text"]
