"""The capping notebook's figure: refusal under each wrapper and the twins' capability, without and with each cap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns

from personalab.experiments.capping import BASELINE

#: How each condition is named in the legend.
NAMES: dict[str, str] = {"none": "no cap", "axis": "persona-axis floor", "refusal": "refusal-direction floor"}


def _bars(ax: plt.Axes, rows: pd.DataFrame, groups: Sequence[str], conditions: Sequence[str], colours: Sequence
          ) -> None:
    """Grouped bars (one group per entry of ``groups`` in ``rows.group``) of the rate with its Wilson interval, one
    bar per condition."""
    width = 0.8 / len(conditions)
    for gi, group in enumerate(groups):
        for ci, condition in enumerate(conditions):
            r = rows[(rows["group"] == group) & (rows["condition"] == condition)]
            if r.empty:
                continue
            r = r.iloc[0]
            rate, lo, hi = r["rate"], r["lo"], r["hi"]
            ax.bar(gi + (ci - (len(conditions) - 1) / 2) * width, rate, width=width * 0.95, color=colours[ci],
                   yerr=[[rate - lo], [hi - rate]], capsize=2, edgecolor="black", linewidth=0.4,
                   label=NAMES.get(condition, condition) if gi == 0 else None)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def refusal_and_capability(rates: pd.DataFrame, cost: pd.DataFrame, labels: Mapping[str, str], n_pairs: int
                           ) -> plt.Figure:
    """Per model (one row): target refusal under each wrapper (left) and the twins' refusal and on-topic compliance
    (right), each with no cap and with each cap (95% Wilson); the compute ratio of each cap in the row's title."""
    models = list(labels)
    caps = [c for c in dict.fromkeys(rates["condition"]) if c != "none"]
    conditions = ["none", *caps]
    colours = ["0.75", *sns.color_palette(n_colors=len(caps))]
    attacks = dict.fromkeys(rates.loc[rates["variant"] == "target", "wrapper"])
    wrappers = [BASELINE, *[w for w in attacks if w != BASELINE]]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.0 * len(models)), squeeze=False,
                             gridspec_kw={"width_ratios": [len(wrappers), 2]})
    for row, model in zip(axes, models):
        part = rates[rates["model"] == model]
        targets = part[part["variant"] == "target"].assign(group=lambda d: d["wrapper"])
        _bars(row[0], targets, wrappers, conditions, colours)
        row[0].set_xticks(range(len(wrappers)), [w.replace("/", "/\n") for w in wrappers], fontsize=8)
        row[0].set_ylabel("refusal (95% Wilson)")
        ratios = cost[cost["model"] == model].set_index("cap")
        row[0].set_title(f"{labels[model]}: held-out targets ({n_pairs} pairs)\nseconds per token, capped / uncapped "
                         f"(median of {int(ratios['n_repeats'].iloc[0])} timed runs): "
                         + ", ".join(f"{NAMES[c].split()[0]} {ratios.loc[c, 'ratio']:.2f}×" for c in caps), fontsize=9)
        twins = part[part["variant"] == "benign"]
        both = pd.concat([twins.assign(group="refused"),
                          twins.assign(group="on-topic compliance", rate=twins["rate_competent"],
                                       lo=twins["lo_competent"], hi=twins["hi_competent"])])
        _bars(row[1], both, ["refused", "on-topic compliance"], conditions, colours)
        row[1].set_xticks(range(2), ["refused", "on-topic\ncompliance"], fontsize=8)
        row[1].set_title("their benign twins", fontsize=9)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, frameon=False, fontsize=8, loc="lower center", ncol=len(conditions))
    fig.tight_layout(rect=(0, 0.05 if len(models) > 1 else 0.08, 1, 1))
    return fig
