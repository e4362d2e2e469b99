"""What the "Building the mask" chapter quotes, read from the committed results of the masks notebook.

Book text lives here, apart from :mod:`personalab.experiments.masks`, so the analysis never formats prose.
"""

from __future__ import annotations

import pandas as pd

from personalab.book import difference_text, pct, points
from personalab.outputs import read_json, read_table, results_dir_for

EXPERIMENT = "masks"
#: The prefilled depth (tokens of the compliant opening) the chapter quotes compliance at.
DEPTH_K = 10


def _rate(row: pd.Series) -> str:
    return f"{pct(row['rate'])} ({pct(row['lo'])}–{pct(row['hi'])}, {int(row['k'])} of {int(row['n'])})"


def _diff(row: pd.Series) -> str:
    return difference_text(row["difference"], row["lo"], row["hi"])


def _side(row: pd.Series, a: str, b: str) -> str:
    if row["lo"] > 0:
        return f"the {a} mask refused more"
    if row["hi"] < 0:
        return f"the {b} mask refused more"
    return "the interval includes zero"


def chapter_numbers(base_id: str) -> dict[str, str]:
    """Formatted strings the chapter glues (keys without the ``mask_`` prefix), from the masks notebook's results."""
    d = results_dir_for(EXPERIMENT, base_id)
    prov = read_json(d / "provenance.json")
    models = prov["models"]
    masks = models[1:]
    recipe = {m: m.rsplit("-", 1)[-1] for m in masks}
    key = {base_id: "base", **recipe}
    family = read_table(d / "family_rates.csv")
    groups = read_table(d / "group_rates.csv")
    contrasts = read_table(d / "contrasts.csv")
    training = read_table(d / "training.csv").set_index("model")
    style = read_table(d / "style_auc.csv")
    out = {"n_pairs": str(prov["n_pairs"]), "base": read_json(results_dir_for("slippage", base_id) / "provenance.json")
           ["model"]["name"].split(" (")[0]}
    for m in models:
        k = key[m]
        f = family[(family["model"] == m) & (family["family"] == "direct")].set_index("variant")
        out[f"{k}_direct_t"] = _rate(f.loc["target"])
        out[f"{k}_direct_b"] = _rate(f.loc["benign"])
        g = groups[groups["model"] == m].set_index(["variant", "training"])
        for variant in ("target", "benign"):
            for group, gk in (("shown in training", "shown"), ("never trained", "never")):
                if (variant, group) in g.index:
                    out[f"{k}_{gk}_{variant[0]}"] = _rate(g.loc[(variant, group)])
        bar = read_table(results_dir_for("slippage", m) / "harm_bar.csv").iloc[0]
        out[f"{k}_bar"] = f"{points(bar['difference'])} points (95% CI {points(bar['lo'])} to {points(bar['hi'])})"
        sweep = read_table(results_dir_for("depth", m) / "compliance_sweep.csv").set_index("depth")
        if DEPTH_K in sweep.index:
            out[f"{k}_depth"] = _rate(sweep.loc[DEPTH_K])
        out[f"{k}_depth0"] = _rate(sweep.loc[0])
        if m == base_id:
            out["depth_n"] = str(int(sweep.loc[0, "n"]))
    out["depth_k"] = str(DEPTH_K)
    for _, row in contrasts.iterrows():
        a, b = key[row["a"]], key[row["b"]]
        group = {"shown in training": "shown", "never trained": "never"}.get(row["group"], row["group"])
        name = f"{a}_vs_{b}_{group}_{row['variant'][0]}"
        out[name] = _diff(row)
        out[f"{name}_side"] = _side(row, a, b)
    for m in masks:
        t = training.loc[m]
        k = key[m]
        out[f"{k}_examples"] = str(int(t["n_examples"]))
        out[f"{k}_tokens"] = f"{int(t['training_tokens']):,}"
        out[f"{k}_cpu_min"] = f"{t['cpu_seconds'] / 60:.0f}"
        out[f"{k}_wall_min"] = f"{t['wall_seconds'] / 60:.1f}"
        out[f"{k}_tps"] = f"{t['tokens_per_second']:.0f}"
        out[f"{k}_loss"] = f"{t['final_loss']:.2f}"
        out[f"{k}_epochs"] = str(int(t["epochs"]))
        out[f"{k}_steps"] = str(int(t["steps"]))
        out[f"{k}_hash"] = str(t["data_hash"])[:12]
        record = read_json(results_dir_for("slippage", m) / "provenance.json")["model"]["training"]
        out["n_dev_pairs"] = str(sum(i.endswith("-t") for i in record["data"]["items"]))  # target ids end in -t
        if record["data"].get("general_requests"):
            out["n_general"] = str(record["data"]["general_requests"])
            out["general_version"] = str(record["data"]["general_version"])
        out["never_families"] = ", ".join(f.replace("_", " ") for f in record["data"]["families_never_trained"])
        out["trl"] = record["software"]["trl"]
        out["peft"] = record["software"]["peft"]
    short = {"direct": "direct", "shown in training": "shown", "never trained": "never"}
    for _, row in read_table(d / "discrimination.csv").iterrows():
        out[f"{key[row['model']]}_track_{short[row['group']]}"] = _diff(row)
    for _, row in read_table(d / "discrimination_contrasts.csv").iterrows():
        name = f"track_{key[row['a']]}_vs_{key[row['b']]}_{short[row['group']]}"
        out[name] = _diff(row)
        out[f"{name}_side"] = _side(row, key[row["a"]], key[row["b"]]).replace("refused more", "tracked harm better")
    if "shallow" in recipe.values() and "deep" in recipe.values():
        by = {recipe[m]: training.loc[m] for m in masks}
        out["cost_ratio_tokens"] = f"{by['deep']['training_tokens'] / by['shallow']['training_tokens']:.1f}"
        out["cost_ratio_cpu"] = f"{by['deep']['cpu_seconds'] / by['shallow']['cpu_seconds']:.1f}"
    for _, row in style.iterrows():
        name = f"auc_{key[row['positive']]}_{key[row['negative']]}"
        counts = f"{int(row['n_positive'])} and {int(row['n_negative'])} refusals"
        out[name] = (f"{row['auc']:.2f} (95% CI {row['lo']:.2f}–{row['hi']:.2f}; {counts})" if pd.notna(row["auc"])
                     else f"not computable ({counts})")
    judge = read_json(results_dir_for("slippage", masks[0]) / "provenance.json")["judge"]["name"]  # who labelled them
    ood = read_table("experiments/results/judge_validation/ood_agreement.csv")
    for m in masks:
        row = ood[(ood["grouping"] == "model") & (ood["group"] == m) & (ood["judge"] == judge)]
        if len(row):
            r = row.iloc[0]
            out[f"{key[m]}_judge_kappa"] = f"{r['kappa']:.2f} (95% CI {r['kappa_lo']:.2f}–{r['kappa_hi']:.2f}, n = {int(r['n'])})"
            out[f"{key[m]}_judge_rates"] = (f"refusals in {pct(r['judge_refusal_rate'])} of the sampled replies, where the hand labels "
                                            f"found {pct(r['hand_refusal_rate'])}")
    out["judge"] = judge
    for _, row in read_table(d / "first_token_auc.csv").iterrows():
        out[f"first_{key[row['positive']]}_{key[row['negative']]}"] = (
            f"{row['auc']:.2f} (95% CI {row['lo']:.2f}–{row['hi']:.2f}, {int(row['n_requests'])} requests)")
    return out
