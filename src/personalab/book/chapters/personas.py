"""What the PSM chapter quotes: one model's committed persona_selection results as formatted strings to glue.

Book text lives here, apart from :mod:`personalab.experiments.personas`, so the analysis never formats prose.
"""

from __future__ import annotations

from personalab.book import pct
from personalab.outputs import read_json, read_table, resolve, results_dir_for
from personalab.experiments.personas import DIFFERENCE, EXPERIMENT, MODES


def chapter_numbers(model_id: str) -> dict[str, str]:
    """Formatted strings the PSM chapter glues, read from one model's committed results."""
    d = results_dir_for(EXPERIMENT, model_id)
    prov = read_json(d / "provenance.json")
    rates = read_table(d / "rates.csv")
    shares = read_table(d / "variance.csv")
    diff = read_table(d / "mode_difference.csv")
    out = {"model": prov["model"]["name"].split(" (")[0], "n_items": str(prov["n_items"]),
           "n_personas": str(prov["n_personas"]),
           "gen_s": f"{prov['generations']['generation_wall_s'] / 60:.0f} minutes"}
    for _, r in rates.iterrows():
        out[f"rate_{r['mode']}_{r['variant']}_{r['persona']}"] = (
            f"{pct(r['rate'])} ({pct(r['lo'])}–{pct(r['hi'])}, {int(r['k'])} of {int(r['n'])})")
    for _, r in shares.iterrows():
        items = "t" if r["items"] == "targets" else "all"
        out[f"share_{r['mode']}_{items}_{r['component']}"] = f"{pct(r['share'])} (95% CI {pct(r['lo'])}–{pct(r['hi'])})"
    for _, r in shares[shares["component"] == "persona"].iterrows():
        items = "t" if r["items"] == "targets" else "all"
        out[f"floor_{r['mode']}_{items}"] = f"{pct(r['null_mean'])}"
        out[f"perm_{r['mode']}_{items}"] = (
            f"above what shuffling the personas gives by chance ({pct(r['null_mean'])} on average; permutation "
            f"p = {r['p_perm']:.3f})" if r["p_perm"] < 0.05 else
            f"not distinguishable from what shuffling the personas gives by chance ({pct(r['null_mean'])} on "
            f"average; permutation p = {r['p_perm']:.2f})")
    agree_path = d / "judge_agreement.csv"
    if resolve(agree_path).exists():
        for _, r in read_table(agree_path).iterrows():
            out[f"agree_{r['mode']}"] = f"{pct(r['rate'])} ({pct(r['lo'])}–{pct(r['hi'])}, n = {int(r['n'])})"
    for _, r in shares[shares["component"] == DIFFERENCE].iterrows():
        items = "t" if r["items"] == "targets" else "all"
        out[f"verdict_{r['mode']}_{items}"] = (
            "the persona explained more of the variance than the request did" if r["lo"] > 0 else
            "the request explained more of the variance than the persona did" if r["hi"] < 0 else
            "the interval on their difference includes zero, so this sample cannot rank persona and request")
    for mode in MODES:
        t = rates[(rates["mode"] == mode) & (rates["variant"] == "target")]
        if len(t):
            lo, hi = t.loc[t["rate"].idxmin()], t.loc[t["rate"].idxmax()]
            out[f"range_{mode}"] = (f"from {pct(lo['rate'])} ({lo['persona']}) to {pct(hi['rate'])} "
                                    f"({hi['persona']})")
    a = diff[diff["persona"] == "assistant"]
    if len(a):
        r = a.iloc[0]
        out["mode_diff_assistant"] = (f"{r['difference'] * 100:+.0f} percentage points (95% bootstrap CI "
                                      f"{r['lo'] * 100:+.0f} to {r['hi'] * 100:+.0f})")
        out["mode_verdict_assistant"] = (
            "the chat template made the default refuse more than plain completion did" if r["lo"] > 0 else
            "plain completion refused more than the chat template, against the hypothesis" if r["hi"] < 0 else
            "the interval includes zero, so this sample cannot tell the two modes apart")
    return out


__all__ = ["chapter_numbers"]
