"""Tests for personalab.stats: known interval values, input validation, bootstrap behaviour, curve fits, kappa."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from personalab.stats import (
    LogisticFit,
    PowerLawFit,
    Rate,
    bootstrap_ci,
    bootstrap_difference,
    cohens_kappa,
    confusion_matrix,
    logistic_fit,
    power_law_fit,
    rate,
    rate_table,
    wilson_interval,
)

# ---------------------------------------------------------------- Wilson, Rate, rate_table


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (1, 1, 0.2065, 1.0)],
)
def test_wilson_known_values(k: int, n: int, lo: float, hi: float) -> None:
    """Textbook Wilson bounds (95 %), with exact 0 and 1 at the edges."""
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_edges_exact() -> None:
    """k = 0 gives a lower bound of exactly 0, k = n an upper bound of exactly 1."""
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0


@pytest.mark.parametrize(("k", "n"), [(0, 1), (3, 17), (50, 100), (99, 100), (400, 400), (1, 3)])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    """Agrees with scipy's binomtest Wilson interval."""
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((ref.low, ref.high), abs=1e-10)


def test_wilson_wider_with_more_confidence_and_narrower_with_more_data() -> None:
    """Higher confidence widens, more data narrows."""
    lo90, hi90 = wilson_interval(30, 100, 0.90)
    lo99, hi99 = wilson_interval(30, 100, 0.99)
    lo_big, hi_big = wilson_interval(300, 1000)
    lo95, hi95 = wilson_interval(30, 100)
    assert hi99 - lo99 > hi95 - lo95 > hi90 - lo90
    assert hi_big - lo_big < hi95 - lo95


def test_wilson_n_zero_is_nan() -> None:
    """Nothing observed, no interval."""
    lo, hi = wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize(
    ("k", "n", "confidence", "match"),
    [
        (-1, 10, 0.95, "successes"),
        (11, 10, 0.95, "successes"),
        (0, -1, 0.95, "n must"),
        (1, 10, 0.0, "confidence"),
        (1, 10, 1.0, "confidence"),
        (1, 10, 95, "confidence"),
        (1, 10, float("nan"), "confidence"),
    ],
)
def test_wilson_validation(k: int, n: int, confidence: float, match: str) -> None:
    """Out-of-range inputs raise ValueError with a message naming the culprit."""
    with pytest.raises(ValueError, match=match):
        wilson_interval(k, n, confidence)


def test_wilson_rejects_non_integers() -> None:
    """Counts must be integers (numpy integers are fine)."""
    with pytest.raises(TypeError):
        wilson_interval(2.5, 10)  # type: ignore[arg-type]
    assert wilson_interval(np.int64(3), np.int64(10)) == wilson_interval(3, 10)


def test_rate_and_str() -> None:
    """Rate carries k, n, rate and bounds, and prints the way the book quotes it."""
    r = rate(25, 60)
    assert isinstance(r, Rate)
    assert (r.k, r.n) == (25, 60)
    assert r.rate == pytest.approx(25 / 60)
    assert (r.lo, r.hi) == wilson_interval(25, 60)
    assert str(r) == "42% (95% CI 30–54%, n = 60)"
    assert r.format(digits=1) == "41.7% (95% CI 30.1–54.3%, n = 60)"
    assert str(rate(9, 10, confidence=0.9)).startswith("90% (90% CI ")
    empty = rate(0, 0)
    assert math.isnan(empty.rate)
    assert str(empty) == "n/a (n = 0)"


def test_rate_table() -> None:
    """Per-group counts, rates and Wilson bounds, groups sorted."""
    df = pd.DataFrame(
        {
            "model": ["m1"] * 4 + ["m2"] * 3,
            "attack": ["none", "none", "prefill", "prefill", "none", "none", "none"],
            "refused": [True, True, False, True, False, False, True],
        }
    )
    out = rate_table(df, ["model", "attack"], "refused")
    assert list(out.columns) == ["model", "attack", "k", "n", "rate", "lo", "hi"]
    assert out[["model", "attack"]].values.tolist() == [["m1", "none"], ["m1", "prefill"], ["m2", "none"]]
    assert out["k"].tolist() == [2, 1, 1]
    assert out["n"].tolist() == [2, 2, 3]
    assert out["rate"].tolist() == pytest.approx([1.0, 0.5, 1 / 3])
    for _, row in out.iterrows():
        assert (row["lo"], row["hi"]) == pytest.approx(wilson_interval(int(row["k"]), int(row["n"])))


def test_rate_table_accepts_01_and_rejects_other_outcomes() -> None:
    """0/1 outcomes work; missing or non-binary outcomes and unknown columns are errors."""
    df = pd.DataFrame({"g": ["a", "a", "b"], "y": [1, 0, 1]})
    assert rate_table(df, ["g"], "y")["k"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="boolean"):
        rate_table(df.assign(y=[1, 2, 0]), ["g"], "y")
    with pytest.raises(ValueError, match="missing"):
        rate_table(df.assign(y=[1.0, None, 0.0]), ["g"], "y")
    with pytest.raises(ValueError, match="not in DataFrame"):
        rate_table(df, ["nope"], "y")


# ---------------------------------------------------------------- bootstrap


def _clustered(n_clusters: int, per_cluster: int, seed: int, p: float = 0.3, spread: float = 0.15) -> pd.DataFrame:
    """Synthetic binary outcomes with a per-prompt random effect around a true mean p."""
    rng = np.random.default_rng(seed)
    p_cluster = np.clip(p + rng.uniform(-spread, spread, n_clusters), 0, 1)
    prompt = np.repeat(np.arange(n_clusters), per_cluster)
    y = rng.random(prompt.size) < p_cluster[prompt]
    return pd.DataFrame({"prompt": prompt, "y": y})


def _mean_y(d: pd.DataFrame) -> float:
    """Pooled rate of y."""
    return float(d["y"].mean())


def test_bootstrap_ci_deterministic_and_seed_dependent() -> None:
    """Same seed, same interval; another seed, a (slightly) different one."""
    df = _clustered(40, 5, seed=1)
    first = bootstrap_ci(df, _mean_y, "prompt", n_boot=300, seed=7)
    assert first == bootstrap_ci(df, _mean_y, "prompt", n_boot=300, seed=7)
    assert first != bootstrap_ci(df, _mean_y, "prompt", n_boot=300, seed=8)
    assert first[0] == pytest.approx(df["y"].mean())
    assert first[1] <= first[0] <= first[2]


def test_bootstrap_ci_independent_of_row_order() -> None:
    """Clusters are coded in sorted order, so shuffling rows does not change the result."""
    df = _clustered(30, 4, seed=2)
    shuffled = df.sample(frac=1.0, random_state=0)
    assert bootstrap_ci(df, _mean_y, "prompt", n_boot=200) == pytest.approx(
        bootstrap_ci(shuffled, _mean_y, "prompt", n_boot=200)
    )


def test_bootstrap_ci_covers_truth_and_shrinks() -> None:
    """The true rate lies inside the interval, and 10x more clusters gives a clearly narrower interval."""
    small = bootstrap_ci(_clustered(30, 5, seed=3), _mean_y, "prompt", n_boot=500)
    large = bootstrap_ci(_clustered(300, 5, seed=3), _mean_y, "prompt", n_boot=500)
    for _, lo, hi in (small, large):
        assert lo <= 0.3 <= hi
    assert (large[2] - large[1]) < 0.5 * (small[2] - small[1])


def test_bootstrap_ci_coverage_rate() -> None:
    """Over repeated synthetic samples, the 90 % interval covers the truth roughly 90 % of the time."""
    covered = 0
    trials = 60
    for s in range(trials):
        _, lo, hi = bootstrap_ci(_clustered(40, 4, seed=100 + s), _mean_y, "prompt", n_boot=300, confidence=0.9)
        covered += lo <= 0.3 <= hi
    assert 0.75 <= covered / trials <= 1.0


def test_bootstrap_ci_cluster_wider_than_row_bootstrap() -> None:
    """With strong per-prompt effects, resampling prompts gives a wider interval than resampling rows."""
    df = _clustered(30, 10, seed=4, p=0.5, spread=0.45)
    _, c_lo, c_hi = bootstrap_ci(df, _mean_y, "prompt", n_boot=500)
    _, r_lo, r_hi = bootstrap_ci(df.assign(row=np.arange(len(df))), _mean_y, "row", n_boot=500)
    assert (c_hi - c_lo) > 1.3 * (r_hi - r_lo)


def test_bootstrap_ci_relabels_duplicated_clusters() -> None:
    """A cluster drawn twice counts twice when the statistic groups by the cluster column."""
    df = _clustered(20, 3, seed=5)
    seen = []

    def n_clusters(d: pd.DataFrame) -> float:
        seen.append(d["prompt"].nunique())
        return float(d.groupby("prompt")["y"].mean().mean())

    bootstrap_ci(df, n_clusters, "prompt", n_boot=50)
    assert set(seen) == {20}


def test_bootstrap_ci_validation() -> None:
    """Bad arguments fail early with clear messages."""
    df = _clustered(5, 2, seed=0)
    with pytest.raises(ValueError, match="cluster column"):
        bootstrap_ci(df, _mean_y, "nope")
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(df, _mean_y, "prompt", n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(df, _mean_y, "prompt", confidence=1.5)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(df.iloc[:0], _mean_y, "prompt")


def _paired(n_prompts: int, seed: int, p_direct: float = 0.8, p_attacked: float = 0.5) -> pd.DataFrame:
    """Each prompt answered directly and under attack, with a shared per-prompt effect (the pairing)."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 1.0, n_prompts)
    rows = []
    for arm, p in (("direct", p_direct), ("attacked", p_attacked)):
        logit = np.log(p / (1 - p)) + effect
        for rep in range(3):
            y = rng.random(n_prompts) < 1 / (1 + np.exp(-logit))
            rows.append(pd.DataFrame({"prompt": np.arange(n_prompts), "arm": arm, "rep": rep, "refused": y}))
    return pd.concat(rows, ignore_index=True)


def test_bootstrap_difference_estimate_and_determinism() -> None:
    """The estimate is the plain difference of rates, the interval is reproducible and contains it."""
    df = _paired(60, seed=1)
    diff, lo, hi = bootstrap_difference(df, "arm", "direct", "attacked", "refused", "prompt", n_boot=500)
    rates = df.groupby("arm")["refused"].mean()
    assert diff == pytest.approx(rates["direct"] - rates["attacked"])
    assert lo <= diff <= hi
    assert (diff, lo, hi) == bootstrap_difference(df, "arm", "direct", "attacked", "refused", "prompt", n_boot=500)
    neg = bootstrap_difference(df, "arm", "attacked", "direct", "refused", "prompt", n_boot=500)
    assert neg[0] == pytest.approx(-diff)


def test_bootstrap_difference_pairing_narrows_interval() -> None:
    """Pairing by prompt gives a narrower interval than treating the arms' rows as unrelated."""
    df = _paired(80, seed=2)
    _, lo, hi = bootstrap_difference(df, "arm", "direct", "attacked", "refused", "prompt", n_boot=1000)
    unpaired = df.assign(prompt=df["arm"] + ":" + df["prompt"].astype(str))
    _, ulo, uhi = bootstrap_difference(unpaired, "arm", "direct", "attacked", "refused", "prompt", n_boot=1000)
    assert (hi - lo) < (uhi - ulo)


def test_bootstrap_difference_matches_generic_bootstrap() -> None:
    """The vectorised paired bootstrap agrees with bootstrap_ci on the same statistic, up to Monte Carlo noise."""
    df = _paired(50, seed=3)

    def slip(d: pd.DataFrame) -> float:
        r = d.groupby("arm")["refused"].mean()
        return float(r["direct"] - r["attacked"])

    _, lo, hi = bootstrap_difference(df, "arm", "direct", "attacked", "refused", "prompt", n_boot=2000)
    _, glo, ghi = bootstrap_ci(df, slip, "prompt", n_boot=2000)
    assert lo == pytest.approx(glo, abs=0.03)
    assert hi == pytest.approx(ghi, abs=0.03)


def test_bootstrap_difference_validation() -> None:
    """Missing arms and columns are reported."""
    df = _paired(5, seed=0)
    with pytest.raises(ValueError, match="no rows with arm == 'nope'"):
        bootstrap_difference(df, "arm", "direct", "nope", "refused", "prompt")
    with pytest.raises(ValueError, match="not in DataFrame"):
        bootstrap_difference(df, "arm", "direct", "attacked", "refused", "item")


# ---------------------------------------------------------------- curve fits


def _logistic_data(a: float, b: float, n_prompts: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary outcomes at k = 0..20 prefilled tokens for each prompt, from a known logistic curve."""
    rng = np.random.default_rng(seed)
    k = np.tile(np.arange(21), n_prompts).astype(float)
    prompt = np.repeat(np.arange(n_prompts), 21)
    y = rng.random(k.size) < 1 / (1 + np.exp(-(a + b * k)))
    return k, y, prompt


def test_logistic_fit_recovers_parameters() -> None:
    """MLE recovers a, b and x50 = -a/b on a large synthetic sample, and the intervals contain them."""
    k, y, prompt = _logistic_data(-3.0, 0.4, n_prompts=150, seed=0)
    fit = logistic_fit(k, y, n_boot=200, seed=0, cluster=prompt)
    assert isinstance(fit, LogisticFit)
    assert fit.a == pytest.approx(-3.0, abs=0.3)
    assert fit.b == pytest.approx(0.4, abs=0.04)
    assert fit.x50 == pytest.approx(7.5, abs=0.5)
    assert fit.x50 == pytest.approx(-fit.a / fit.b)
    assert fit.a_ci[0] <= -3.0 <= fit.a_ci[1]
    assert fit.b_ci[0] <= 0.4 <= fit.b_ci[1]
    assert fit.x50_ci[0] <= 7.5 <= fit.x50_ci[1]
    assert fit.n == k.size
    assert fit.predict([fit.x50])[0] == pytest.approx(0.5)


def test_logistic_fit_deterministic() -> None:
    """Same seed, same intervals."""
    k, y, _ = _logistic_data(-2.0, 0.3, n_prompts=20, seed=1)
    assert logistic_fit(k, y, n_boot=50, seed=3) == logistic_fit(k, y, n_boot=50, seed=3)


def test_logistic_fit_flat_curve_has_nan_x50() -> None:
    """With no dependence on x (half the outcomes at every x are 1), b is ~0 and x50 is nan."""
    x = np.repeat(np.arange(10.0), 20)
    y = np.tile([0, 1], 100)
    fit = logistic_fit(x, y, n_boot=50)
    assert abs(fit.b) < 1e-6
    assert math.isnan(fit.x50)


def test_logistic_fit_separated_data_stays_finite() -> None:
    """A perfect step gives a steep, finite fit with x50 between the two classes."""
    x = np.arange(10.0)
    y = x >= 5
    fit = logistic_fit(x, y, n_boot=50)
    assert np.isfinite([fit.a, fit.b, fit.x50]).all()
    assert 4.0 < fit.x50 < 5.0
    assert fit.b > 5


def test_logistic_fit_validation() -> None:
    """Constant outcomes, constant x, non-binary y and length mismatch are errors."""
    with pytest.raises(ValueError, match="both outcomes"):
        logistic_fit([1, 2, 3], [1, 1, 1])
    with pytest.raises(ValueError, match="distinct"):
        logistic_fit([2, 2, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="boolean or 0/1"):
        logistic_fit([1, 2, 3], [0, 2, 1])
    with pytest.raises(ValueError, match="length"):
        logistic_fit([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="cluster"):
        logistic_fit([1, 2, 3], [0, 1, 1], cluster=[1, 2])


def test_power_law_fit_recovers_alpha() -> None:
    """Least squares in log space recovers c and alpha; intervals contain them and shrink with data."""
    rng = np.random.default_rng(0)
    shots = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float)
    x = np.tile(shots, 30)
    y = 2.5 * x**-0.35 * np.exp(rng.normal(0, 0.1, x.size))
    fit = power_law_fit(x, y, n_boot=500, cluster=np.repeat(np.arange(30), shots.size))
    assert isinstance(fit, PowerLawFit)
    assert fit.alpha == pytest.approx(-0.35, abs=0.02)
    assert fit.c == pytest.approx(2.5, rel=0.05)
    assert fit.alpha_ci[0] <= -0.35 <= fit.alpha_ci[1]
    assert fit.c_ci[0] <= 2.5 <= fit.c_ci[1]
    assert fit.predict([1.0])[0] == pytest.approx(fit.c)
    few = power_law_fit(x[:24], y[:24], n_boot=500)
    assert (few.alpha_ci[1] - few.alpha_ci[0]) > (fit.alpha_ci[1] - fit.alpha_ci[0])


def test_power_law_fit_exact_and_deterministic() -> None:
    """Noise-free data is fitted exactly; results repeat with the seed."""
    x = np.array([1.0, 2.0, 5.0, 10.0, 50.0])
    fit = power_law_fit(x, 3.0 * x**1.5, n_boot=100, seed=4)
    assert fit.alpha == pytest.approx(1.5)
    assert fit.c == pytest.approx(3.0)
    assert fit == power_law_fit(x, 3.0 * x**1.5, n_boot=100, seed=4)


def test_power_law_fit_validation() -> None:
    """Non-positive values and a single distinct x are rejected rather than silently dropped."""
    with pytest.raises(ValueError, match="x > 0 and y > 0"):
        power_law_fit([0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="x > 0 and y > 0"):
        power_law_fit([1, 2, 3], [1, 0, 3])
    with pytest.raises(ValueError, match="distinct"):
        power_law_fit([2, 2], [1, 3])
    with pytest.raises(ValueError, match="non-finite"):
        power_law_fit([1, 2, np.nan], [1, 2, 3])


# ---------------------------------------------------------------- agreement


def test_kappa_perfect_agreement() -> None:
    """Identical labels give kappa = 1."""
    labels = ["refusal", "compliance", "other", "refusal"]
    assert cohens_kappa(labels, labels) == pytest.approx(1.0)


def test_kappa_textbook_example() -> None:
    """Wikipedia's 50-item example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, p_e 0.5, kappa 0.4."""
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohens_kappa(a, b) == pytest.approx(0.4)


def test_kappa_chance_is_near_zero() -> None:
    """Two independent random raters agree only by chance: kappa ~ 0."""
    rng = np.random.default_rng(0)
    cats = np.array(["refusal", "compliance", "other"])
    a = rng.choice(cats, 5000, p=[0.5, 0.3, 0.2])
    b = rng.choice(cats, 5000, p=[0.5, 0.3, 0.2])
    assert abs(cohens_kappa(a, b)) < 0.05


def test_kappa_systematic_disagreement_is_negative_and_constant_raters_nan() -> None:
    """Always disagreeing gives kappa < 0; two constant identical raters leave kappa undefined."""
    assert cohens_kappa(["a", "b"] * 5, ["b", "a"] * 5) == pytest.approx(-1.0)
    assert math.isnan(cohens_kappa(["a"] * 4, ["a"] * 4))


def test_kappa_validation() -> None:
    """Mismatched lengths, empty input and missing labels are errors."""
    with pytest.raises(ValueError, match="length"):
        cohens_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        cohens_kappa([], [])
    with pytest.raises(ValueError, match="missing"):
        cohens_kappa(["a", None], ["a", "b"])


def test_confusion_matrix() -> None:
    """Rows are the first rater, columns the second, in the given label order, including unused labels."""
    hand = ["refusal", "refusal", "compliance", "other", "compliance"]
    judge = ["refusal", "compliance", "compliance", "compliance", "compliance"]
    cm = confusion_matrix(hand, judge, ["refusal", "compliance", "other"])
    assert cm.index.tolist() == ["refusal", "compliance", "other"]
    assert cm.columns.tolist() == ["refusal", "compliance", "other"]
    assert cm.loc["refusal"].tolist() == [1, 1, 0]
    assert cm.loc["compliance"].tolist() == [0, 2, 0]
    assert cm.loc["other"].tolist() == [0, 1, 0]
    assert int(cm.to_numpy().sum()) == len(hand)
    with pytest.raises(ValueError, match="labels not in"):
        confusion_matrix(["refusal"], ["maybe"], ["refusal", "compliance"])
    with pytest.raises(ValueError, match="duplicates"):
        confusion_matrix(["a"], ["a"], ["a", "a"])
