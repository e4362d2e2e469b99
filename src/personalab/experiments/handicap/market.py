"""The replicator market model of the wisdom handicap experiment, driven by the measured numbers.

Each strategy's fitness (:func:`fitness`) combines its measured cost, robustness, direct refusal and
over-refusal (:func:`market_inputs`); :func:`simulate_market` runs the replicator dynamics and
:func:`threshold_p` finds the detection probability at which the most robust strategy survives. It is an
illustration, not a forecast; its assumptions are listed in :data:`MARKET_ASSUMPTIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MARKET_ASSUMPTIONS: tuple[str, ...] = (
    "Providers each run one strategy; a strategy's market share grows in proportion to how much its fitness "
    "exceeds the share-weighted mean fitness (replicator dynamics).",
    "Fitness, in dollars per 1,000 requests: value_of_alignment x perceived alignment, minus the price (the "
    "measured token cost at price_per_m_tokens), minus incident_cost x the measured attack success rate.",
    "Perceived alignment = p x measured robustness + (1 - p) x direct-request refusal rate, minus over-refusal "
    "on benign twins: with probability p an observer's evaluation reveals behaviour under attack (performance "
    "detection); otherwise it sees only how the strategy answers plain requests. Over-refusal is always seen.",
    "Fitness does not depend on market shares, so the strategy with the highest fitness takes the market and "
    "the others decay; the robust strategy survives exactly when its fitness is the highest.",
    "Time is in arbitrary units: fitness differences are divided by their spread so that every run converges "
    "on the same time scale.",
    "Everything a strategy does is summarised by four measured numbers (cost, robustness, direct refusal, "
    "over-refusal); no entry, exit, learning, regulation or price competition is modelled.",
)


@dataclass(frozen=True)
class MarketParams:
    """The market model's free parameters, all in dollars per 1,000 requests except ``p``."""

    p: float = 0.5
    value_of_alignment: float = 1.0
    incident_cost: float = 1.0
    price_per_m_tokens: float = 0.5


def fitness(table: pd.DataFrame, params: MarketParams) -> np.ndarray:
    """Each strategy's fitness (see :data:`MARKET_ASSUMPTIONS`), in the row order of ``table``."""
    perceived = (params.p * table["robustness"] + (1 - params.p) * table["direct_refusal"]
                 - table["over_refusal"])
    price = table["tokens_per_request"] * params.price_per_m_tokens / 1000.0
    incidents = params.incident_cost * (1 - table["robustness"])
    return (params.value_of_alignment * perceived - price - incidents).to_numpy(dtype=float)


def market_inputs(table: pd.DataFrame) -> pd.DataFrame:
    """The four measured inputs per strategy; over-refusal pools plain and attacked benign twins (n-weighted)."""
    w_plain, w_att = table["n_over_refusal_plain"], table["n_over_refusal_attacked"]
    pooled = (table["over_refusal_plain"] * w_plain + table["over_refusal_attacked"].fillna(0) * w_att) / (w_plain + w_att)
    return pd.DataFrame({"strategy": table["strategy"], "tokens_per_request": table["tokens_per_request"],
                         "robustness": table["robustness"], "direct_refusal": table["direct_refusal"],
                         "over_refusal": pooled}).reset_index(drop=True)


def simulate_market(inputs: pd.DataFrame, params: MarketParams, t_end: float = 20.0,
                    n_points: int = 201) -> pd.DataFrame:
    """Replicator dynamics from equal shares, integrated with scipy's ``solve_ivp``: long table t, strategy, share."""
    from scipy.integrate import solve_ivp

    f = fitness(inputs, params)
    spread = float(f.max() - f.min()) or 1.0
    g = f / spread

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        return x * (g - float(x @ g))

    x0 = np.full(len(f), 1.0 / len(f))
    t = np.linspace(0, t_end, n_points)
    sol = solve_ivp(rhs, (0, t_end), x0, t_eval=t, rtol=1e-8, atol=1e-10)
    shares = np.clip(sol.y, 0, 1)
    shares = shares / shares.sum(axis=0, keepdims=True)
    return pd.DataFrame([{"t": float(tt), "strategy": s, "share": float(shares[i, j]), "p": params.p}
                         for j, tt in enumerate(sol.t) for i, s in enumerate(inputs["strategy"])])


def robust_strategy(inputs: pd.DataFrame) -> str:
    """The most robust strategy (ties: the cheaper one)."""
    ordered = inputs.sort_values(["robustness", "tokens_per_request"], ascending=[False, True])
    return str(ordered.iloc[0]["strategy"])


def threshold_p(inputs: pd.DataFrame, params: MarketParams, robust: str | None = None) -> float:
    """The smallest detection probability p in [0, 1] at which ``robust`` has the highest fitness (so survives);
    NaN when it never does. Exact: each fitness is linear in p."""
    robust = robust or robust_strategy(inputs)
    idx = list(inputs["strategy"]).index(robust)
    f0 = fitness(inputs, MarketParams(0.0, params.value_of_alignment, params.incident_cost, params.price_per_m_tokens))
    f1 = fitness(inputs, MarketParams(1.0, params.value_of_alignment, params.incident_cost, params.price_per_m_tokens))
    lo, hi = 0.0, 1.0
    for j in range(len(f0)):
        if j == idx:
            continue
        a = f0[idx] - f0[j]           # margin at p = 0
        b = (f1[idx] - f1[j]) - a     # slope in p
        if abs(b) < 1e-15:
            if a < -1e-12:
                return float("nan")
            continue
        root = -a / b
        if b > 0:
            lo = max(lo, root)
        else:
            hi = min(hi, root)
    return float(lo) if lo <= hi + 1e-12 else float("nan")


def sensitivity(inputs: pd.DataFrame, prices: Sequence[float], incident_costs: Sequence[float],
                value_of_alignment: float = 1.0) -> pd.DataFrame:
    """Threshold p over a grid of prices per million tokens and incident costs."""
    return pd.DataFrame([{"price_per_m_tokens": pr, "incident_cost": ic, "value_of_alignment": value_of_alignment,
                          "threshold_p": threshold_p(inputs, MarketParams(0.5, value_of_alignment, ic, pr))}
                         for pr in prices for ic in incident_costs])


def final_shares(inputs: pd.DataFrame, params: MarketParams, ps: Sequence[float], robust: str,
                 t_end: float = 20.0) -> pd.DataFrame:
    """The robust strategy's share at ``t_end`` for each p, with the exact threshold p* repeated on every row."""
    p_star = threshold_p(inputs, params, robust)
    rows = []
    for p in ps:
        sim = simulate_market(inputs, MarketParams(p, params.value_of_alignment, params.incident_cost,
                                                   params.price_per_m_tokens), t_end=t_end, n_points=2)
        last = sim[(sim["t"] == sim["t"].max()) & (sim["strategy"] == robust)]["share"].iloc[0]
        rows.append({"p": float(p), "robust_strategy": robust, "final_share": float(last), "threshold_p": p_star})
    return pd.DataFrame(rows)


__all__ = [
    "MARKET_ASSUMPTIONS", "MarketParams", "final_shares", "fitness", "market_inputs", "robust_strategy",
    "sensitivity", "simulate_market", "threshold_p",
]
