"""Figures of the wisdom handicap notebook: cost against robustness, the handicap curve and the market model.

Each takes the tables of :mod:`personalab.experiments.handicap` and returns a matplotlib figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd


def cost_robustness_plot(table: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Robustness (Wilson 95%) against tokens per request on a log axis, with the Pareto frontier."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    palette = plt.get_cmap("tab10")
    for i, r in table.reset_index(drop=True).iterrows():
        ax.errorbar(r["tokens_per_request"], r["robustness"], yerr=[[r["robustness"] - r["robustness_lo"]],
                    [r["robustness_hi"] - r["robustness"]]], fmt="o", ms=8, capsize=4, color=palette(i),
                    label=f"{r['strategy']} ({r['token_multiplier']:.1f}× tokens)")
        ax.annotate(r["strategy"], (r["tokens_per_request"], r["robustness"]), textcoords="offset points",
                    xytext=(6, 6), fontsize=9)
    front = table[table["pareto"]].sort_values("tokens_per_request")
    ax.step(front["tokens_per_request"], front["robustness"], where="post", color="grey", ls="--", lw=1,
            label="Pareto frontier")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(-0.02, 1.05)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("tokens per request, all calls (log scale)")
    ax.set_ylabel("robustness: 1 − attack success")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def handicap_plot(table: pd.DataFrame, curve: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Left: direct refusal vs robustness (does direct behaviour reveal robustness?). Right: cost multiplier
    needed to reach each robustness level, relative to the cheapest direct-request look-alike."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"wspace": 0.35})
    palette = plt.get_cmap("tab10")
    for i, r in table.reset_index(drop=True).iterrows():
        ax1.errorbar(r["direct_refusal"], r["robustness"],
                     xerr=[[r["direct_refusal"] - r["direct_refusal_lo"]], [r["direct_refusal_hi"] - r["direct_refusal"]]],
                     yerr=[[r["robustness"] - r["robustness_lo"]], [r["robustness_hi"] - r["robustness"]]],
                     fmt="o", ms=7, capsize=3, color=palette(i), label=r["strategy"])
    ax1.plot([0, 1], [0, 1], color="grey", lw=1, ls=":")
    for ax in (ax1,):
        ax.set_xlim(-0.02, 1.05)
        ax.set_ylim(-0.02, 1.05)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax1.set_xlabel("refusal of plain target requests (what a casual observer sees)")
    ax1.set_ylabel("robustness under attack")
    ax1.legend(frameon=False, fontsize=8)
    ax1.set_title("does direct behaviour reveal robustness?")
    c = curve.dropna(subset=["multiplier"])
    ax2.step(c["robustness"], c["multiplier"], where="pre", color="black")
    for s, block in c.groupby("strategy", sort=False):
        ax2.annotate(s, (block["robustness"].iloc[-1], block["multiplier"].iloc[-1]), textcoords="offset points",
                     xytext=(-10, 5), fontsize=8, ha="right")
    ax2.axhline(1, color="grey", lw=1, ls=":")
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax2.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("robustness level to reach")
    ax2.set_ylabel(f"token cost × that of '{curve['reference'].iloc[0]}'")
    ax2.set_title("the handicap: cost multiplier to reach a robustness level")
    if title:
        fig.suptitle(title, y=1.03)
    return fig


def market_plot(runs: pd.DataFrame, thresholds: pd.DataFrame, robust: str, title: str | None = None) -> plt.Figure:
    """Market share over time for a few p (one panel each) and the robust strategy's final share against p."""
    ps = list(dict.fromkeys(runs["p"]))
    fig, axes = plt.subplots(1, len(ps) + 1, figsize=(3.2 * (len(ps) + 1), 3.6))
    names = list(dict.fromkeys(runs["strategy"]))
    palette = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(names)}
    for ax, p in zip(axes, ps):
        for s in names:
            d = runs[(runs["p"] == p) & (runs["strategy"] == s)]
            ax.plot(d["t"], d["share"], color=palette[s], lw=2.5 if s == robust else 1.2, label=s)
        ax.set_title(f"p = {p:g}")
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (arbitrary units)")
    axes[0].set_ylabel("market share")
    axes[0].legend(frameon=False, fontsize=7)
    ax = axes[-1]
    ax.plot(thresholds["p"], thresholds["final_share"], color=palette[robust], lw=2)
    p_star = thresholds["threshold_p"].iloc[0]
    if np.isfinite(p_star):
        ax.axvline(p_star, color="grey", ls="--", lw=1)
        ax.annotate(f"p* = {p_star:.2f}", (p_star, 0.5), textcoords="offset points", xytext=(4, 0), fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("detection probability p")
    ax.set_title(f"final share of '{robust}'")
    if title:
        fig.suptitle(title, y=1.06)
    return fig


def sensitivity_plot(grid: pd.DataFrame, robust: str, title: str | None = None) -> plt.Figure:
    """Heatmap of the threshold p over price per million tokens (log) and incident cost; hatched = never."""
    piv = grid.pivot(index="incident_cost", columns="price_per_m_tokens", values="threshold_p")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs, ys = piv.columns.to_numpy(float), piv.index.to_numpy(float)
    mesh = ax.pcolormesh(xs, ys, np.ma.masked_invalid(piv.to_numpy(float)), vmin=0, vmax=1, cmap="viridis",
                         shading="nearest")
    never = np.isnan(piv.to_numpy(float))
    if never.any():
        yy, xx = np.where(never)
        ax.scatter(xs[xx], ys[yy], marker="x", color="grey", s=12, label=f"'{robust}' never wins")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_xscale("log")
    ax.set_xlabel("price, dollars per million tokens (log scale)")
    ax.set_ylabel("incident cost, $ per 1,000 requests\nper unit attack-success rate")
    fig.colorbar(mesh, ax=ax, label=f"threshold p for '{robust}' to survive")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return fig


__all__ = ["cost_robustness_plot", "handicap_plot", "market_plot", "sensitivity_plot"]
