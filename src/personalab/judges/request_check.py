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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from personalab.judges import get_judge
from personalab.judges.embedding import embed, own_words
from personalab.judges.keyword import _normalise
from personalab.judges.keyword_ext5 import later_offers
from personalab.judges.labels import prefills
from personalab.judges.served import ranking_auc
from personalab.prompts import get_item

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


def request_similarity_table(df: pd.DataFrame, judge: str = "keyword_ext5", base_judge: str = "keyword_ext4",
                             n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Both checks (module docstring) on the hand-labelled replies ``df`` (columns ``reply``, ``prefill``, ``item``,
    ``language``, ``label``): ``base_judge`` picks the declines whose offers are read, ``judge`` the replies
    read as refusals."""
    base, chosen = get_judge(base_judge), get_judge(judge)
    offers, off_target = [], []
    for (_, row), prefill in zip(df.iterrows(), prefills(df)):
        reply = row["reply"] if isinstance(row["reply"], str) else ""
        request = request_text(row["item"], row["language"])
        own = own_words(reply, prefill)
        if base.judge(reply, prefill=prefill).label == "refusal":
            sentences = later_offers(_normalise(own))
            if sentences:
                offers.append((row["item"], row["label"] == "compliance", request, sentences))
        if chosen.judge(reply, prefill=prefill).label == "refusal":
            off_target.append((row["item"], row["label"] == "other", request, own))
    rows = []
    if offers:
        best = [float(_similarity(sentences, [request] * len(sentences)).max()) for _, _, request, sentences in offers]
        rows.append(_auc_row("offer_is_task", np.array(best), np.array([o[1] for o in offers]),
                             [o[0] for o in offers], n_boot, seed))
    if off_target:
        score = -_similarity([o[3] for o in off_target], [o[2] for o in off_target])
        rows.append(_auc_row("off_target", score, np.array([o[1] for o in off_target]),
                             [o[0] for o in off_target], n_boot, seed))
    return pd.DataFrame(rows).assign(judge=judge, base_judge=base_judge)


__all__ = ["CHECKS", "request_similarity_table", "request_text"]
