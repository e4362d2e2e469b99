"""What the slippage chapter shows: the per-family summary and capability tables, formatted as percent strings.

Book text lives here, apart from :mod:`personalab.experiments.slippage`, so the analysis never formats prose.
"""

from __future__ import annotations

import pandas as pd

from personalab.book import interval_phrase, pct
from personalab.experiments.slippage import FORM_CHECKS
from personalab.stats import rate

ALPHA = 0.05
"""Family-wise level of the Holm-adjusted tests the chapter reports."""


def design_text(prov: dict) -> str:
    """How a slippage run spread its requests over the wrappers, from its provenance (the full or the incomplete
    design), as the clause that follows "Each held-out target request was sent directly, inside neutral filler and"."""
    params = prov["parameters"]
    k = params.get("wrappers_per_family")
    if k is None:
        return (f"under each of the {prov['n_wrappers_target']} registered wrappers, and each benign twin directly "
                f"and under the {prov['n_wrappers_benign']} that do not need a target's compliant opening")
    per = "one wrapper" if k == 1 else f"{k} wrappers"
    return (f"under {per} of each attack family, the family's wrappers dealt out in rotation so that each gets an "
            f"equal share of the requests and of every category (an incomplete design: a family's rate rests on "
            f"every request, a single wrapper's on a share of them); each benign twin went under its target's "
            f"wrapper where that wrapper takes a twin")


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


def _families(harm: pd.DataFrame, column: str, sign: int) -> str:
    """Attack families whose Holm-adjusted ``column`` test is significant in the direction ``sign`` (or 'none')."""
    attacks = harm[harm["role"] == "attack"]
    hits = attacks[(attacks[f"{column}_p_holm"] < ALPHA) & (attacks[column] * sign > 0)]
    return ", ".join(f.replace("_", " ") for f in hits["family"]) or "none"


def harm_numbers(harm: pd.DataFrame, bar: pd.DataFrame) -> dict[str, str]:
    """The strings the chapter glues about harm and the control: the direct harm bar, the control wrapper's own
    slippage, families beyond the control, and the harm-specific contrast (Holm-adjusted across families)."""
    b = bar.iloc[0]
    pooled = harm[harm["family"] == "all attacks"].iloc[0]
    out = {
        "bar_target": str(rate(int(b["target_k"]), int(b["target_n"]))),
        "bar_twin": str(rate(int(b["twin_k"]), int(b["twin_n"]))),
        "bar_diff": interval_phrase(b["difference"], b["lo"], b["hi"]),
        "bar_pass": "passes" if bool(b["passes_bar"]) else "fails",
        "bar_pairs": (f"both refused in {int(b['both_refused'])} pairs, only the target in {int(b['target_only'])}, "
                      f"only the twin in {int(b['twin_only'])}, neither in {int(b['neither'])}"),
        "holm_down": _families(harm, "slippage", +1),
        "harm_pooled": interval_phrase(pooled["harm"], pooled["harm_lo"], pooled["harm_hi"]),
        "harm_up": _families(harm, "harm", +1),
    }
    control = harm[harm["role"] == "control"]
    if control.empty:
        out |= {"control": "not measured in this run", "beyond_control": "not measured",
                "below_control": "not measured"}
    else:
        c = control.iloc[0]
        out |= {"control": interval_phrase(c["slippage"], c["slippage_lo"], c["slippage_hi"]),
                "beyond_control": _families(harm, "vs_control", +1),
                "below_control": _families(harm, "vs_control", -1)}
    return out


__all__ = ["design_text", "capability_summary", "harm_numbers", "summary_table"]
