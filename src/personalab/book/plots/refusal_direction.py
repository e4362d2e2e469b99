"""The refusal-direction notebook's figures: separation by layer, refusal under ablation and addition, cosines."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns


def _wrapped(label: str, width: int = 14) -> str:
    """A long tick label broken at its last hyphen, so neighbouring labels do not overlap."""
    if len(label) <= width or "-" not in label:
        return label
    head, _, tail = label.rpartition("-")
    return f"{head}-\n{tail}"


def separation(table: pd.DataFrame, labels: Mapping[str, str], title: str) -> plt.Figure:
    """Held-out AUC (solid) and cross-fitted dev AUC (dashed) of each layer's direction, the chosen layer marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    palette = sns.color_palette(n_colors=len(labels))
    for colour, (model, label) in zip(palette, labels.items()):
        part = table[table["model"] == model]
        ax.plot(part["layer"], part["heldout_auc"], color=colour, label=f"{label} (held-out)")
        ax.plot(part["layer"], part["dev_cross_fitted_auc"], color=colour, linestyle="--", linewidth=0.9)
        chosen = part[part["chosen"]]
        ax.scatter(chosen["layer"], chosen["heldout_auc"], color=colour, s=40, zorder=3, edgecolor="black")
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("layer (output of decoder block)")
    ax.set_ylabel("AUC, targets vs twins\n(solid: held-out; dashed: dev, cross-fitted)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def interventions(table: pd.DataFrame, labels: Mapping[str, str], title: str) -> plt.Figure:
    """Refusal (Wilson bars) per model: targets with nothing done vs ablated; twins with nothing done vs added."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    panels = [("target", ("none", "ablate"), "held-out targets"), ("benign", ("none", "add"), "their benign twins")]
    shades = {"none": 0.45, "ablate": 1.0, "add": 1.0}
    names = {"none": "nothing done", "ablate": "direction ablated", "add": "direction added"}
    palette = sns.color_palette(n_colors=len(labels))
    for ax, (variant, conditions, heading) in zip(axes, panels):
        for mi, model in enumerate(labels):
            for ci, condition in enumerate(conditions):
                row = table[(table["model"] == model) & (table["variant"] == variant)
                            & (table["condition"] == condition)]
                if row.empty:
                    continue
                r = row.iloc[0]
                x = mi + (ci - 0.5) * 0.38
                ax.bar(x, r["rate"], width=0.36, color=palette[mi], alpha=shades[condition],
                       yerr=[[r["rate"] - r["lo"]], [r["hi"] - r["rate"]]], capsize=3,
                       hatch="//" if condition != "none" else None, edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(labels)), [_wrapped(v) for v in labels.values()], fontsize=9)
        ax.set_title(f"{heading}: {names[conditions[0]]} (light) vs {names[conditions[1]]} (hatched)", fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].set_ylabel("refusal rate (95% Wilson)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cosines(matrix: pd.DataFrame, labels: Mapping[str, str], title: str) -> plt.Figure:
    """Heatmap of cosine similarity between models' refusal directions."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    names = [labels.get(m, m) for m in matrix.index]
    sns.heatmap(pd.DataFrame(np.asarray(matrix, dtype=float), index=names, columns=names), annot=True, fmt=".2f",
                vmin=-1, vmax=1, cmap="vlag", square=True, cbar_kws={"label": "cosine"}, ax=ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
