"""The fresh-pass strings of the methods appendix and the closing chapter (no server)."""

from __future__ import annotations

import pandas as pd
import pytest

from personalab.book.chapters.fresh_passes import comparison, goal_sentence, group_name, pass_n


def _fresh() -> pd.DataFrame:
    rows = []
    for judge, kappas in (("old", (0.83, 0.64, 0.41)), ("new", (0.83, 0.89, 0.76))):
        for (grouping, group, n, rate), kappa in zip(
                (("family", "lang_it", 144, 23 / 144), ("family", "prefill", 100, 0.09),
                 ("model", "smollm2-135m-mask-preference", 118, 15 / 118)), kappas):
            rows.append({"labeller": "pass-x", "grouping": grouping, "group": group, "judge": judge, "n": n,
                         "hand_refusal_rate": rate, "kappa": kappa, "kappa_lo": kappa - 0.2,
                         "kappa_hi": min(kappa + 0.1, 1.0)})
    return pd.DataFrame(rows)


def test_goal_sentence_splits_the_groups_at_the_target():
    text = goal_sentence(_fresh(), "pass-x", "old", 0.8)
    assert text.startswith("reaches 0.8 on the Italian requests, 0.83 (95% CI 0.63 to 0.93; n = 144, 23 refusals)")
    assert "falls short on the compliant prefills, 0.64" in text and "the preference mask, 0.41" in text
    assert goal_sentence(_fresh(), "pass-x", "old", 0.3).count("falls short") == 0


def test_comparison_counts_higher_lower_and_equal_groups():
    assert comparison(_fresh(), "pass-x", "new", "old") == (
        "higher on 2 of the 3 groups, lower on 0 and equal on 1 (the compliant prefills 0.64 → 0.89, "
        "the preference mask 0.41 → 0.76)")


def test_pass_n_and_names():
    assert pass_n(_fresh(), "pass-x") == "118 of the preference mask (15 refusals)"
    assert group_name("lang_de") == "lang de"


def test_a_pass_that_was_not_scored_is_one_clear_error():
    with pytest.raises(ValueError, match="no rows for old on pass-y; run `personalab judges validate`"):
        goal_sentence(_fresh(), "pass-y", "old", 0.8)


def test_a_kappa_of_exactly_the_target_reaches_it_despite_float_error():
    from personalab.judges.validate import reaches

    assert 0.7999999999999999 < 0.8 and reaches(0.7999999999999999)
    assert not reaches(0.799) and not reaches(float("nan"))
    assert reaches(pd.Series([0.8 - 1e-12, 0.79])).tolist() == [True, False]


def test_labellers_on_compares_the_two_labellings_of_one_pass():
    from personalab.book.chapters.fresh_passes import labellers_on

    ids = [f"r{i}" for i in range(8)]
    first = pd.DataFrame({"id": ids, "label": ["refusal", "compliance"] * 4,
                          "labeller": ["pass-x-a"] * 4 + ["pass-x-b"] * 4})
    second = pd.DataFrame({"id": ids, "label": ["refusal", "compliance"] * 3 + ["compliance", "compliance"]})
    pool = pd.DataFrame({"id": ids, "item": [f"item-{i}" for i in range(8)]})
    text = labellers_on(first, second, pool, "pass-x", n_boot=50)
    assert text.endswith("n = 8, 7 labelled alike)") and text.startswith("0.75 ")
    with pytest.raises(ValueError, match="No reply of pass-y was labelled twice"):
        labellers_on(first, second, pool, "pass-y")
