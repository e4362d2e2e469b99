"""The masks notebook's figures: refusal by family per model, the depth curve per model, the cost of training."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

VARIANT_TITLES: dict[str, str] = {"target": "target requests", "benign": "benign twins"}


def family_by_model(table: pd.DataFrame, labels: Mapping[str, str], families: list[str], title: str) -> plt.Figure:
    """Refusal rate (Wilson bars) per family, one bar per model; targets left, their benign twins right."""
    models = list(labels)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    palette = sns.color_palette(n_colors=len(models))
    width = 0.8 / len(models)
    for ax, variant in zip(axes, VARIANT_TITLES):
        part = table[table["variant"] == variant]
        for mi, model in enumerate(models):
            sub = part[part["model"] == model].set_index("family").reindex(families)
            pos = np.arange(len(families)) - 0.4 + width * (mi + 0.5)
            err = [(sub["rate"] - sub["lo"]).to_numpy(), (sub["hi"] - sub["rate"]).to_numpy()]
            ax.bar(pos, sub["rate"], width=width * 0.95, yerr=err, capsize=2, color=palette[mi], label=labels[model])
        ax.set_xticks(range(len(families)), [f.replace("_", "\n") for f in families], fontsize=9)
        ax.set_title(VARIANT_TITLES[variant])
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].set_ylabel("refusal rate (95% Wilson)")
    axes[1].legend(frameon=False, fontsize=8, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def depth_by_model(sweeps: Mapping[str, pd.DataFrame], labels: Mapping[str, str], title: str) -> plt.Figure:
    """Compliance of targets after k prefilled tokens of a compliant opening, one line per model (Wilson bars)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (model, rates) in enumerate(sweeps.items()):
        x = rates["depth"].to_numpy(dtype=float)
        jitter = (i - (len(sweeps) - 1) / 2) * 0.03
        ax.errorbar(x * (1 + jitter) + jitter, rates["rate"], yerr=[rates["rate"] - rates["lo"],
                    rates["hi"] - rates["rate"]], fmt="o-", capsize=3, label=labels[model])
    ks = sorted({int(k) for rates in sweeps.values() for k in rates["depth"]})
    ax.set_xscale("function", functions=(np.log1p, np.expm1))
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("prefilled tokens k of the target's compliant opening")
    ax.set_ylabel("compliance (95% Wilson)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return fig


def training_cost(table: pd.DataFrame, labels: Mapping[str, str], title: str) -> plt.Figure:
    """Training tokens and CPU-seconds per mask, as measured by the training run (two panels)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    names = [labels.get(m, m) for m in table["model"]]
    palette = sns.color_palette(n_colors=len(names))
    for ax, column, ylabel in zip(axes, ("training_tokens", "cpu_seconds"), ("training tokens", "CPU-seconds")):
        ax.bar(range(len(names)), table[column], color=palette)
        ax.set_xticks(range(len(names)), names, fontsize=9)
        ax.set_ylabel(ylabel)
        for x, v in enumerate(table[column]):
            ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
