"""What the chapters quote from the capping notebook: each cap's effect on attacked refusal, its capability cost and
its compute cost, read from the committed results."""

from __future__ import annotations

import pandas as pd

from personalab.book import difference_text, pct
from personalab.book.chapters.inside import key_of
from personalab.book.chapters.integration import capping_side, verdict
from personalab.experiments.capping import BASELINE, CAPS, POOLED
from personalab.outputs import read_json, read_table, results_dir_for
from personalab.stats import rate

EXPERIMENT = "capping"
#: "A few percent" in hypothesis (3): a cap's median seconds per token over the uncapped run's at most this.
FEW_PERCENT = 1.05


def _holds(n: int, of: int) -> str:
    """How many of the models a hypothesis held in, in words."""
    return f"holds in {n} of {of} model{'s' if of > 1 else ''}"


def _rate(k: int, n: int) -> str:
    """A rate with its Wilson interval and counts, the way the chapter quotes it."""
    r = rate(k, n)
    return f"{pct(r.rate)} ({pct(r.lo)}–{pct(r.hi)}, {k} of {n})"


def pooled_rates(replies: pd.DataFrame) -> pd.DataFrame:
    """Per model and condition: refusal of the attacked targets (every wrapper but the direct request) pooled, as k
    and n."""
    attacked = replies[(replies["variant"] == "target") & (replies["wrapper"] != BASELINE)]
    return attacked.groupby(["model", "condition"], sort=False)["refused"].agg(k="sum", n="size").reset_index()


def chapter_numbers(base: str) -> dict[str, str]:
    """Formatted strings of the capping notebook (keys without the chapter's prefix): for each model (``base`` or a
    mask's recipe) and cap, attacked-target refusal with and without it, the twins' on-topic compliance, each
    difference with its paired bootstrap interval, how often the cap binds and its compute ratio; across models, how
    many each cap helped or cost, whether each hypothesis held, and the claim table's verdict."""
    d = results_dir_for(EXPERIMENT, base)
    prov = read_json(d / "provenance.json")
    models = prov["models"]
    effects = read_table(d / "effects.csv").set_index(["model", "cap", "scope", "outcome"])
    twins = read_table(d / "rates.csv").set_index(["model", "wrapper", "variant", "condition"])
    pooled = pooled_rates(read_table(d / "replies.csv")).set_index(["model", "condition"])
    bound = read_table(d / "binding.csv")
    bound = bound.assign(scope=bound["variant"].where(bound["wrapper"] != BASELINE, bound["variant"] + " direct"))
    bound = bound.groupby(["model", "cap", "scope"])[["k", "n"]].sum()
    cost = read_table(d / "cost.csv").set_index(["model", "cap"])
    layers = read_table(d / "caps.csv").set_index(["model", "cap"])["layer"]
    timings = read_table(d / "timings.csv")
    out = {"n_pairs": str(prov["n_pairs"]), "max_tokens": str(prov["parameters"]["max_tokens"]),
           "percentile": f"{prov['parameters']['percentile']:g}", "n_dev": str(prov["parameters"]["n_dev"]),
           "wrappers": ", ".join(prov["wrappers_asked"][1:]), "n_wrappers": str(len(prov["wrappers_asked"]) - 1),
           "models_run": "the one model run" if len(models) == 1 else f"the {len(models)} models run",
           "n_repeats": str(int(cost["n_repeats"].iloc[0]))}
    for m in models:
        k = key_of(m, base)
        none = pooled.loc[(m, "none")]
        out[f"{k}_attacked_none"] = _rate(int(none["k"]), int(none["n"]))
        out[f"{k}_twins_competent_none"] = _rate(int(twins.loc[(m, BASELINE, "benign", "none"), "k_competent"]),
                                                 int(twins.loc[(m, BASELINE, "benign", "none"), "n"]))
        out[f"{k}_layer"] = str(int(layers.loc[(m, CAPS[0])]))
        plain = timings[(timings["model"] == m) & (timings["condition"] == "none")]["s_per_token"] * 1000
        out[f"{k}_ms_none"] = f"{plain.min():.0f} to {plain.max():.0f} ms"
        for cap in CAPS:
            c = f"{k}_{cap}"
            capped = pooled.loc[(m, cap)]
            out[f"{c}_attacked"] = _rate(int(capped["k"]), int(capped["n"]))
            for scope, name in (("target", "binds"), ("benign direct", "binds_twins")):
                out[f"{c}_{name}"] = _rate(int(bound.loc[(m, cap, scope), "k"]), int(bound.loc[(m, cap, scope), "n"]))
            for scope, outcome, name in ((POOLED, "refused", "effect"), ("twins", "competent", "capability")):
                e = effects.loc[(m, cap, scope, outcome)]
                out[f"{c}_{name}"] = difference_text(e["difference"], e["lo"], e["hi"])
            r = cost.loc[(m, cap)]
            out[f"{c}_ratio"] = f"{r['ratio']:.2f}× ({r['ratio_min']:.2f}× to {r['ratio_max']:.2f}×)"
    for cap in CAPS:
        out[f"n_{cap}_raised"] = str(sum(effects.loc[(m, cap, POOLED, "refused"), "lo"] > 0 for m in models))
    out["n_refusal_costly"] = str(sum(effects.loc[(m, "refusal", "twins", "competent"), "hi"] < 0 for m in models))
    refusal = [effects.loc[(m, "refusal", POOLED, "refused")] for m in models]
    axis = [effects.loc[(m, "axis", POOLED, "refused")] for m in models]
    out["h1"] = _holds(sum(r["lo"] > 0 and a["difference"] < r["difference"] for r, a in zip(refusal, axis)),
                       len(models))
    out["h2"] = _holds(int(out["n_refusal_costly"]), len(models))
    out["h3"] = _holds(sum((cost.loc[m, "ratio"] <= FEW_PERCENT).all() for m in models), len(models))
    out["verdict"] = verdict([capping_side(effects.loc[(m, "axis", POOLED, "refused")],
                                           effects.loc[(m, "axis", "twins", "competent")],
                                           float(cost.loc[(m, "axis"), "ratio"])) for m in models])
    return out
