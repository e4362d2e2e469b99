"""The methods appendix's power table: per experiment's main contrast, the n it used and the smallest difference
that n detects at 80% power, in the direction the essay predicts.

The n and the baseline rate of every row are read from committed results (provenance and tables), the detectable
difference comes from :func:`personalab.stats.min_detectable_difference` (the two-proportion normal
approximation, conservative for the paired designs used here). Contrasts that are not a difference of two
proportions (variance shares, AUCs) are listed with their n and no detectable difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from personalab.book import provenance
from personalab.outputs import results_dir_for
from personalab.book.chapters.integration import ALPHA, MASKS_BASE, short_name, tab
from personalab.stats import min_detectable_difference

POWER = 0.8
"""The power the table is computed for."""

COLUMNS: tuple[str, ...] = ("experiment", "model", "contrast", "n", "unit", "baseline", "direction", "alpha", "mdd",
                             "mdd_all_heldout", "note")
"""Columns of :func:`power_table`: ``baseline`` is the rate the difference starts from, ``direction`` the way the
essay predicts it moves (up or down), ``mdd`` the minimum detectable difference in that direction (a proportion;
nan when none is detectable or the contrast is not a difference of proportions), ``mdd_all_heldout`` the same
at n = every held-out request of the request set (what a run without ``n_items`` would reach)."""


@dataclass(frozen=True)
class MainContrast:
    """One experiment's main contrast on one model: its n, the baseline rate, and the test level it faces."""

    experiment: str
    model: str
    contrast: str
    n: int
    unit: str
    baseline: float = math.nan
    direction: Literal["up", "down"] = "up"
    alpha: float = ALPHA
    note: str = ""

    def row(self) -> dict[str, object]:
        """The table row, with the minimum detectable difference when the contrast is one of proportions."""
        def mdd(n: int) -> float:
            return (math.nan if math.isnan(self.baseline) else
                    min_detectable_difference(n, self.baseline, POWER, self.alpha, self.direction))

        return {"experiment": self.experiment, "model": self.model, "contrast": self.contrast, "n": self.n,
                "unit": self.unit, "baseline": self.baseline, "direction": self.direction, "alpha": self.alpha,
                "mdd": mdd(self.n), "mdd_all_heldout": mdd(max(self.n, heldout_requests())), "note": self.note}


def heldout_requests() -> int:
    """Held-out target requests in the request set: the n of a run on the whole held-out split."""
    from personalab.prompts import load_items

    return len(load_items(split="heldout", variant="target"))


def _ran(experiment: str, model: str) -> bool:
    """Whether ``experiment`` has committed results for ``model``."""
    return (results_dir_for(experiment, model) / "provenance.json").exists()


def model_contrasts(m: str) -> list[MainContrast]:
    """The main contrasts of every per-model experiment that ``m`` has committed results for."""
    out = []
    if _ran("prefill_sure", m):
        diff = tab("prefill_sure", m, "difference").iloc[0]
        direct = tab("prefill_sure", m, "rates").set_index("condition").loc["direct"]
        out.append(MainContrast("prefill_sure", m, 'refusal, direct minus prefilled "Sure,"', int(diff["n_items"]),
                                "target requests", float(direct["rate"]), "down"))
    if _ran("slippage", m):
        harm = tab("slippage", m, "harm_contrast")
        bar = tab("slippage", m, "harm_bar").iloc[0]
        n_fam = int((harm["role"] == "attack").sum())
        out.append(MainContrast("slippage", m, "refusal, direct minus attacked, per family",
                                int(harm["n_pairs"].iloc[0]), "request pairs", float(bar["target_rate"]), "down",
                                ALPHA / n_fam, f"level {ALPHA:g}/{n_fam}: Holm's first step over {n_fam} families"))
        out.append(MainContrast("slippage", m, "direct refusal, targets minus twins (harm-tracking bar)",
                                int(bar["n_pairs"]), "request pairs", float(bar["twin_rate"])))
    if _ran("depth", m):
        sweep = tab("depth", m, "compliance_sweep")
        none = sweep[(sweep["outcome"] == "complied") & (sweep["depth"] == 0)].iloc[0]
        out.append(MainContrast("depth", m, "compliance, prefilled tokens minus none",
                                int(provenance("depth", m)["n_items"]), "target requests", float(none["rate"])))
    if _ran("erosion", m):
        esc = tab("erosion", m, "escalation_vs_best_of_n").iloc[0]
        out.append(MainContrast("erosion", m, "compliance, escalation minus the same number of retries",
                                int(esc["n_items"]), "target requests", float(esc["best_of_n"])))
    if _ran("persona_selection", m):
        v = tab("persona_selection", m, "variance")
        r = v[(v["mode"] == "chat") & (v["items"] == "targets") & (v["component"] == "persona minus request")]
        out.append(MainContrast("persona_selection", m, "persona minus request share of refusal variance",
                                int(r["n_items"].iloc[0]), "target requests",
                                note="a difference of variance shares, not of proportions"))
    return out


def main_contrasts(models: Sequence[str], single: str) -> list[MainContrast]:
    """Every experiment's main contrast for each model it ran on, with n and baseline read from its results."""
    out = [c for m in models for c in model_contrasts(m)]
    if _ran("masks", MASKS_BASE):
        by_recipe = {m.rsplit("-", 1)[-1]: m for m in provenance("masks", MASKS_BASE)["models"][1:]}
        gap = tab("masks", MASKS_BASE, "discrimination_contrasts").set_index(["a", "b", "group"])
        deep_vs_shallow = gap.loc[(by_recipe["deep"], by_recipe["shallow"], "never trained")]
        out.append(MainContrast("masks", MASKS_BASE, "harm tracking under never-trained attacks, deep minus shallow mask",
                                int(deep_vs_shallow["n_pairs"]), "request pairs",
                                note="a difference of two differences of proportions; its interval is in the claim table"))
    att = tab("detection", single, "attacks").set_index(["system", "condition"]).loc[("B", "all attacks")]
    d = tab("detection", single, "attack_difference").set_index("condition").loc["all attacks"]
    out.append(MainContrast("detection", single, "refusal under attack, system A minus system B",
                            int(d["n_items"]), "target requests", float(att["rate"])))
    auc = tab("detection", single, "auc").set_index("test").loc["A-mimic vs B (retrained)"]
    out.append(MainContrast("detection", single, "style classifier AUC, imitation versus original",
                            int(min(auc["n_positive"], auc["n_negative"])), "refusals (the smaller class)",
                            note=f"an AUC, not a difference of proportions; {int(auc['n_positive'])} and "
                                 f"{int(auc['n_negative'])} refusals"))
    gains = tab("wisdom_handicap", single, "gains_vs_none")
    none = tab("wisdom_handicap", single, "summary").set_index("strategy").loc["none"]
    out.append(MainContrast("wisdom_handicap", single, "robustness, a strategy minus none",
                            int(gains["n_pairs"].iloc[0]), "request pairs", float(none["robustness"])))
    return out


def power_table(models: Sequence[str], single: str) -> pd.DataFrame:
    """One row per main contrast (columns :data:`COLUMNS`)."""
    return pd.DataFrame([c.row() for c in main_contrasts(models, single)], columns=list(COLUMNS))


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The power table as the methods appendix shows it: names, n with its unit, and differences in points."""
    def mdd(x: float, baseline: float, direction: str) -> str:
        """A detectable difference in points, or why there is none."""
        if math.isnan(baseline):
            return "not applicable"
        if math.isnan(x):
            room = (1.0 - baseline) if direction == "up" else baseline
            return f"none up to {room * 100:.0f} points, the largest {'rise' if direction == 'up' else 'fall'} possible"
        return f"{'+' if direction == 'up' else '-'}{x * 100:.0f} points"

    return pd.DataFrame({
        "experiment": table["experiment"], "model": [short_name(e, m) for e, m in zip(table["experiment"],
                                                                                       table["model"])],
        "main contrast": table["contrast"], "n": [f"{n} {u}" for n, u in zip(table["n"], table["unit"])],
        "baseline rate": ["" if math.isnan(b) else f"{b * 100:.0f}%" for b in table["baseline"]],
        f"smallest difference detectable at {POWER:.0%} power": [mdd(x, b, d) for x, b, d in zip(
            table["mdd"], table["baseline"], table["direction"])],
        f"the same with all {heldout_requests()} held-out requests": [mdd(x, b, d) for x, b, d in zip(
            table["mdd_all_heldout"], table["baseline"], table["direction"])],
        "note": table["note"]})


__all__ = ["COLUMNS", "POWER", "MainContrast", "display_table", "heldout_requests", "main_contrasts", "power_table"]
