"""The probe experiment's logic: out-of-distribution scoring never fits on a scored family or request, and the
AUC difference is paired."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import probe as pr


def _data(n_items: int = 12, families: tuple[str, ...] = ("a", "b", "c"), seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [(f, f"i{k:02d}") for f in families for k in range(n_items)]
    family = np.array([f for f, _ in rows], dtype=object)
    item = np.array([i for _, i in rows], dtype=object)
    y = rng.integers(0, 2, size=len(rows))
    return family, item, y


def test_a_feature_that_carries_the_label_is_found_on_unseen_families_and_requests():
    """A column equal to the label (plus noise) scores near AUC 1; pure noise near 0.5."""
    family, item, y = _data(n_items=30)
    rng = np.random.default_rng(1)
    signal = np.c_[y + 0.3 * rng.normal(size=len(y)), rng.normal(size=(len(y), 5))]
    noise = rng.normal(size=(len(y), 6))
    assert pr.auc(y, pr.crossed_scores(signal, y, family, item)) > 0.95
    assert abs(pr.auc(y, pr.crossed_scores(noise, y, family, item)) - 0.5) < 0.15


def test_no_scored_row_is_fitted_on_its_family_or_request(monkeypatch):
    """Every model is fitted only on rows of other families and other request folds than those it scores."""
    from sklearn import linear_model

    family, item, y = _data()
    x = np.arange(len(y), dtype=float)[:, None]  # the row index, so the fitted rows can be read back
    fitted: list[np.ndarray] = []
    original = linear_model.LogisticRegression.fit

    def spy(self, xf, yf):
        fitted.append(xf)
        return original(self, xf, yf)

    monkeypatch.setattr(linear_model.LogisticRegression, "fit", spy)
    monkeypatch.setattr(pr, "standardise", lambda train, v: v)
    out = pr.crossed_scores(x, y, family, item, item_folds=2)
    assert not np.isnan(out).any() and len(fitted) == 3 * 2
    # each scored block (family, fold) is disjoint in family and request from the rows its model saw
    seen_families = [set(family[f[:, 0].astype(int)]) for f in fitted]
    assert all(len(s) == 2 for s in seen_families)
    for rows in fitted:
        idx = rows[:, 0].astype(int)
        assert len(set(item[idx])) == len(set(item)) // 2  # one request fold left out entirely


def test_standardise_uses_the_fitted_rows_only():
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    out = pr.standardise(train, np.array([[1.0, 7.0]]))
    assert out.tolist() == [[0.0, 2.0]]  # centred on train's mean; a constant column is only centred


def test_the_auc_difference_is_paired_and_zero_for_identical_scores():
    family, item, y = _data(n_items=20)
    rows = pd.DataFrame({"item": item, "family": family, "refused": y})
    s = np.random.default_rng(2).normal(size=len(y))
    same = pr.auc_difference("m", rows, s, s, n_boot=200)
    assert same["difference"] == 0 and same["lo"] == 0 and same["hi"] == 0
    better = pr.auc_difference("m", rows, y + 0.1 * s, s, n_boot=200)
    assert better["difference"] > 0.3 and better["lo"] > 0


def test_bad_inputs_get_one_sentence():
    family, item, y = _data(n_items=1)
    with pytest.raises(ValueError, match=r"need at least 2 requests for 2 request folds, got 1"):
        pr.crossed_scores(np.zeros((len(y), 1)), y, family, item)
    family, item, y = _data(families=("a",))
    with pytest.raises(ValueError, match="at least two attack families"):
        pr.crossed_scores(np.zeros((len(y), 1)), y, family, item)
    with pytest.raises(ValueError, match="no attacked target"):
        pr.attacked_targets(pd.DataFrame({"variant": ["target"], "wrapper": ["direct/plain"], "family": ["direct"],
                                          "item": ["x"], "refused": [True]}))


def test_word_features_see_every_message():
    """The words of a many-shot context and of the final request both reach the classifier."""
    a = pr.word_features([[{"role": "user", "content": "alpha beta"}, {"role": "user", "content": "gamma"}]])
    b = pr.word_features([[{"role": "user", "content": "alpha beta"}]])
    assert a.nnz > b.nnz


def test_within_family_auc_ignores_the_families_base_rates():
    """Scores that rank perfectly inside each family but invert the families' rates: pooled AUC is low, the
    within-family AUC is 1."""
    family = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    y = np.array([0, 1, 1, 1, 0, 0, 0, 1])
    s = np.array([0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    assert pr.within_family_auc(y, s, family) == 1.0
    assert pr.auc(y, s) < 0.7
    one_class = np.array(["a"] * 4 + ["c"] * 4, dtype=object)
    assert pr.within_family_auc(np.array([0, 0, 1, 1, 1, 1, 1, 1]), s, one_class) == 1.0  # family c is skipped
