"""Statistics for the book: every rate gets an interval, every curve gets a bootstrap over prompts.

The book's claims are rates (how often a model refuses) and curves (how compliance grows with prefilled tokens
or many-shot examples). Prompts are the unit of sampling, so intervals for anything computed over several
generations per prompt resample *prompts* (clusters), not rows: rows of one prompt are not independent.

- ``wilson_interval`` / ``rate`` / ``rate_table``: binomial rates with Wilson score intervals, which behave
  at 0 % and 100 % where the normal approximation collapses to a zero-width interval.
- ``bootstrap_ci`` / ``bootstrap_difference``: percentile cluster bootstrap for any statistic and for the
  paired difference of two rates (slippage = direct refusal rate - attacked refusal rate);
  ``bootstrap_contrast`` generalises the latter to any weighted sum of rates and adds a bootstrap p-value.
- ``holm``: Holm's step-down correction when one claim rests on several tests (one per attack family).
- ``min_detectable_difference``: the smallest effect a design of n prompts detects at 80% power.
- ``logistic_fit`` / ``power_law_fit``: the two curve shapes the book fits, with bootstrap intervals.
- ``cohens_kappa`` / ``confusion_matrix``: agreement of an automatic judge with hand labels.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy.stats import norm

_CHUNK = 256
"""Bootstrap replicates drawn per batch, so memory stays bounded at (chunk x clusters)."""

_LOGIT_BOUND = 50.0
"""Bound on logistic coefficients on the standardised-x scale; keeps separated resamples finite."""


def _check_confidence(confidence: float) -> float:
    """Return ``confidence`` as a float after checking 0 < confidence < 1, so a typo (95) fails loudly."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a real number in (0, 1), got {confidence!r}")
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must satisfy 0 < confidence < 1, got {confidence!r}")
    return c


def _check_n_boot(n_boot: int) -> int:
    """Return ``n_boot`` after checking it is a positive integer."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    return int(n_boot)


def _z(confidence: float) -> float:
    """Two-sided standard-normal quantile for ``confidence``."""
    return float(norm.ppf(0.5 + confidence / 2.0))


def _wilson_arrays(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score bounds; n == 0 gives nan, k == 0 / k == n give exact 0 / 1 bounds."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2 = z * z
        denom = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    lo = np.where(k == 0, 0.0, lo)
    hi = np.where(k == n, 1.0, hi)
    lo = np.where(n == 0, np.nan, lo)
    hi = np.where(n == 0, np.nan, hi)
    return lo, hi


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0 because nothing was observed."""
    for name, value in (("successes", successes), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must satisfy 0 <= successes <= n, got successes={successes}, n={n}")
    z = _z(_check_confidence(confidence))
    lo, hi = _wilson_arrays(np.array([successes]), np.array([n]), z)
    return float(lo[0]), float(hi[0])


@dataclass(frozen=True)
class Rate:
    """A proportion k/n with its Wilson interval, printable the way the book quotes rates."""

    k: int
    n: int
    rate: float
    lo: float
    hi: float
    confidence: float = 0.95

    def format(self, digits: int = 0) -> str:
        """Render as ``"42% (95% CI 30–55%, n = 60)"`` with ``digits`` decimals on the percentages."""
        if self.n == 0:
            return "n/a (n = 0)"
        pct = f"{self.confidence * 100:g}%"
        return (
            f"{self.rate * 100:.{digits}f}% ({pct} CI {self.lo * 100:.{digits}f}–{self.hi * 100:.{digits}f}%, "
            f"n = {self.n})"
        )

    def __str__(self) -> str:
        """Whole-percent rendering, the default in prose."""
        return self.format()


def rate(successes: int, n: int, confidence: float = 0.95) -> Rate:
    """Build a ``Rate`` (k/n with Wilson interval); the rate is nan when n == 0."""
    lo, hi = wilson_interval(successes, n, confidence)
    value = successes / n if n else math.nan
    return Rate(k=int(successes), n=int(n), rate=value, lo=lo, hi=hi, confidence=float(confidence))


def _as_bool(values: pd.Series | np.ndarray | Sequence[object], name: str) -> np.ndarray:
    """Coerce a 0/1 or boolean column to a bool array, refusing missing or non-binary values."""
    arr = pd.Series(values)
    if arr.isna().any():
        raise ValueError(f"{name} has missing values; drop or label them before computing rates")
    if arr.dtype == bool:
        return arr.to_numpy(dtype=bool)
    if not arr.isin([0, 1]).all():
        bad = sorted({repr(v) for v in arr[~arr.isin([0, 1])].unique()[:5]})
        raise ValueError(f"{name} must be boolean or 0/1, found {', '.join(bad)}")
    return arr.to_numpy().astype(bool)


def rate_table(df: pd.DataFrame, by: list[str], outcome: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per-group rates of a boolean ``outcome``: columns ``by`` + [k, n, rate, lo, hi] with Wilson bounds."""
    z = _z(_check_confidence(confidence))
    by = list(by)
    missing = [c for c in [*by, outcome] if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in DataFrame: {missing}")
    y = pd.Series(_as_bool(df[outcome], outcome).astype(int), index=df.index)
    keys = [df[c] for c in by]
    grouped = y.groupby(keys, sort=True, dropna=False, observed=True).agg(["sum", "size"])
    out = grouped.reset_index()
    out.columns = [*by, "k", "n"]
    out["k"] = out["k"].astype(int)
    out["n"] = out["n"].astype(int)
    out["rate"] = out["k"] / out["n"]
    lo, hi = _wilson_arrays(out["k"].to_numpy(), out["n"].to_numpy(), z)
    out["lo"] = lo
    out["hi"] = hi
    return out


def _cluster_codes(values: pd.Series | np.ndarray | Sequence[Hashable], name: str) -> tuple[np.ndarray, int]:
    """Integer codes 0..C-1 for cluster ids (sorted, so results do not depend on row order)."""
    series = pd.Series(values)
    if series.isna().any():
        raise ValueError(f"{name} has missing cluster ids")
    try:
        codes, uniques = pd.factorize(series, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(series, sort=False)
    return np.asarray(codes), len(uniques)


def _count_batches(rng: np.random.Generator, n_clusters: int, n_boot: int) -> Iterator[np.ndarray]:
    """Yield (m x C) arrays: how often each cluster is drawn in each bootstrap replicate."""
    probs = np.full(n_clusters, 1.0 / n_clusters)
    done = 0
    while done < n_boot:
        m = min(_CHUNK, n_boot - done)
        yield rng.multinomial(n_clusters, probs, size=m)
        done += m


def _percentile(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap replicates ((nan, nan) if there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def bootstrap_ci(
    df: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    cluster: str,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Percentile cluster bootstrap: (estimate, lo, hi) for ``statistic`` with clusters resampled with replacement.

    Each replicate draws as many clusters as there are, with replacement, and keeps all rows of each drawn
    cluster. In a replicate the ``cluster`` column is relabelled 0..C-1 by draw, so a cluster drawn twice counts
    as two clusters for a statistic that groups by it. Replicates where the statistic is not finite are dropped.
    Deterministic given ``seed``.
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    if cluster not in df.columns:
        raise ValueError(f"cluster column {cluster!r} not in DataFrame")
    if len(df) == 0:
        raise ValueError("cannot bootstrap an empty DataFrame")
    codes, n_clusters = _cluster_codes(df[cluster], cluster)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    estimate = float(statistic(df))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    replicates = np.empty(n_boot)
    for i, drawn in enumerate(draws):
        lengths = sizes[drawn]
        offsets = np.repeat(starts[drawn] - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
        sample = df.iloc[order[offsets]].reset_index(drop=True)
        sample[cluster] = np.repeat(np.arange(n_clusters), lengths)
        replicates[i] = float(statistic(sample))
    lo, hi = _percentile(replicates, confidence)
    return estimate, lo, hi


@dataclass(frozen=True)
class Contrast:
    """A bootstrapped linear contrast of rates: estimate, percentile interval and two-sided bootstrap p-value."""

    estimate: float
    lo: float
    hi: float
    p: float
    n_clusters: int


def bootstrap_p_value(replicates: Sequence[float] | np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value for "the contrast is zero": min(1, 2 * min(P*(r <= 0), P*(r >= 0))).

    It is the smallest alpha at which the (1 - alpha) percentile interval of the same replicates still touches
    zero, so p < 0.05 matches a 95% interval that excludes zero (up to ties at exactly zero). Non-finite
    replicates are dropped; nan when none is left.
    """
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan
    return float(min(1.0, 2.0 * min(np.mean(r <= 0.0), np.mean(r >= 0.0))))


def bootstrap_contrast(
    df: pd.DataFrame,
    group: str,
    weights: Mapping[Hashable, float],
    outcome: str,
    cluster: str,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Contrast:
    """sum_g w_g * rate(group == g) with clusters resampled once for every arm, plus its bootstrap p-value.

    A difference of two rates is ``{a: 1, b: -1}``; a difference of two differences (target slippage minus
    benign-twin slippage) is four arms with weights +1, -1, -1, +1. Every arm's rate is pooled over its rows
    (ratio of sums), and a replicate draws clusters (prompts or request pairs) with replacement and keeps all of
    their rows in every arm, so correlation between arms within a cluster is kept. Rows whose ``group`` is not
    in ``weights`` are ignored. Deterministic given ``seed``.
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    missing = [c for c in (group, outcome, cluster) if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in DataFrame: {missing}")
    if not weights:
        raise ValueError("weights must name at least one group")
    sub = df[df[group].isin(list(weights))]
    y = _as_bool(sub[outcome], outcome).astype(float)
    codes, n_clusters = _cluster_codes(sub[cluster], cluster)
    arms = []
    for g, w in weights.items():
        mask = (sub[group] == g).to_numpy()
        if not mask.any():
            raise ValueError(f"no rows with {group} == {g!r}")
        k = np.bincount(codes[mask], weights=y[mask], minlength=n_clusters)
        n = np.bincount(codes[mask], minlength=n_clusters).astype(float)
        arms.append((float(w), k, n))
    estimate = sum(w * k.sum() / n.sum() for w, k, n in arms)
    rng = np.random.default_rng(seed)
    parts = []
    for counts in _count_batches(rng, n_clusters, n_boot):
        with np.errstate(divide="ignore", invalid="ignore"):
            parts.append(sum(w * (counts @ k) / (counts @ n) for w, k, n in arms))
    replicates = np.concatenate(parts)
    lo, hi = _percentile(replicates, confidence)
    return Contrast(float(estimate), lo, hi, bootstrap_p_value(replicates), int(n_clusters))


def bootstrap_difference(
    df: pd.DataFrame,
    group: str,
    a: Hashable,
    b: Hashable,
    outcome: str,
    cluster: str,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(diff, lo, hi) for rate(group == a) - rate(group == b), resampling clusters with both arms kept together.

    Pairing matters: a prompt answered directly and under attack contributes to both rates, so resampling the
    prompt (not each arm separately) keeps the correlation and gives the right, usually narrower, interval.
    Rows whose ``group`` is neither ``a`` nor ``b`` are ignored. Deterministic given ``seed``. The same contrast
    with its p-value is :func:`bootstrap_contrast` with weights ``{a: 1, b: -1}``.
    """
    c = bootstrap_contrast(df, group, {a: 1.0, b: -1.0}, outcome, cluster, n_boot, seed, confidence)
    return c.estimate, c.lo, c.hi


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, in input order: monotone in the sorted p and capped at 1.

    Controls the family-wise error rate over the m tests without assuming independence: the i-th smallest p
    (1-based) becomes max over j <= i of min(1, (m - j + 1) * p_(j)). nan entries are not tests: they stay nan
    and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError("pvalues must be one-dimensional")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0.0) | (p[finite] > 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(finite)
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def min_detectable_difference(
    n: int, p0: float, power: float = 0.8, alpha: float = 0.05, direction: Literal["up", "down", "half"] = "half"
) -> float:
    """Smallest difference d from a baseline proportion p0 that a two-sided level-``alpha`` test on n prompts per
    condition detects with probability ``power``.

    The two-proportion normal approximation: d solves
    z_{1-alpha/2} sqrt(2 pbar (1 - pbar)) + z_power sqrt(p0 q0 + p1 q1) = d sqrt(n), pbar = (p0 + p1) / 2, with
    the alternative p1 = p0 + d (``direction="up"``), p0 - d (``"down"``) or towards one half (``"half"``, the
    direction of larger variance). The book's contrasts are paired (the same prompts in both conditions), and
    pairing with a non-negative correlation between a prompt's two outcomes only narrows the interval, so this is
    a conservative (upper) figure for them. nan when no difference that keeps p1 within [0, 1] reaches the power:
    e.g. a drop from a 15% refusal rate can be at most 15 points.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0.0 <= p0 <= 1.0:
        raise ValueError(f"p0 must lie in [0, 1], got {p0!r}")
    for name, value in (("power", power), ("alpha", alpha)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must satisfy 0 < {name} < 1, got {value!r}")
    if direction not in ("up", "down", "half"):
        raise ValueError(f"direction must be 'up', 'down' or 'half', got {direction!r}")
    za, zb = float(norm.ppf(1.0 - alpha / 2.0)), float(norm.ppf(power))
    up = direction == "up" or (direction == "half" and p0 < 0.5)
    sign, d_max = (1.0, 1.0 - p0) if up else (-1.0, p0)

    def shortfall(d: float) -> float:
        """How far sqrt(n) * d falls short of what the power needs (negative once d is detectable)."""
        p1 = p0 + sign * d
        pbar = (p0 + p1) / 2.0
        need = za * math.sqrt(2.0 * pbar * (1.0 - pbar)) + zb * math.sqrt(p0 * (1.0 - p0) + p1 * (1.0 - p1))
        return need - d * math.sqrt(n)

    if d_max <= 0.0:
        return math.nan
    if shortfall(d_max) > 0.0:
        return math.nan
    return float(optimize.brentq(shortfall, 1e-12, d_max))


def _row_weights(
    n_rows: int, cluster: Sequence[Hashable] | np.ndarray | None, n_boot: int, seed: int
) -> Iterator[np.ndarray]:
    """Yield (m x n_rows) bootstrap weights: rows resampled individually, or by cluster when given."""
    if cluster is None:
        codes, n_clusters = np.arange(n_rows), n_rows
    else:
        if len(cluster) != n_rows:
            raise ValueError(f"cluster has length {len(cluster)}, expected {n_rows}")
        codes, n_clusters = _cluster_codes(cluster, "cluster")
    rng = np.random.default_rng(seed)
    for counts in _count_batches(rng, n_clusters, n_boot):
        yield counts[:, codes].astype(float)


def _finite_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """1-D float array with only finite values, or a clear ValueError."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


@dataclass(frozen=True)
class LogisticFit:
    """P(y = 1 | x) = 1 / (1 + exp(-(a + b x))) with bootstrap intervals; x50 = -a/b is where P crosses 50 %."""

    a: float
    b: float
    x50: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    x50_ci: tuple[float, float]
    n: int
    confidence: float

    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Fitted probability at ``x``, for drawing the curve."""
        return special.expit(self.a + self.b * np.asarray(x, dtype=float))


def _logistic_mle(z: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Weighted logistic MLE on standardised z, coefficients bounded so separation stays finite."""

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = theta[0] + theta[1] * z
        resid = w * (special.expit(eta) - y)
        value = float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))
        return value, np.array([resid.sum(), (resid * z).sum()])

    bounds = [(-_LOGIT_BOUND, _LOGIT_BOUND)] * 2
    return optimize.minimize(nll, start, jac=True, method="L-BFGS-B", bounds=bounds).x


def logistic_fit(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    cluster: Sequence[Hashable] | np.ndarray | None = None,
    confidence: float = 0.95,
) -> LogisticFit:
    """Maximum-likelihood logistic curve of binary ``y`` on ``x`` with percentile bootstrap intervals.

    Used for compliance against the number of prefilled tokens k. Resamples ``cluster`` ids (prompts) when given,
    else rows. The fit runs on standardised x; coefficients there are bounded to +-50, so a perfectly separated
    (step-like) resample yields a steep but finite curve rather than diverging. x50 is nan when b is ~0.
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    xs = _finite_array(x, "x")
    ys = _as_bool(np.asarray(y), "y").astype(float)
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length ({len(xs)} != {len(ys)})")
    if ys.min() == ys.max():
        raise ValueError("y must contain both outcomes; a logistic curve is not identified otherwise")
    mu, sd = float(xs.mean()), float(xs.std())
    if sd == 0.0:
        raise ValueError("x must take at least two distinct values")
    z = (xs - mu) / sd

    def natural(theta: np.ndarray) -> tuple[float, float, float]:
        """Map standardised coefficients back to (a, b, x50) on the original x scale."""
        a_std, b_std = float(theta[0]), float(theta[1])
        b_nat = b_std / sd
        a_nat = a_std - b_std * mu / sd
        x50 = math.nan if abs(b_std) < 1e-6 else mu - sd * a_std / b_std
        return a_nat, b_nat, x50

    theta_hat = _logistic_mle(z, ys, np.ones_like(ys), np.zeros(2))
    a_hat, b_hat, x50_hat = natural(theta_hat)
    reps = []
    for weights in _row_weights(len(xs), cluster, n_boot, seed):
        for w in weights:
            reps.append(natural(_logistic_mle(z, ys, w, theta_hat)))
    boot = np.array(reps)
    return LogisticFit(
        a=a_hat,
        b=b_hat,
        x50=x50_hat,
        a_ci=_percentile(boot[:, 0], confidence),
        b_ci=_percentile(boot[:, 1], confidence),
        x50_ci=_percentile(boot[:, 2], confidence),
        n=len(xs),
        confidence=confidence,
    )


@dataclass(frozen=True)
class PowerLawFit:
    """y = c * x**alpha fitted in log space, with bootstrap intervals for c and alpha."""

    c: float
    alpha: float
    c_ci: tuple[float, float]
    alpha_ci: tuple[float, float]
    n: int
    confidence: float

    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        """Fitted y at ``x``, for drawing the curve."""
        return self.c * np.power(np.asarray(x, dtype=float), self.alpha)


def _weighted_loglog(lx: np.ndarray, ly: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form weighted least squares of ly on lx for each row of weights: (log c, alpha)."""
    sw = w.sum(axis=1)
    sx, sy = w @ lx, w @ ly
    sxx, sxy = w @ (lx * lx), w @ (lx * ly)
    denom = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(denom > 1e-12 * sw * sw, (sw * sxy - sx * sy) / denom, np.nan)
        log_c = (sy - alpha * sx) / sw
    return log_c, alpha


def power_law_fit(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    cluster: Sequence[Hashable] | np.ndarray | None = None,
    confidence: float = 0.95,
) -> PowerLawFit:
    """Fit y = c * x**alpha by least squares on (log x, log y), with percentile bootstrap intervals.

    Used for many-shot curves (e.g. NLL or attack rate against the number of shots). Both x and y must be
    positive: zeros are not silently dropped, because which points were dropped would change the exponent.
    Resamples ``cluster`` ids when given, else rows; replicates with a single distinct x are discarded.
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_n_boot(n_boot)
    xs = _finite_array(x, "x")
    ys = _finite_array(y, "y")
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length ({len(xs)} != {len(ys)})")
    if np.any(xs <= 0) or np.any(ys <= 0):
        raise ValueError("power_law_fit needs x > 0 and y > 0 (it fits in log space)")
    if np.unique(xs).size < 2:
        raise ValueError("x must take at least two distinct values")
    lx, ly = np.log(xs), np.log(ys)
    log_c, alpha = _weighted_loglog(lx, ly, np.ones((1, len(xs))))
    log_cs, alphas = [], []
    for weights in _row_weights(len(xs), cluster, n_boot, seed):
        lc, al = _weighted_loglog(lx, ly, weights)
        log_cs.append(lc)
        alphas.append(al)
    lc_lo, lc_hi = _percentile(np.concatenate(log_cs), confidence)
    return PowerLawFit(
        c=float(np.exp(log_c[0])),
        alpha=float(alpha[0]),
        c_ci=(float(np.exp(lc_lo)), float(np.exp(lc_hi))),
        alpha_ci=_percentile(np.concatenate(alphas), confidence),
        n=len(xs),
        confidence=confidence,
    )


def _paired_labels(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> tuple[pd.Series, pd.Series]:
    """Two equal-length, non-empty label series without missing values."""
    a, b = pd.Series(list(labels_a), dtype=object), pd.Series(list(labels_b), dtype=object)
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length ({len(a)} != {len(b)})")
    if len(a) == 0:
        raise ValueError("need at least one labelled item")
    if a.isna().any() or b.isna().any():
        raise ValueError("labels contain missing values")
    return a, b


def cohens_kappa(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> float:
    """Cohen's kappa: agreement of two raters beyond chance; nan when chance agreement is 1 (both constant)."""
    a, b = _paired_labels(labels_a, labels_b)
    observed = float((a == b).mean())
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    expected = float((pa * pb.reindex(pa.index, fill_value=0.0)).sum())
    if math.isclose(expected, 1.0):
        return math.nan
    return (observed - expected) / (1.0 - expected)


def confusion_matrix(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable], labels: list[str]) -> pd.DataFrame:
    """Counts with rows = ``labels_a`` (e.g. hand labels), columns = ``labels_b`` (e.g. judge), in ``labels`` order."""
    a, b = _paired_labels(labels_a, labels_b)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {labels}")
    unknown = sorted({repr(v) for v in pd.concat([a, b]) if v not in set(labels)})
    if unknown:
        raise ValueError(f"labels not in {labels}: {', '.join(unknown)}")
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(counts, (a.map(index).to_numpy(dtype=int), b.map(index).to_numpy(dtype=int)), 1)
    return pd.DataFrame(
        counts,
        index=pd.Index(labels, name="labels_a"),
        columns=pd.Index(labels, name="labels_b"),
    )
