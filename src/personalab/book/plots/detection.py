"""The detection notebook's two figures: the AUC of each style-detection test, and attack success by system.

Drawing lives here, apart from :mod:`personalab.experiments.detection`, so the analysis never imports matplotlib.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from personalab.book.figures import rate_bars


def auc_plot(aucs: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """AUC of each detection test with its bootstrap interval; 0.5 is chance."""
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, (_, r) in enumerate(aucs.iterrows()):
        ax.errorbar(r["auc"], i, xerr=[[r["auc"] - r["lo"]], [r["hi"] - r["auc"]]], fmt="o", ms=8, capsize=4)
    ax.axvline(0.5, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(aucs)), aucs["test"])
    ax.invert_yaxis()
    ax.set_xlim(0.3, 1.02)
    ax.set_xlabel("cross-validated AUC (0.5 = chance), 95% bootstrap CI over requests")
    if title:
        ax.set_title(title)
    return fig


def robustness_plot(table: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Attack success (1 - refusal) per condition, one bar per system, Wilson 95% intervals."""
    t = table.assign(rate=table["success"], lo=table["success_lo"], hi=table["success_hi"],
                     k=table["n"] - table["k"], condition=table["condition"].str.replace("/", "\n", regex=False)
                     .str.replace("_", " ", regex=False))
    fig = rate_bars(t, x="condition", hue="system", ylabel="attack success (not refused)", title=title)
    fig.set_size_inches(10, 4.2)
    fig.axes[0].tick_params(axis="x", labelsize=9)
    fig.axes[0].legend(title="system", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


__all__ = ["auc_plot", "robustness_plot"]
