"""The persona-axis notebook's figure: each wrapper's shift along the axis against its slippage, one panel per model."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns


def shift_vs_slippage(shifts: pd.DataFrame, summary: pd.DataFrame, labels: Mapping[str, str]) -> plt.Figure:
    """Scatter of slippage against the shift of mean projection on the persona axis, wrappers coloured by family."""
    models = list(labels)
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.6), sharey=True, squeeze=False)
    families = sorted(set(shifts["family"]))
    palette = dict(zip(families, sns.color_palette(n_colors=len(families))))
    for ax, model in zip(axes[0], models):
        part = shifts[shifts["model"] == model]
        for family, group in part.groupby("family"):
            ax.scatter(group["shift"], group["slippage"], color=palette[family], label=family.replace("_", " "), s=22)
        r = summary.set_index("model").loc[model]
        ax.set_title(f"{labels[model]}\nrho {r['rho']:+.2f} ({r['lo']:+.2f} to {r['hi']:+.2f}), layer {int(r['layer'])}",
                     fontsize=9)
        ax.axhline(0, color="grey", linewidth=0.7)
        ax.axvline(0, color="grey", linewidth=0.7)
        ax.set_xlabel("shift along the axis\n(wrapper minus plain request)", fontsize=9)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0][0].set_ylabel("slippage (direct refusal\nminus refusal under the wrapper)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, frameon=False, fontsize=8, loc="lower center", ncol=len(families))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
