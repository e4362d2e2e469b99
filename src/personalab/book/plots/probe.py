"""The probe notebook's figure: how well each score predicts a refusal under attack, per model."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

#: How the scores are named on the figure.
SCORE_NAMES = {"activations": "probe on activations", "words": "classifier on the words",
               "direction": "refusal direction (no attack seen)"}


def score_auc(aucs: pd.DataFrame, labels: Mapping[str, str]) -> plt.Figure:
    """Out-of-distribution AUC of each score, models side by side, with 95% bootstrap intervals over requests."""
    models, scores = list(labels), list(SCORE_NAMES)
    fig, ax = plt.subplots(figsize=(1.9 * len(models) + 1.5, 3.4))
    palette = dict(zip(scores, sns.color_palette(n_colors=len(scores))))
    width = 0.8 / len(scores)
    for j, score in enumerate(scores):
        part = aucs[aucs["score"] == score].set_index("model").reindex(models)
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(models))]
        ax.errorbar(xs, part["auc"], yerr=[part["auc"] - part["lo"], part["hi"] - part["auc"]], fmt="o",
                    color=palette[score], label=SCORE_NAMES[score], capsize=3)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(models)), [labels[m] for m in models])
    ax.set_ylim(0.2, 1.02)
    ax.set_ylabel("AUC for 'refused under attack'\n(unseen family and request)")
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
