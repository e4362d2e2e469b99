"""The erosion notebook's two figures: many-shot attack success on log-log axes, and survival by turn or try.

Drawing lives here, apart from :mod:`personalab.experiments.erosion`, so the analysis never imports matplotlib.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def many_shot_figure(rates: pd.DataFrame, fit: dict[str, Any], title: str) -> plt.Figure:
    """Attack success against shots on log-log axes (n = 0 drawn apart at the left), with the fitted law."""
    fig, ax = plt.subplots()
    pos = rates[rates["shots"] >= 1]
    err = [pos["success"] - pos["success_lo"], pos["success_hi"] - pos["success"]]
    ax.errorbar(pos["shots"], pos["success"], yerr=err, fmt="o", capsize=4, label="attack success (Wilson 95%)")
    zero = rates[rates["shots"] == 0]
    if len(zero):
        ax.axhline(float(zero["success"].iloc[0]), color="grey", ls=":", label="no shots (n = 0)")
    if math.isfinite(fit["alpha"]):
        xs = np.geomspace(pos["shots"].min(), pos["shots"].max(), 50)
        ax.plot(xs, fit["c"] * xs ** fit["alpha"], "-",
                label=f"fit: {fit['c']:.2f}·n^{fit['alpha']:.2f} "
                      f"(α 95% CI {fit['alpha_lo']:.2f} to {fit['alpha_hi']:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(pos["shots"], [str(int(v)) for v in pos["shots"]])
    ax.minorticks_off()
    ticks = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ax.set_yticks(ticks, [f"{t:.0%}" for t in ticks])
    ax.set_ylim(max(0.04, float(rates["success_lo"].min()) * 0.9), 1.05)
    ax.set_xlabel("faux compliant exchanges in context (n)")
    ax.set_ylabel("attack success (1 − refusal rate)")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(title)
    return fig


def survival_figure(curves: dict[str, pd.DataFrame], title: str, xlabel: str) -> plt.Figure:
    """Share not yet complied by turn/try for each arm: KM steps with their band (Wilson where KM is degenerate)."""
    fig, ax = plt.subplots()
    for name, curve in curves.items():
        start = {"turn": 0, "survival": 1.0, "km_lo": 1.0, "km_hi": 1.0, "lo": 1.0, "hi": 1.0, "n": curve["n"].iloc[0]}
        curve = pd.concat([pd.DataFrame([start]), curve], ignore_index=True)
        lo = curve["km_lo"].where(curve["km_hi"] - curve["km_lo"] > 0, curve["lo"])
        hi = curve["km_hi"].where(curve["km_hi"] - curve["km_lo"] > 0, curve["hi"])
        line = ax.step(curve["turn"], curve["survival"], where="post", label=f"{name} (n = {curve['n'].iloc[0]})")
        ax.fill_between(curve["turn"], lo.fillna(curve["lo"]), hi.fillna(curve["hi"]), step="post", alpha=0.2,
                        color=line[0].get_color())
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xticks(sorted(set().union(*[set(c["turn"]) for c in curves.values()])))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share not yet complied")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title)
    return fig
