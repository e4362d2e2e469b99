"""The judge-validation figures of the methods appendix: kappa by attack family, and confusion heat maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from personalab.judges import LABELS
from personalab.judges.validate import FAMILIES, KAPPA_TARGET
from personalab.stats import confusion_matrix

__all__ = ["confusion_figure", "kappa_figure"]


def kappa_figure(agreement: pd.DataFrame, split: str = "heldout") -> plt.Figure:
    """Refusal-vs-not kappa by attack family for each judge, with bootstrap intervals and the 0.8 target."""
    sub = agreement[agreement["split"] == split]
    families = [f for f in ("all", *FAMILIES) if f in set(sub["family"])]
    judges = list(dict.fromkeys(sub["judge"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    colours = sns.color_palette(n_colors=len(judges))
    width = 0.7 / max(len(judges), 1)
    for j, (judge, colour) in enumerate(zip(judges, colours)):
        rows = sub[sub["judge"] == judge].set_index("family").reindex(families)
        x = np.arange(len(families)) - 0.35 + width * (j + 0.5)
        y = rows["kappa"].to_numpy(dtype=float)
        lo = np.where(np.isnan(rows["kappa_lo"]), y, rows["kappa_lo"])
        hi = np.where(np.isnan(rows["kappa_hi"]), y, rows["kappa_hi"])
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", capsize=3, color=colour, label=judge)
    ax.axhline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"target {KAPPA_TARGET}", (len(families) - 0.5, KAPPA_TARGET), ha="right", va="bottom",
                fontsize=8, color="grey")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(range(len(families)), [f.replace("_", " ") for f in families], rotation=30, ha="right")
    ax.set_ylabel("Cohen's kappa, refusal vs not")
    lowest = float(np.nanmin(sub["kappa_lo"].to_numpy(dtype=float), initial=0.0))
    ax.set_ylim(min(-0.1, lowest - 0.05), 1.05)
    ax.set_title(f"Judge agreement with hand labels: {split.replace('heldout', 'held-out')} replies, "
                 "95% bootstrap CI over requests", fontsize=11)
    ax.legend(frameon=False, loc="lower left")
    return fig


def confusion_figure(scored: pd.DataFrame, judge: str, split: str = "heldout") -> plt.Figure:
    """Heat map of the hand label (rows) against one judge's label (columns) on ``split``."""
    sub = scored[(scored["judge"] == judge) & ((scored["split"] == split) | (split == "all"))]
    cm = confusion_matrix(sub["label"], sub["pred"], list(LABELS))
    fig, ax = plt.subplots(figsize=(4.5, 3.8))
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel(f"{judge} judge")
    ax.set_ylabel("hand label")
    ax.set_title(f"{judge}: {split.replace('heldout', 'held-out')} replies (n = {len(sub)})")
    return fig
