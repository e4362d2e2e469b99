"""The judge-validation figures of the methods appendix: kappa by attack family and by held-out group, each judge's
worst held-out family and model, the truncation study, and confusion heat maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from personalab.judges import LABELS
from personalab.judges.validate import FAMILIES, KAPPA_TARGET, MIN_GROUP_N, MIN_GROUP_REFUSALS
from personalab.stats import confusion_matrix

__all__ = ["confusion_figure", "kappa_figure", "ood_figure", "truncation_figure", "worst_figure"]


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


def ood_figure(ood: pd.DataFrame, min_n: int = MIN_GROUP_N, min_refusals: int = MIN_GROUP_REFUSALS) -> plt.Figure:
    """Refusal-vs-not kappa on each held-out group (families, models, languages), one colour per judge; groups
    that do not count for the worst-group figure (fewer than ``min_n`` replies or ``min_refusals`` hand-labelled
    refusals) are drawn hollow."""
    groupings = list(dict.fromkeys(ood["grouping"]))
    judges = list(dict.fromkeys(ood["judge"]))
    sizes = [ood[ood["grouping"] == g]["group"].nunique() for g in groupings]
    fig, axes = plt.subplots(1, len(groupings), figsize=(12, 4.5), sharey=True,
                             gridspec_kw={"width_ratios": sizes}, squeeze=False)
    colours = dict(zip(judges, sns.color_palette(n_colors=len(judges))))
    width = 0.8 / max(len(judges), 1)
    lowest = float(np.nanmin(ood["kappa_lo"].to_numpy(dtype=float), initial=0.0))
    for ax, grouping in zip(axes[0], groupings):
        sub = ood[ood["grouping"] == grouping]
        groups = sorted(set(sub["group"]))
        for j, judge in enumerate(judges):
            rows = sub[sub["judge"] == judge].set_index("group").reindex(groups)
            x = np.arange(len(groups)) - 0.4 + width * (j + 0.5)
            y = rows["kappa"].to_numpy(dtype=float)
            lo = np.where(np.isnan(rows["kappa_lo"]), y, rows["kappa_lo"])
            hi = np.where(np.isnan(rows["kappa_hi"]), y, rows["kappa_hi"])
            n = rows["n"].to_numpy(dtype=float)
            small = (n < min_n) | (np.round(rows["hand_refusal_rate"].to_numpy(dtype=float) * n) < min_refusals)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor=colours[judge], capsize=2, linewidth=1)
            ax.scatter(x[~small], y[~small], color=colours[judge], s=18, zorder=3,
                       label=judge if grouping == groupings[0] else None)
            ax.scatter(x[small], y[small], facecolors="white", edgecolors=colours[judge], s=18, zorder=3)
        ax.axhline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xticks(range(len(groups)), [g.replace("_", " ").replace("-instruct", "") for g in groups],
                      rotation=40, ha="right", fontsize=8)
        ax.set_title(f"held-out {grouping}", fontsize=10)
        ax.set_ylim(min(-0.1, lowest - 0.05), 1.05)
    axes[0][0].set_ylabel("Cohen's kappa, refusal vs not")
    fig.legend(frameon=False, loc="lower center", ncol=min(len(judges), 7), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Judges on replies from conditions they were not trained on (leave one group out; 95% CI over "
                 f"requests; hollow: n < {min_n} or < {min_refusals} refusals)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig


def truncation_figure(truncation: pd.DataFrame) -> plt.Figure:
    """Each judge's refusal-vs-not kappa against the hand label of the whole reply, when it sees only the first
    k tokens, with bootstrap intervals."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    order = [c for c in ("24", "32", "48", "64", "full") if c in set(truncation["cut_tokens"])]
    for judge, colour in zip(dict.fromkeys(truncation["judge"]), sns.color_palette()):
        rows = truncation[truncation["judge"] == judge].set_index("cut_tokens").reindex(order)
        x = np.arange(len(order))
        y = rows["kappa"].to_numpy(dtype=float)
        ax.errorbar(x, y, yerr=[y - rows["kappa_lo"].to_numpy(float), rows["kappa_hi"].to_numpy(float) - y],
                    marker="o", capsize=3, color=colour, label=judge)
    ax.axhline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(order)), [f"{c} tokens" if c != "full" else "whole reply" for c in order])
    ax.set_ylabel("kappa vs hand label of whole reply")
    ax.set_title("Does the judge need the whole reply?", fontsize=11)
    ax.legend(frameon=False, fontsize=8)
    return fig


def worst_figure(worst: pd.DataFrame, groupings: tuple[str, ...] = ("family", "model")) -> plt.Figure:
    """Each judge's worst held-out family and worst held-out model (refusal-vs-not kappa with its 95% interval over
    requests), against the 0.8 target: the figure the judge is chosen by."""
    judges = list(dict.fromkeys(worst["judge"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(judges) + 1.6))
    colours = dict(zip(groupings, sns.color_palette(n_colors=len(groupings))))
    for g, grouping in enumerate(groupings):
        rows = worst[worst["grouping"] == grouping].set_index("judge").reindex(judges)
        y = np.arange(len(judges)) + (g - (len(groupings) - 1) / 2) * 0.25
        x = rows["kappa"].to_numpy(dtype=float)
        ax.errorbar(x, y, xerr=[x - rows["kappa_lo"].to_numpy(float), rows["kappa_hi"].to_numpy(float) - x], fmt="o",
                    capsize=2, color=colours[grouping], label=f"worst held-out {grouping}")
        for xi, yi, group in zip(x, y, rows["worst_group"]):
            ax.annotate(str(group).replace("-instruct", ""), (1.02, yi), xycoords=("axes fraction", "data"),
                        fontsize=7, va="center", color=colours[grouping])
    ax.axvline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_yticks(range(len(judges)), judges)
    ax.invert_yaxis()
    ax.set_xlim(min(-0.1, float(np.nanmin(worst["kappa_lo"].to_numpy(float), initial=0.0)) - 0.05), 1.05)
    ax.set_xlabel("Cohen's kappa, refusal vs not, on the held-out group")
    ax.set_title(f"Worst held-out group per judge (n >= {MIN_GROUP_N}, >= {MIN_GROUP_REFUSALS} refusals; "
                 "95% CI over requests)", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(groupings))
    fig.tight_layout()
    return fig


def labeller_figure(table: pd.DataFrame) -> plt.Figure:
    """Refusal-vs-not kappa of the two labellers with each other and of the judge with each, per scope of
    :func:`personalab.judges.validate.labeller_table` (95% intervals over requests), against the 0.8 target."""
    comparisons = [c for c in ("first vs second labeller", "judge vs first labeller", "judge vs second labeller")
                   if c in set(table["comparison"])]
    scopes = list(dict.fromkeys(zip(table["scope"], table["group"])))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(scopes) + 1.6))
    for c, (comparison, colour) in enumerate(zip(comparisons, sns.color_palette(n_colors=len(comparisons)))):
        rows = table[table["comparison"] == comparison].set_index(["scope", "group"]).reindex(scopes)
        y = np.arange(len(scopes)) + (c - (len(comparisons) - 1) / 2) * 0.22
        x = rows["kappa"].to_numpy(dtype=float)
        ax.errorbar(x, y, xerr=[x - rows["kappa_lo"].to_numpy(float), rows["kappa_hi"].to_numpy(float) - x], fmt="o",
                    capsize=2, color=colour, label=comparison)
    n = table[table["comparison"] == comparisons[0]].set_index(["scope", "group"]).reindex(scopes)["n"]
    ax.set_yticks(range(len(scopes)), [f"{g.replace('-instruct', '')} (n = {int(k)})" for (_, g), k in zip(scopes, n)])
    ax.invert_yaxis()
    ax.axvline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlim(min(-0.1, float(np.nanmin(table["kappa_lo"].to_numpy(float), initial=0.0)) - 0.05), 1.05)
    ax.set_xlabel("Cohen's kappa, refusal vs not (95% CI over requests)")
    ax.set_title("Two labellers, and the judge against each", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(comparisons))
    fig.tight_layout()
    return fig
