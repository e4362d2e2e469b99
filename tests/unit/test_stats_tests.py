"""Tests for personalab.stats' testing helpers: bootstrap contrasts and p-values, Holm's correction, and the
minimum detectable difference of the power table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from personalab.stats import (
    bootstrap_contrast,
    bootstrap_difference,
    bootstrap_p_value,
    holm,
    min_detectable_difference,
)

# ---------------------------------------------------------------- bootstrap p-value and contrasts


def test_bootstrap_p_value_is_twice_the_smaller_tail() -> None:
    assert bootstrap_p_value([1.0, 2.0, 3.0, -1.0]) == pytest.approx(0.5)
    assert bootstrap_p_value([1.0, 2.0, 3.0]) == 0.0
    assert bootstrap_p_value([-1.0, 1.0]) == 1.0
    assert bootstrap_p_value([0.0, 0.0, 1.0]) == 1.0  # ties at zero count on both sides: no evidence
    assert bootstrap_p_value([1.0, math.nan, math.inf, -1.0]) == 1.0
    assert math.isnan(bootstrap_p_value([math.nan]))


def _pairs(n: int, seed: int, rates: dict[str, float]) -> pd.DataFrame:
    """``n`` clusters answered once in each arm, each arm with its own refusal probability."""
    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"pair": np.arange(n), "arm": arm, "refused": rng.random(n) < p})
                      for arm, p in rates.items()], ignore_index=True)


def test_contrast_with_two_arms_is_bootstrap_difference() -> None:
    df = _pairs(40, 0, {"direct": 0.7, "attacked": 0.4})
    c = bootstrap_contrast(df, "arm", {"direct": 1, "attacked": -1}, "refused", "pair", n_boot=500)
    assert (c.estimate, c.lo, c.hi) == bootstrap_difference(df, "arm", "direct", "attacked", "refused", "pair",
                                                            n_boot=500)
    assert c.n_clusters == 40


def test_difference_of_differences_estimate_and_p() -> None:
    """Target slippage minus twin slippage: a large specific effect gets a small p, a shared one does not."""
    specific = _pairs(200, 1, {"t/direct": 0.9, "t/attacked": 0.2, "b/direct": 0.5, "b/attacked": 0.5})
    w = {"t/direct": 1, "t/attacked": -1, "b/direct": -1, "b/attacked": 1}
    c = bootstrap_contrast(specific, "arm", w, "refused", "pair", n_boot=1000)
    r = specific.groupby("arm")["refused"].mean()
    assert c.estimate == pytest.approx(r["t/direct"] - r["t/attacked"] - r["b/direct"] + r["b/attacked"])
    assert c.lo > 0 and c.p < 0.01
    shared = _pairs(200, 2, {"t/direct": 0.9, "t/attacked": 0.5, "b/direct": 0.9, "b/attacked": 0.5})
    assert bootstrap_contrast(shared, "arm", w, "refused", "pair", n_boot=1000).p > 0.05


def test_contrast_p_agrees_with_the_interval() -> None:
    """p < 0.05 implies the 95% percentile interval excludes zero, and an interval off zero gives p <= 0.05."""
    seen = set()
    for seed in range(12):
        df = _pairs(30, seed, {"a": 0.6, "b": 0.4})
        c = bootstrap_contrast(df, "arm", {"a": 1, "b": -1}, "refused", "pair", n_boot=400, seed=seed)
        excludes = c.lo > 0 or c.hi < 0
        assert (not c.p < 0.05 or excludes) and (not excludes or c.p <= 0.05)
        seen.add(excludes)
    assert seen == {True, False}  # both cases were exercised


def test_contrast_validation() -> None:
    df = _pairs(5, 0, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="no rows with arm == 'c'"):
        bootstrap_contrast(df, "arm", {"a": 1, "c": -1}, "refused", "pair")
    with pytest.raises(ValueError, match="at least one group"):
        bootstrap_contrast(df, "arm", {}, "refused", "pair")
    with pytest.raises(ValueError, match="not in DataFrame"):
        bootstrap_contrast(df, "arm", {"a": 1}, "refused", "item")


# ---------------------------------------------------------------- Holm


def test_holm_known_values_in_input_order() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_capped_and_never_below_raw() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(12) ** 2
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1.0)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_holm_single_test_unchanged_and_nan_not_counted() -> None:
    assert holm([0.03]) == pytest.approx([0.03])
    out = holm([0.02, math.nan, 0.04])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_holm_validation() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])
    with pytest.raises(ValueError, match="one-dimensional"):
        holm([[0.1, 0.2]])


# ---------------------------------------------------------------- power


def _power(n: int, p0: float, p1: float, alpha: float = 0.05) -> float:
    """Normal-approximation power of the two-sided two-proportion test with n per arm."""
    pbar = (p0 + p1) / 2
    se0 = math.sqrt(2 * pbar * (1 - pbar) / n)
    se1 = math.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / n)
    return float(norm.cdf((abs(p1 - p0) - norm.ppf(1 - alpha / 2) * se0) / se1))


@pytest.mark.parametrize(("n", "p0"), [(20, 0.5), (20, 0.65), (100, 0.2), (400, 0.9)])
def test_min_detectable_difference_has_the_stated_power(n: int, p0: float) -> None:
    d = min_detectable_difference(n, p0)
    p1 = p0 + d if p0 < 0.5 else p0 - d
    assert _power(n, p0, p1) == pytest.approx(0.8, abs=1e-3)


def test_min_detectable_difference_textbook_value_and_trends() -> None:
    """About 0.2 for n = 100 per arm at p0 = 0.5 (the classic ~97 per arm for 0.5 vs 0.3)."""
    assert min_detectable_difference(100, 0.5) == pytest.approx(0.193, abs=0.005)
    assert min_detectable_difference(100, 0.5) < min_detectable_difference(20, 0.5)
    assert min_detectable_difference(20, 0.5, alpha=0.05 / 6) > min_detectable_difference(20, 0.5)
    assert min_detectable_difference(20, 0.5, power=0.9) > min_detectable_difference(20, 0.5)


def test_min_detectable_difference_direction() -> None:
    """A drop from a low rate is bounded by the rate itself: nothing is detectable when the bound is too small."""
    assert min_detectable_difference(20, 0.3, direction="up") == pytest.approx(min_detectable_difference(20, 0.3))
    assert math.isnan(min_detectable_difference(20, 0.15, direction="down"))
    assert math.isnan(min_detectable_difference(20, 0.0, direction="down"))
    d = min_detectable_difference(200, 0.3, direction="down")
    assert _power(200, 0.3, 0.3 - d) == pytest.approx(0.8, abs=1e-3)
    assert min_detectable_difference(200, 0.7, direction="up") == pytest.approx(d)  # mirror image


def test_min_detectable_difference_nan_when_nothing_is_detectable_and_validation() -> None:
    assert math.isnan(min_detectable_difference(2, 0.5))
    with pytest.raises(ValueError, match="direction"):
        min_detectable_difference(10, 0.5, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        min_detectable_difference(0, 0.5)
    with pytest.raises(ValueError, match="p0"):
        min_detectable_difference(10, 1.2)
    with pytest.raises(ValueError, match="power"):
        min_detectable_difference(10, 0.5, power=80)
