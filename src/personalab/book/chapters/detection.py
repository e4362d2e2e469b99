"""What the detection chapter quotes (:func:`chapter_numbers`, its verdicts) and the notebook's example refusals.

Book text lives here, apart from :mod:`personalab.experiments.detection`, so the analysis never formats prose.
"""

from __future__ import annotations

import pandas as pd

from personalab.book import pct
from personalab.outputs import read_json, read_table, results_dir_for
from personalab.experiments.detection import EXPERIMENT


def examples(refusals: pd.DataFrame, per_system: int = 2, width: int = 260) -> pd.DataFrame:
    """The first ``per_system`` refusals of each system (items in id order), cut to ``width`` characters."""
    sub = refusals.sort_values(["system", "item", "sample"], kind="stable").groupby("system").head(per_system)
    flat = sub["reply"].map(lambda t: " ".join(str(t).split()))
    return sub.assign(reply=flat.map(lambda t: t if len(t) <= width else t[: width - 1] + "…"))[
        ["system", "item", "reply"]].reset_index(drop=True)


def chapter_numbers(model_id: str) -> dict[str, str]:
    """Formatted strings the detection chapter glues, read from one model's committed results."""
    d = results_dir_for(EXPERIMENT, model_id)
    prov = read_json(d / "provenance.json")
    aucs = read_table(d / "auc.csv")
    att = read_table(d / "attacks.csv")
    diff = read_table(d / "attack_difference.csv")
    kept = read_table(d / "refusal_rates.csv")
    out = {"model": prov["model"]["name"].split(" (")[0], "n_items": str(prov["n_items"]),
           "n_heldout": str(prov["n_heldout"]), "n_samples": str(prov["n_samples"]),
           "temperature": f"{prov['parameters']['temperature']:g}",
           "gen_s": f"{prov['generations']['generation_wall_s'] / 60:.0f} minutes"}
    for key, test in (("ab", "A vs B"), ("mimic", "A-mimic vs B (retrained)"),
                      ("transfer", "A-mimic vs B (A-vs-B detector)")):
        r = aucs[aucs["test"] == test].iloc[0]
        out[f"auc_{key}"] = f"{r['auc']:.2f} (95% CI {r['lo']:.2f}–{r['hi']:.2f})"
        out[f"n_{key}"] = f"{int(r['n_positive'])} and {int(r['n_negative'])}"
    for system in ("A", "B", "A-mimic"):
        s = kept[kept["system"] == system]
        k, n = int(s["k"].sum()), int(s["n"].sum())
        out[f"kept_{system}"] = f"{k} of {n}"
    for _, r in att.iterrows():
        if r["condition"] in ("direct/plain", "all attacks"):
            key = "direct" if r["condition"] == "direct/plain" else "attacked"
            out[f"success_{key}_{r['system']}"] = (f"{pct(r['success'])} ({pct(r['success_lo'])}–"
                                                   f"{pct(r['success_hi'])}, n = {int(r['n'])})")
    for _, r in diff.iterrows():
        key = "direct" if r["condition"] == "direct" else "attacked"
        out[f"diff_{key}"] = (f"{r['difference'] * 100:+.0f} percentage points (95% bootstrap CI "
                              f"{r['lo'] * 100:+.0f} to {r['hi'] * 100:+.0f})")
        out[f"diff_{key}_verdict"] = (
            "System A refused more often than System B" if r["lo"] > 0 else
            "System B refused more often than System A" if r["hi"] < 0 else
            "the interval includes zero, so this sample cannot tell the two systems apart")
    for key in ("ab", "mimic", "transfer"):
        test = {"ab": "A vs B", "mimic": "A-mimic vs B (retrained)", "transfer": "A-mimic vs B (A-vs-B detector)"}[key]
        r = aucs[aucs["test"] == test].iloc[0]
        out[f"auc_{key}_verdict"] = ("the classifier did better than chance" if r["lo"] > 0.5 else
                                     "the classifier did worse than chance" if r["hi"] < 0.5 else
                                     "the interval includes 0.5, so the classifier did no better than chance")
    out["prediction"] = prediction_verdict(aucs, diff)
    return out


def prediction_verdict(aucs: pd.DataFrame, diff: pd.DataFrame) -> str:
    """One sentence: does the run show the essay's pattern (mimic indistinguishable, robustness different)?"""
    m = aucs[aucs["test"] == "A-mimic vs B (retrained)"].iloc[0]
    d = diff[diff["condition"] == "all attacks"].iloc[0]
    hidden = m["lo"] <= 0.5
    differs = d["lo"] > 0 or d["hi"] < 0
    if hidden and differs:
        return ("this run shows the essay's pattern: the imitation could not be told from System B, while the "
                "two systems' refusal rates under attack differed")
    if hidden:
        return ("this run shows only half of the essay's pattern: the imitation could not be told from System B, "
                "but no difference in robustness between A and B was detectable either")
    if differs:
        return ("this run does not show the essay's pattern: the two systems differed under attack, but even the "
                "imitation remained distinguishable from System B")
    return ("this run does not show the essay's pattern: the imitation remained distinguishable from System B, "
            "and no difference in robustness between A and B was detectable")


__all__ = ["chapter_numbers", "examples", "prediction_verdict"]
