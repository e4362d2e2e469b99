"""The persona_selection notebook's three figures: refusal by persona, chat vs completion, variance shares.

Drawing lives here, apart from :mod:`personalab.experiments.personas`, so the analysis never imports matplotlib.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from personalab.book.figures import rate_bars
from personalab.experiments.personas import COMPONENTS


def persona_rate_plot(rates: pd.DataFrame, mode: str = "chat", title: str | None = None) -> plt.Figure:
    """Refusal by persona in one mode: targets and benign twins side by side, Wilson 95% intervals."""
    sub = rates[rates["mode"] == mode].assign(
        variant=lambda d: d["variant"].map({"target": "target", "benign": "benign twin"}))
    fig = rate_bars(sub, x="persona", hue="variant", title=title)
    fig.set_size_inches(8, 4)
    fig.axes[0].tick_params(axis="x", labelrotation=20)
    return fig


def mode_plot(rates: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Refusal of target requests by persona, chat mode beside completion mode (Wilson 95% intervals)."""
    sub = rates[rates["variant"] == "target"]
    fig = rate_bars(sub, x="persona", hue="mode", title=title)
    fig.set_size_inches(8, 4)
    fig.axes[0].tick_params(axis="x", labelrotation=20)
    return fig


def variance_plot(shares: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Share of refusal variance per component (persona, request, interaction), per mode and item set."""
    fig, ax = plt.subplots(figsize=(8, 4))
    shares = shares[shares["component"].isin(COMPONENTS)]
    groups = list(dict.fromkeys(zip(shares["mode"], shares["items"])))
    width = 0.8 / len(COMPONENTS)
    palette = plt.get_cmap("tab10")
    for ci, comp in enumerate(COMPONENTS):
        sub = shares[shares["component"] == comp].set_index(["mode", "items"]).reindex(groups)
        pos = [i - 0.4 + width * (ci + 0.5) for i in range(len(groups))]
        val = sub["share"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([val - sub["lo"].to_numpy(float), sub["hi"].to_numpy(float) - val]))
        ax.bar(pos, np.nan_to_num(val), width=width * 0.95, yerr=np.clip(err, 0, None), capsize=3,
               color=palette(ci), label=comp)
    ax.set_xticks(range(len(groups)), [f"{m}\n{i}" for m, i in groups])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylabel("share of variance in refusal")
    ax.legend(frameon=False, title="explained by")
    if title:
        ax.set_title(title)
    return fig


__all__ = ["mode_plot", "persona_rate_plot", "variance_plot"]
