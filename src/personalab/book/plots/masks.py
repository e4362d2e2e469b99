"""The masks notebook's figures: refusal by family per model, harm tracking under attack, the depth curve per model,
the cost of training. A model keeps its colour across figures (its place in ``labels``)."""

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
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, frameon=False, fontsize=9, loc="lower center", ncol=len(models))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def discrimination_by_model(table: pd.DataFrame, labels: Mapping[str, str], title: str) -> plt.Figure:
    """Target minus twin refusal (bootstrap bars) per family group, one bar per model: harm tracking under attack."""
    models = list(labels)
    groups = list(dict.fromkeys(table["group"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    palette = sns.color_palette(n_colors=len(models))
    width = 0.8 / len(models)
    for mi, model in enumerate(models):
        sub = table[table["model"] == model].set_index("group").reindex(groups)
        pos = np.arange(len(groups)) - 0.4 + width * (mi + 0.5)
        err = [(sub["difference"] - sub["lo"]).to_numpy(), (sub["hi"] - sub["difference"]).to_numpy()]
        ax.bar(pos, sub["difference"], width=width * 0.95, yerr=err, capsize=3, color=palette[mi], label=labels[model])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), [g if g == "direct" else f"attacks {g}" for g in groups])
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylabel("target minus twin refusal\n(95% bootstrap over pairs)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
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
    palette = sns.color_palette(n_colors=len(labels))
    colours = [palette[list(labels).index(m)] if m in labels else "grey" for m in table["model"]]
    for ax, column, ylabel in zip(axes, ("training_tokens", "cpu_seconds"), ("training tokens", "CPU-seconds")):
        ax.bar(range(len(names)), table[column], color=colours)
        ax.set_xticks(range(len(names)), names, fontsize=9)
        ax.set_ylabel(ylabel)
        for x, v in enumerate(table[column]):
            ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
