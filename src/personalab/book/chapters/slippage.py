"""What the slippage chapter shows: the per-family summary and capability tables, formatted as percent strings.

Book text lives here, apart from :mod:`personalab.experiments.slippage`, so the analysis never formats prose.
"""

from __future__ import annotations

import pandas as pd

from personalab.book import pct
from personalab.experiments.slippage import FORM_CHECKS


def summary_table(rates: pd.DataFrame, slip: pd.DataFrame, level: str = "family") -> pd.DataFrame:
    """Display table for the chapter: per group, target refusal, slippage with CI, and benign over-refusal."""
    r = rates[rates["level"] == level].set_index(["variant", "group"])
    s = slip[slip["level"] == level].set_index(["variant", "group"])
    rows = []
    for group in dict.fromkeys(rates.loc[rates["level"] == level, "group"]):
        t, b = r.loc[("target", group)], r.loc[("benign", group)] if ("benign", group) in r.index else None
        row = {level: group, "refusal on targets": f"{pct(t['rate'])} ({pct(t['lo'])}–{pct(t['hi'])}, n = {t['n']})"}
        if ("target", group) in s.index:
            x = s.loc[("target", group)]
            row["slippage, points"] = f"{x['slippage'] * 100:+.0f} ({x['lo'] * 100:+.0f} to {x['hi'] * 100:+.0f})"
        else:
            row["slippage, points"] = "baseline"
        row["over-refusal on benign twins"] = (f"{pct(b['rate'])} ({pct(b['lo'])}–{pct(b['hi'])}, n = {b['n']})"
                                               if b is not None else "not applicable")
        rows.append(row)
    return pd.DataFrame(rows)


def capability_summary(capability: pd.DataFrame) -> pd.DataFrame:
    """Display table for the chapter: per form-checked wrapper, raw and competent compliance on both variants."""
    c = capability.set_index(["variant", "wrapper", "measure"])
    rows = []
    for w in FORM_CHECKS:
        row = {"wrapper": w}
        for variant, label in (("benign", "benign twins"), ("target", "targets")):
            for measure in ("compliance (raw)", "competent compliance"):
                x = c.loc[(variant, w, measure)]
                row[f"{label}: {measure}"] = f"{pct(x['rate'])} ({pct(x['lo'])}–{pct(x['hi'])})"
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["capability_summary", "summary_table"]
