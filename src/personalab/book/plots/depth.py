"""The depth notebook's figures: the prefill sweeps with their fit, the first-token picture, its calibration.

Drawing lives here, apart from :mod:`personalab.experiments.depth`, so the analysis never imports matplotlib.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from personalab.experiments.depth import DepthFit

VARIANTS: tuple[str, ...] = ("target", "benign")
"""Order (and so colour) of request variants in the first-token figure."""


def plot_sweep(rates: pd.DataFrame, fit: DepthFit | None, band: pd.DataFrame | None, ylabel: str,
               title: str) -> plt.Figure:
    """Observed rates (Wilson bars) against k on a log(1 + k) axis, with the fitted curve and its bootstrap band."""
    fig, ax = plt.subplots()
    x = rates["depth"].to_numpy(dtype=float)
    ax.errorbar(x, rates["rate"], yerr=[rates["rate"] - rates["lo"], rates["hi"] - rates["rate"]], fmt="o",
                capsize=4, label="observed (95% Wilson)")
    if "other_rate" in rates and rates["other_rate"].gt(0).any():
        some = rates["other_rate"].gt(0).to_numpy()
        ax.plot(x[some], rates["other_rate"].to_numpy()[some], "x", color="grey", label="judge: other")
    if band is not None and fit is not None and fit.identified:
        ax.fill_between(band["depth"], band["lo"], band["hi"], alpha=0.25, label="fit, 95% bootstrap band")
        ax.plot(band["depth"], fit.predict(band["depth"]), "-", label=f"logistic in {'log(1+k)' if fit.scale == 'log1p' else 'k'}")
    ax.axhline(0.5, color="black", lw=0.6, ls=":")
    ax.set_xscale("function", functions=(np.log1p, np.expm1))
    ax.set_xticks(x, [str(int(v)) for v in x])
    ax.set_xlim(-0.2, x.max() * 1.1)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("prefilled tokens k")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="best")
    return fig


def plot_first_token(mass: pd.DataFrame, tokens: pd.DataFrame, label: str, title: str) -> plt.Figure:
    """Left: mean refusal probability per condition (bootstrap bars); right: likeliest first tokens, direct."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    conditions = list(dict.fromkeys(mass["condition"]))
    variants = [v for v in VARIANTS if v in set(mass["variant"])]
    colours = dict(zip(VARIANTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    width = 0.8 / max(len(variants), 1)
    for vi, variant in enumerate(variants):
        sub = mass[mass["variant"] == variant].set_index("condition").reindex(conditions)
        pos = np.arange(len(conditions)) - 0.4 + width * (vi + 0.5)
        left.bar(pos, sub["mean"], width=width * 0.95, yerr=[sub["mean"] - sub["lo"], sub["hi"] - sub["mean"]],
                 capsize=3, label=variant, color=colours[variant])
    left.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right", fontsize=8)
    left.set_ylim(0, min(1.0, max(0.05, float(mass["hi"].max()) * 1.25)))
    left.set_ylabel(label)
    left.legend(frameon=False, fontsize=8)
    left.set_title(title, fontsize=10)
    labels = list(dict.fromkeys(tokens["token"]))
    for vi, variant in enumerate(v for v in VARIANTS if v in set(tokens["variant"])):
        sub = tokens[tokens["variant"] == variant].set_index("token")["mean_prob"].reindex(labels).fillna(0.0)
        pos = np.arange(len(labels)) - 0.4 + 0.4 * (vi + 0.5)
        right.barh(pos, sub, height=0.38, label=variant, color=colours[variant])
    right.set_yticks(range(len(labels)), [repr(t) for t in labels], fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("mean probability, direct requests")
    right.set_title("likeliest first tokens", fontsize=10)
    right.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_calibration(table: pd.DataFrame, title: str) -> plt.Figure:
    """Judged refusal rate of the full reply (Wilson bars) against the mean refusal-opening probability per bin."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.errorbar(table["mean_score"], table["rate"], yerr=[table["rate"] - table["lo"], table["hi"] - table["rate"]],
                fmt="o", capsize=4)
    for _, row in table.iterrows():
        ax.annotate(f"n={row['n']}", (row["mean_score"], row["rate"]), textcoords="offset points", xytext=(6, -10),
                    fontsize=8)
    ax.plot(np.linspace(0, 1, 200), np.linspace(0, 1, 200), color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("P(reply opens with the refusal), quantile-bin mean")
    ax.set_ylabel("judged refusal of the full reply")
    ax.set_title(title, fontsize=10)
    return fig


__all__ = ["VARIANTS", "plot_calibration", "plot_first_token", "plot_sweep"]
