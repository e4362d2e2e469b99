"""Unit tests for personalab.experiments.detection: prompts, grouped cross-validation, AUC intervals, tables (no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import detection as dt
from personalab.book.plots import detection as dt_plots
from personalab.prompts import load_items


def test_systems_and_mimic():
    assert dt.SYSTEM_A_MIMIC.startswith(dt.SYSTEM_A)
    assert "warm, reflective voice" in dt.SYSTEM_A_MIMIC
    assert set(dt.SYSTEMS) == {"A", "B", "A-mimic"}


def test_attack_conditions_merge_system_prompts():
    item = load_items(split="heldout", variant="target")[0]
    conds = dt.attack_conditions(dt.SYSTEM_A)
    assert list(conds)[0] == "direct/plain" and len(conds) == len(dt.ATTACKS) + 1
    assert len({c.family for c in conds.values()}) == len(conds)  # one wrapper per family
    direct = conds["direct/plain"](item)
    assert direct[0] == {"role": "system", "content": dt.SYSTEM_A} and direct[1]["content"] == item.text
    ghost = conds["identity/ghostwriter"](item)
    assert ghost[0]["role"] == "system" and ghost[0]["content"].startswith(dt.SYSTEM_A)
    assert "Quill" in ghost[0]["content"] and sum(m["role"] == "system" for m in ghost) == 1


def test_grouped_scores_never_fit_and_score_a_group_together():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{i}" for i in range(10)], 4)
    y = np.tile([0, 1, 0, 1], 10)
    x = rng.normal(size=(40, 3)) + y[:, None] * 3.0
    mask = np.ones(40, dtype=bool)
    s = dt.grouped_scores(x, y, groups, mask, mask, folds=5, seed=0)
    assert not np.isnan(s).any()
    assert dt.auc(y, s) > 0.95
    with pytest.raises(ValueError, match="distinct groups"):
        dt.grouped_scores(x[:8], y[:8], groups[:8], mask[:8], mask[:8], folds=5)


def test_auc_and_interval():
    assert dt.auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert np.isnan(dt.auc([1, 1], [0.2, 0.3]))
    y = np.array([0, 1] * 20)
    s = np.where(y == 1, 0.7, 0.3) + np.random.default_rng(1).normal(0, 0.3, size=40)
    est, lo, hi = dt.auc_interval(y, s, np.repeat(np.arange(20), 2), n_boot=200)
    assert lo <= est <= hi and 0 <= lo and hi <= 1


def test_detection_auc_with_given_embeddings():
    rng = np.random.default_rng(2)
    rows, xs = [], []
    for i in range(12):
        for system, shift in (("A", 2.0), ("B", -2.0), ("A-mimic", 0.0)):
            rows.append({"item": f"it{i}", "system": system, "reply": "x"})
            xs.append(rng.normal(size=4) + shift)
    df, x = pd.DataFrame(rows), np.array(xs)
    r = dt.detection_auc(df, x, "A", "B", n_boot=100)
    assert r["auc"] > 0.9 and r["n_positive"] == r["n_negative"] == 12
    t = dt.detection_auc(df, x, "A-mimic", "B", fit_positive="A", n_boot=100)
    assert t["fitted_on"] == "A vs B" and 0 <= t["auc"] <= 1


def test_marker_and_attack_tables():
    refusals = pd.DataFrame({"system": ["A", "A", "B", "B"], "item": ["a", "b", "a", "b"],
                             "reply": ["I understand, but the policy says no. Instead, try this.",
                                       "Against the rules.", "I really care about honesty. What's going on?",
                                       "That doesn't feel right to me."]})
    m = dt.marker_table(refusals).set_index(["marker", "system"])
    assert m.loc[("cites a rule or policy", "A"), "rate"] == 1.0
    assert m.loc[("asks the user a question", "B"), "k"] == 1
    rows = []
    for system, refused in (("A", [True, False]), ("B", [True, True])):
        for cond in ("direct/plain", *dt.ATTACKS):
            for j, item in enumerate(("x", "y")):
                rows.append({"system": system, "condition": cond, "item": item, "refused": refused[j]})
    att = pd.DataFrame(rows)
    att["attacked"] = att["condition"] != "direct/plain"
    table = dt.attack_table(att)
    assert set(table["condition"]) == {"direct/plain", *dt.ATTACKS, "all attacks"}
    assert table["success"].between(0, 1).all()
    diff = dt.attack_difference(att, n_boot=50)
    assert diff.iloc[1]["difference"] == pytest.approx(-0.5)
    assert dt_plots.auc_plot(pd.DataFrame([{"test": "A vs B", "auc": 0.8, "lo": 0.7, "hi": 0.9}])).axes
    assert dt_plots.robustness_plot(table).axes
