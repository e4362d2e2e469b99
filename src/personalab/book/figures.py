"""The book's figure style and deterministic figure files (SVG for the site, PNG beside it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from personalab.outputs import atomic_write, resolve


def set_style() -> None:
    """One look for every figure; fixed SVG ids so that an unchanged figure is an unchanged file."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"svg.hashsalt": "personalab", "figure.dpi": 100, "savefig.bbox": "tight",
                         "figure.figsize": (7, 4)})


def save_figure(fig: plt.Figure, relative: Path | str, png: bool = True) -> Path:
    """Write ``relative`` (an ``.svg`` path under ``figures/``) and a PNG beside it, each atomically."""
    svg = resolve(Path(relative).with_suffix(".svg"))
    atomic_write(svg, lambda p: fig.savefig(p, format="svg", metadata={"Date": None}))
    if png:
        atomic_write(svg.with_suffix(".png"), lambda p: fig.savefig(p, format="png", dpi=150,
                                                                      metadata={"Software": None}))
    return svg


def rate_bars(table: pd.DataFrame, x: str, hue: str | None = None, ylabel: str = "refusal rate",
              title: str | None = None) -> plt.Figure:
    """Bar chart of rates with their interval as error bars (``rate``, ``lo``, ``hi`` columns, 0–1)."""
    fig, ax = plt.subplots()
    groups = [None] if hue is None else list(dict.fromkeys(table[hue]))
    xs = list(dict.fromkeys(table[x]))
    width = 0.8 / len(groups)
    palette = sns.color_palette(n_colors=len(groups))
    for gi, group in enumerate(groups):
        sub = table if group is None else table[table[hue] == group]
        sub = sub.set_index(x).reindex(xs)
        pos = [i - 0.4 + width * (gi + 0.5) for i in range(len(xs))]
        err = [(sub["rate"] - sub["lo"]).to_numpy(), (sub["hi"] - sub["rate"]).to_numpy()]
        ax.bar(pos, sub["rate"], width=width * 0.95, yerr=err, capsize=4, color=palette[gi],
               label=None if group is None else str(group))
        for px, (_, row) in zip(pos, sub.iterrows()):
            ax.annotate(f"{row['k']:.0f}/{row['n']:.0f}", (px, 0.02), ha="center", fontsize=8, color="white")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    if hue is not None:
        ax.legend(title=hue, frameon=False)
    if title:
        ax.set_title(title)
    return fig
