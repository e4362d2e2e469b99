"""The slippage notebook's figures: slippage per family and wrapper, and the family x model refusal heatmap.

Drawing lives here, apart from :mod:`personalab.experiments.slippage`, so the analysis never imports matplotlib;
so does the heatmap's input, :func:`collect_family_rates`, which reads other models' committed results.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from personalab.attacks import FAMILIES
from personalab.outputs import published, read_table, results_dir_for
from personalab.experiments.slippage import EXPERIMENT
from personalab.harness.registry import load_registry


def collect_family_rates(model_id: str, current: pd.DataFrame, experiment: str = EXPERIMENT,
                         table: str = "family_rates") -> dict[str, pd.DataFrame]:
    """``current`` for ``model_id`` plus every other registered model's committed ``table``, in registry order."""
    out: dict[str, pd.DataFrame] = {}
    for other in load_registry().models:
        path = results_dir_for(experiment, other) / f"{table}.csv"
        if other == model_id:
            out[other] = current
        elif published(path).exists():
            out[other] = read_table(path)
    return out


def _short_name(model_id: str) -> str:
    """A model's display name without its parenthesised quantisation note."""
    try:
        return load_registry().get(model_id).display_name.split(" (")[0]
    except Exception:  # noqa: BLE001 - an id absent from the registry still gets a label
        return model_id


def family_heatmap(tables: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """Family x model heatmaps of the refusal rate: targets (left) and benign twins, i.e. over-refusal (right)."""
    models = list(tables)
    fig, axes = plt.subplots(1, 2, figsize=(3.0 + 1.6 * len(models) * 2, 4.2), sharey=True)
    for ax, variant, title in zip(axes, ("target", "benign"), ("targets: refusal", "benign twins: over-refusal")):
        grid = np.full((len(FAMILIES), len(models)), np.nan)
        counts = [["" for _ in models] for _ in FAMILIES]
        for j, m in enumerate(models):
            t = tables[m]
            t = t[t["variant"] == variant].set_index("family")
            for i, f in enumerate(FAMILIES):
                if f in t.index:
                    grid[i, j] = t.loc[f, "rate"]
                    counts[i][j] = f"{t.loc[f, 'rate'] * 100:.0f}%\n({int(t.loc[f, 'k'])}/{int(t.loc[f, 'n'])})"
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(len(FAMILIES)):
            for j in range(len(models)):
                if counts[i][j]:
                    ax.text(j, i, counts[i][j], ha="center", va="center", fontsize=8,
                            color="black" if grid[i, j] > 0.6 else "white")
        ax.set_xticks(range(len(models)), [_short_name(m) for m in models], rotation=15, ha="right")
        ax.set_yticks(range(len(FAMILIES)), list(FAMILIES))
        ax.set_title(title)
        ax.grid(False)
    fig.colorbar(im, ax=axes, fraction=0.04, label="refusal rate")
    return fig


def slippage_plot(slip: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Slippage per family on targets (large markers) with each wrapper's (small), 95% bootstrap intervals."""
    sub = slip[slip["variant"] == "target"]
    fams = [f for f in FAMILIES if f != "direct" and f in set(sub["family"])]
    n_rows = int(sub["level"].isin(["family", "wrapper"]).sum())
    fig, ax = plt.subplots(figsize=(7, 0.3 * n_rows + 1.2))
    ylabels, y = [], 0
    palette = plt.get_cmap("tab10")
    for fi, fam in enumerate(fams):
        rows = [sub[(sub["level"] == "family") & (sub["group"] == fam)],
                sub[(sub["level"] == "wrapper") & (sub["family"] == fam)]]
        for level, block in zip(("family", "wrapper"), rows):
            for _, r in block.iterrows():
                big = level == "family"
                ax.errorbar(r["slippage"], y, xerr=[[r["slippage"] - r["lo"]], [r["hi"] - r["slippage"]]],
                            fmt="D" if big else "o", ms=8 if big else 4, color=palette(fi), capsize=3 if big else 0,
                            lw=2 if big else 1, alpha=1 if big else 0.7)
                ylabels.append(f"{fam} (pooled)" if big else "   " + str(r["group"]).split("/", 1)[1])
                y += 1
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.invert_yaxis()
    ax.set_xlim(-1, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("slippage: direct minus attacked refusal rate (percentage points)")
    if title:
        ax.set_title(title)
    return fig


__all__ = ["collect_family_rates", "family_heatmap", "slippage_plot"]
