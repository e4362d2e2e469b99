"""What the "Where the mask lives" chapter quotes, read from the committed results of the refusal-direction notebook."""

from __future__ import annotations

import pandas as pd

from personalab.book import difference_text, pct
from personalab.outputs import read_json, read_table, results_dir_for

EXPERIMENT = "refusal_direction"


def _rate(rate: float, lo: float, hi: float, k: int, n: int) -> str:
    return f"{pct(rate)} ({pct(lo)}–{pct(hi)}, {k} of {n})"


def _diff(row: pd.Series) -> str:
    return difference_text(row["difference"], row["lo"], row["hi"])


def damage_reading(capability: pd.Series, ablation: pd.Series) -> str:
    """What an ablation did to a mask, read from its change in on-topic twin compliance and in target refusal (each
    a difference with a 95% interval): a damaged model, or what the intervals leave open."""
    if capability["hi"] < 0:
        return "again a damaged model, not an unmasked one"
    text = "the harmless twins' on-topic answers moved as in a damaged model, though this interval reaches zero"
    if ablation["hi"] < 0:
        return text + "; refusal fell, so an unmasked model is not ruled out here"
    return text + ", and refusal did not clearly fall either: neither clearly unmasked nor clearly damaged"


def key_of(model: str, base: str) -> str:
    """The glue key of a model: "base", or a trained model's recipe ("shallow", "deep", "preference")."""
    return "base" if model == base else model.rsplit("-", 1)[-1]


def chapter_numbers(base: str) -> dict[str, str]:
    """Formatted strings the chapter glues (keys without the chapter's prefix)."""
    d = results_dir_for(EXPERIMENT, base)
    prov = read_json(d / "provenance.json")
    models = prov["models"]
    rates = read_table(d / "rates.csv").set_index(["model", "variant", "condition"])
    effects = read_table(d / "effects.csv").set_index(["model", "effect"])
    sep = read_table(d / "separation.csv")
    survival = read_table(d / "survival.csv").set_index("model")
    cos = read_table(d / "cosines.csv").set_index("model")
    out = {"n_pairs": str(prov["n_pairs"]), "n_dev_pairs": str(prov["n_dev_pairs"]),
           "max_tokens": str(prov["parameters"]["max_tokens"]),
           "n_layers": str(prov["activations"]["models"][base]["n_layers"])}
    for m in models:
        k = key_of(m, base)
        chosen = sep[(sep["model"] == m) & sep["chosen"]].iloc[0]
        out[f"{k}_layer"] = str(int(chosen["layer"]))
        out[f"{k}_auc_dev"] = f"{chosen['dev_cross_fitted_auc']:.2f}"
        out[f"{k}_auc_held"] = f"{chosen['heldout_auc']:.2f}"
        for variant, condition, name in (("target", "none", "t_none"), ("target", "ablate", "t_ablate"),
                                         ("benign", "none", "b_none"), ("benign", "add", "b_add"),
                                         ("benign", "ablate", "b_ablate")):
            r = rates.loc[(m, variant, condition)]
            out[f"{k}_{name}"] = _rate(r["rate"], r["lo"], r["hi"], int(r["k"]), int(r["n"]))
            for suffix in ("comply", "competent"):
                out[f"{k}_{name}_{suffix}"] = _rate(r[f"rate_{suffix}"], r[f"lo_{suffix}"], r[f"hi_{suffix}"],
                                                    int(r[f"k_{suffix}"]), int(r["n"]))
        for effect, name in (("ablation lowers target refusal", "ablation"), ("addition induces twin refusal", "addition"),
                             ("ablation changes on-topic twin compliance", "capability"),
                             ("ablation raises on-topic target compliance", "unmasked")):
            out[f"{k}_{name}"] = _diff(effects.loc[(m, effect)])
        out[f"{k}_damage_reading"] = damage_reading(effects.loc[(m, "ablation changes on-topic twin compliance")],
                                                    effects.loc[(m, "ablation lowers target refusal")])
        s = survival.loc[m]
        out[f"{k}_survive"] = f"{int(s['still_refused_ablated'])} of {int(s['refused_without'])}"
        if m != base:
            out[f"cos_{k}_base"] = f"{cos.loc[m, base]:.2f}"
    masks = [m for m in models if m != base]
    for i, a in enumerate(masks):
        for b in masks[i + 1:]:
            out[f"cos_{key_of(a, base)}_{key_of(b, base)}"] = f"{cos.loc[a, b]:.2f}"
    out["cos_layer"] = str(int(sep[(sep["model"] == base) & sep["chosen"]]["layer"].iloc[0]))
    for _, row in read_table(d / "control_cosines.csv").iterrows():
        if row["model"] != base:
            out[f"control_cos_{key_of(row['model'], base)}"] = f"{row['control_cosine']:.2f}"
    replies = read_table(d / "replies.csv")
    for m in masks:
        off = replies[(replies["model"] == m) & (replies["variant"] == "target") & (replies["condition"] == "ablate")
                      & replies["complied"] & ~replies["on_topic"]]
        first = off["reply"].iloc[0].split("\n")[0].strip() if len(off) else ""
        out[f"{key_of(m, base)}_offtopic_example"] = (first[:77] + "...") if len(first) > 80 else first or "(none)"
    return out


def masks_version_note(experiment: str, base: str) -> str:
    """Whether ``experiment``'s committed run on ``base`` and its masks came after the current masks were trained
    (their training dates, from the masks' slippage provenance): a sentence for the chapter either way."""
    prov = read_json(results_dir_for(experiment, base) / "provenance.json")
    run_date, masks = prov["date"], prov["parameters"].get("masks") or []
    trained = [read_json(results_dir_for("slippage", m) / "provenance.json")["model"].get("training", {}).get("date")
               for m in masks if m != base]
    trained = [t for t in trained if t]
    if not trained or run_date >= max(trained):
        return "These numbers were measured on the masks the rest of the book reads."
    return (f"These numbers come from a run on {run_date[:10]}, on an earlier training of the masks; the masks the rest "
            f"of the book reads were retrained on {max(trained)[:10]}, and "
            "`make book-full` measures them again (most of an hour on two cores).")


def axis_numbers(base: str) -> dict[str, str]:
    """Formatted strings of the persona-axis notebook (keys without the chapter's prefix)."""
    d = results_dir_for("persona_axis", base)
    summary = read_table(d / "correlation.csv")
    out = {"axis_n_dev": str(read_json(d / "provenance.json")["n_dev_pairs"])}
    for _, r in summary.iterrows():
        k = key_of(r["model"], base)
        out[f"axis_{k}_rho"] = (f"{r['rho']:+.2f} (95% CI {r['lo']:+.2f} to {r['hi']:+.2f}, "
                                f"{int(r['n_wrappers'])} wrappers)")
        out[f"axis_{k}_share"] = pct(r["axis_share"])
        out[f"axis_{k}_layer"] = str(int(r["layer"]))
    out["axis_n_for"] = str(int((summary["hi"] < 0).sum()))
    out["axis_version"] = masks_version_note("persona_axis", base)
    out["axis_n_models"] = str(len(summary))
    return out


def _models_phrase(keys: list[str]) -> str:
    """"the base model", "the shallow and deep masks", "the base model and the deep mask" from glue keys."""
    masks = [k for k in keys if k != "base"]
    parts = (["the base model"] if "base" in keys else []) + (
        [f"the {masks[0]} mask"] if len(masks) == 1 else
        [f"the {', '.join(masks[:-1])} and {masks[-1]} masks"] if masks else [])
    return " and ".join(parts)


def probe_numbers(base: str) -> dict[str, str]:
    """Formatted strings of the probe notebook (keys without the chapter's prefix): within-family AUCs and the
    probe-minus-words difference per model."""
    d = results_dir_for("probe", base)
    aucs = read_table(d / "auc.csv")
    diffs = read_table(d / "difference.csv").set_index("model")
    out = {"probe_n_rows": str(int(aucs["n_rows"].iloc[0])), "probe_n_items": str(int(aucs["n_items"].iloc[0])),
           "probe_n_families": str(int(aucs["n_families"].iloc[0]))}
    for _, r in aucs.iterrows():
        out[f"probe_{key_of(r['model'], base)}_{r['score']}"] = f"{r['auc']:.2f} (95% CI {r['lo']:.2f} to {r['hi']:.2f})"
    for model, r in diffs.iterrows():
        out[f"probe_{key_of(model, base)}_diff"] = f"{r['difference']:+.2f} (95% CI {r['lo']:+.2f} to {r['hi']:+.2f})"
    holds = [key_of(m, base) for m, r in diffs.iterrows() if r["lo"] > 0]
    fails = [key_of(m, base) for m in diffs.index if key_of(m, base) not in holds]
    out["probe_n_above"] = str(len(holds))
    out["probe_n_models"] = str(len(diffs))
    if not holds:
        out["probe_verdict"] = ("So the hypothesis is not supported: fitted on other attacks, what the network holds "
                                "tells no more than what the prompt says.")
    elif not fails:
        out["probe_verdict"] = ("So the hypothesis holds in every model: fitted on other attacks, what the network "
                                "holds tells more than what the prompt says.")
    else:
        out["probe_verdict"] = (f"So the hypothesis holds in {_models_phrase(holds)} and not in "
                                f"{_models_phrase(fails)}: fitted on other attacks, what the network holds tells "
                                "somewhat more than the prompt's words about some models' refusals, not about all.")
    out["probe_version"] = masks_version_note("probe", base)
    return out
