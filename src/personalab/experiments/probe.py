"""Does the network know, before it answers, whether the mask will hold? A linear probe on the attacked prompt's
activations against a classifier on the prompt's words.

Every attacked held-out target of a committed slippage run is one example: its conversation (the wrapper applied to
the request), and whether the model's reply was judged a refusal. Three scores predict that label:

- ``activations``: logistic regression on the residual stream at the prompt's last token, at the model's
  refusal-direction layer (the committed ``refusal_direction`` choice);
- ``words``: logistic regression on hashed word uni- and bigrams of the same conversation (no fitted vocabulary,
  so nothing leaks from the scored rows);
- ``direction``: the projection on the refusal direction fitted on the dev pairs' direct requests, which never saw an
  attack (no training on these rows at all).

The two trained scores are judged out of distribution: each attack family is scored by models fitted on the other
families *and* on other requests (family x request-fold crossing), so neither the wrapper nor the request was seen.
AUCs are computed within each family and averaged (:func:`within_family_auc`): the question is which requests an
unseen attack will fail on, and a pooled AUC would reward or punish the families' base rates instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from personalab.attacks import get_wrapper
from personalab.experiments.detection import auc
from personalab.prompts import Item, load_items

#: The scores compared, in the order the tables list them.
SCORES: tuple[str, ...] = ("activations", "words", "direction")


def attacked_targets(responses: pd.DataFrame) -> pd.DataFrame:
    """The target rows of a slippage run under an attack (every wrapper but ``direct/plain``), one per reply."""
    rows = responses[(responses["variant"] == "target") & (responses["wrapper"] != "direct/plain")]
    if rows.empty:
        raise ValueError("the slippage responses hold no attacked target requests")
    return rows[["wrapper", "family", "item", "refused"]].reset_index(drop=True)


def conversations(rows: pd.DataFrame, split: str = "heldout") -> list[list[dict[str, str]]]:
    """Each row's conversation, rebuilt exactly as the slippage run sent it."""
    items: dict[str, Item] = {i.id: i for i in load_items(split=split)}
    missing = sorted(set(rows["item"]) - set(items))
    if missing:
        raise ValueError(f"requests {', '.join(missing[:3])} are not in the {split} split")
    return [list(get_wrapper(w)(items[i])) for w, i in zip(rows["wrapper"], rows["item"])]


def word_features(convs: Sequence[Sequence[Mapping[str, str]]]) -> Any:
    """Hashed word 1-2-grams of every message of each conversation, l2-normalised (a sparse matrix)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = ["\n".join(f"{m['role']}: {m['content']}" for m in c) for c in convs]
    return HashingVectorizer(ngram_range=(1, 2), n_features=2**18, alternate_sign=False).transform(texts)


def standardise(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` centred and scaled by the mean and spread of ``train`` (a constant column stays at zero)."""
    mean, spread = train.mean(axis=0), train.std(axis=0)
    return (x - mean) / np.where(spread > 0, spread, 1.0)


def crossed_scores(x: Any, y: np.ndarray, family: np.ndarray, item: np.ndarray, item_folds: int = 2, seed: int = 0,
                   c: float = 0.1, dense: bool = True) -> np.ndarray:
    """Out-of-distribution P(refused) for every row: fitted on rows of *other* families and *other* request folds.

    Requests are split into ``item_folds`` folds (shuffled with ``seed``); the rows of family f and fold k are scored
    by a model fitted on the rows of no family f and no fold k. Dense features are standardised on the fitted rows.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    uniq = np.array(sorted(set(item.tolist())), dtype=object)
    if len(uniq) < item_folds:
        raise ValueError(f"need at least {item_folds} requests for {item_folds} request folds, got {len(uniq)}")
    if len(set(family.tolist())) < 2:
        raise ValueError("need at least two attack families to hold one out")
    rng = np.random.default_rng(seed)
    fold_of = {g: k % item_folds for k, g in enumerate(rng.permutation(uniq))}
    fold = np.array([fold_of[g] for g in item])
    out = np.full(len(y), np.nan)
    for f in sorted(set(family.tolist())):
        for k in range(item_folds):
            fit, use = (family != f) & (fold != k), (family == f) & (fold == k)
            if not use.any():
                continue
            if len(set(y[fit].tolist())) < 2:  # nothing to learn from: every fitted reply has one label
                out[use] = y[fit].mean()
                continue
            xf, xu = (standardise(x[fit], x[fit]), standardise(x[fit], x[use])) if dense else (x[fit], x[use])
            model = LogisticRegression(C=c, max_iter=5000).fit(xf, y[fit])
            out[use] = model.predict_proba(xu)[:, 1]
    return out


def within_family_auc(y: np.ndarray, s: np.ndarray, family: np.ndarray) -> float:
    """The mean over attack families (weighted by rows) of the AUC within each family; families whose replies all
    share one label are skipped. Pooling across families would mix in the families' refusal rates, which a model
    fitted without the scored family predicts backwards (its training rate moves against the held-out one)."""
    total, weight = 0.0, 0
    for f in sorted(set(family.tolist())):
        rows = family == f
        if len(set(y[rows].tolist())) == 2:
            total += auc(y[rows], s[rows]) * rows.sum()
            weight += int(rows.sum())
    return total / weight if weight else float("nan")


def _item_bootstrap(rows: pd.DataFrame, stat: Any, n_boot: int, seed: int) -> tuple[float, float, float]:
    """``stat(index)`` on all rows and its 95% percentile interval, resampling whole requests with replacement."""
    groups = rows["item"].to_numpy()
    uniq = sorted(set(groups.tolist()))
    index = {g: np.flatnonzero(groups == g) for g in uniq}
    rng = np.random.default_rng(seed)
    reps = [stat(np.concatenate([index[uniq[i]] for i in rng.integers(0, len(uniq), size=len(uniq))]))
            for _ in range(n_boot)]
    reps = [r for r in reps if not np.isnan(r)]
    lo, hi = np.percentile(reps, [2.5, 97.5]) if reps else (np.nan, np.nan)
    return float(stat(np.arange(len(rows)))), float(lo), float(hi)


def auc_rows(model_id: str, rows: pd.DataFrame, scores: Mapping[str, np.ndarray], n_boot: int = 2000,
             seed: int = 0) -> pd.DataFrame:
    """Within-family AUC of each score for the refusal label, with a bootstrap interval resampling requests."""
    y = rows["refused"].astype(int).to_numpy()
    family = rows["family"].to_numpy()
    out = []
    for name in SCORES:
        s = np.asarray(scores[name], dtype=float)
        est, lo, hi = _item_bootstrap(rows, lambda i: within_family_auc(y[i], s[i], family[i]), n_boot, seed)
        out.append({"model": model_id, "score": name, "auc": est, "lo": lo, "hi": hi,
                    "pooled_auc": auc(y, s), "n_rows": len(y), "n_refused": int(y.sum()),
                    "n_items": int(rows["item"].nunique()), "n_families": int(rows["family"].nunique())})
    return pd.DataFrame(out)


def auc_difference(model_id: str, rows: pd.DataFrame, a: np.ndarray, b: np.ndarray, n_boot: int = 2000,
                   seed: int = 0, label: str = "activations minus words") -> dict[str, Any]:
    """Within-family AUC(a) - AUC(b) on the same rows, with a paired percentile bootstrap over requests."""
    y = rows["refused"].astype(int).to_numpy()
    family = rows["family"].to_numpy()

    def stat(i: np.ndarray) -> float:
        return within_family_auc(y[i], a[i], family[i]) - within_family_auc(y[i], b[i], family[i])

    est, lo, hi = _item_bootstrap(rows, stat, n_boot, seed)
    return {"model": model_id, "contrast": label, "difference": est, "lo": lo, "hi": hi,
            "n_items": int(rows["item"].nunique()), "n_boot": n_boot}
