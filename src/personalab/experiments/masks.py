"""The masks compared: one base model and the masks trained from it (``personalab.train``), asked the same requests.

The slippage experiment's replies of every model are stacked with a ``model`` column; because every model saw the
same request pairs under the same wrappers, a contrast between two models resamples request pairs once for both
(the pairing is kept). Families split into those the deep mask's training showed and those it never saw
(:data:`personalab.train.HELD_OUT_FAMILIES`), which is the contrast the "Building the mask" chapter is about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from personalab.stats import bootstrap_contrast, rate_table
from personalab.train import TRAINED_FAMILIES

#: Slippage families that are attacks (``direct`` is the baseline, ``control`` the neutral-filler check).
ATTACK_FAMILIES: tuple[str, ...] = ("identity", "context", "prefill", "value_conflict", "technical", "erosion")


def trained_or_not(family: str) -> str:
    """"baseline" for direct/control, "shown in training" for the deep mask's families, else "never trained"."""
    if family in ("direct", "control"):
        return "baseline"
    return "shown in training" if family in TRAINED_FAMILIES else "never trained"


def short_labels(models: Sequence[str]) -> dict[str, str]:
    """Figure labels: "<recipe> mask" for a trained model, its display name (without notes) for any other."""
    from personalab.harness.registry import get_model

    out = {}
    for model in models:
        spec = get_model(model)
        out[model] = f"{spec.training.recipe} mask" if spec.training else spec.display_name.split(" (")[0]
    return out


def stack(responses: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The slippage replies of several models as one table with a ``model`` column (in the mapping's order)."""
    if not responses:
        raise ValueError("no models to compare")
    parts = [df.assign(model=model) for model, df in responses.items()]
    out = pd.concat(parts, ignore_index=True)
    out["model"] = pd.Categorical(out["model"], categories=list(responses), ordered=True)
    return out


def family_table(stacked: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate with its Wilson interval per model, variant (target / benign twin) and family."""
    table = rate_table(stacked, by=["model", "variant", "family"], outcome="refused")
    table["training"] = table["family"].map(trained_or_not)
    return table


def group_table(stacked: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate per model and variant with the attack families pooled by training group (Wilson intervals)."""
    attacked = stacked[stacked["family"].isin(ATTACK_FAMILIES)]
    return rate_table(attacked.assign(training=attacked["family"].map(trained_or_not)),
                      by=["model", "variant", "training"], outcome="refused")


def model_contrasts(stacked: pd.DataFrame, a: str, b: str, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Refusal of ``a`` minus refusal of ``b`` on targets and twins, per family and per training group.

    Rows: each family, then the attack families pooled by whether the deep mask's training showed them. The
    interval resamples request pairs (both models' replies to a pair stay together).
    """
    rows: list[dict[str, Any]] = []
    sub = stacked[stacked["model"].isin([a, b])].assign(arm=lambda d: d["model"].astype(str))
    groups: list[tuple[str, str, Sequence[str]]] = [(f, "family", [f]) for f in dict.fromkeys(sub["family"])]
    for name in ("shown in training", "never trained"):
        fams = [f for f in ATTACK_FAMILIES if trained_or_not(f) == name]
        groups.append((name, "training", fams))
    for variant in ("target", "benign"):
        for group, level, fams in groups:
            part = sub[(sub["variant"] == variant) & sub["family"].isin(fams)]
            if part["arm"].nunique() < 2:
                continue
            c = bootstrap_contrast(part, group="arm", weights={a: 1.0, b: -1.0}, outcome="refused", cluster="pair",
                                   n_boot=n_boot, seed=seed)
            rows.append({"a": a, "b": b, "variant": variant, "level": level, "group": group,
                         "difference": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p, "n_pairs": c.n_clusters})
    return pd.DataFrame(rows)


def _family_groups(families: Sequence[str]) -> list[tuple[str, Sequence[str]]]:
    """The direct baseline, then the attack families pooled by whether the deep mask's training showed them."""
    groups: list[tuple[str, Sequence[str]]] = [("direct", ["direct"])] if "direct" in families else []
    for name in ("shown in training", "never trained"):
        fams = [f for f in ATTACK_FAMILIES if trained_or_not(f) == name and f in families]
        if fams:
            groups.append((name, fams))
    return groups


def discrimination(stacked: pd.DataFrame, models: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Refusal of targets minus refusal of their twins per model and family group: the harm bar, under attack.

    A mask that refuses every request "holds" on targets without tracking harm; this difference does not reward
    that. The interval resamples request pairs (a target and its twin stay together).
    """
    rows: list[dict[str, Any]] = []
    arms = stacked.assign(arm=stacked["model"].astype(str) + "|" + stacked["variant"].astype(str))
    for group, fams in _family_groups(list(dict.fromkeys(stacked["family"]))):
        part = arms[arms["family"].isin(fams)]
        for model in models:
            c = bootstrap_contrast(part, group="arm", weights={f"{model}|target": 1.0, f"{model}|benign": -1.0},
                                   outcome="refused", cluster="pair", n_boot=n_boot, seed=seed)
            rows.append({"model": model, "group": group, "difference": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p,
                         "n_pairs": c.n_clusters})
    return pd.DataFrame(rows)


def discrimination_contrast(stacked: pd.DataFrame, a: str, b: str, n_boot: int = 2000, seed: int = 0
                            ) -> pd.DataFrame:
    """(target minus twin refusal) of ``a`` minus that of ``b``, per family group, paired over request pairs."""
    rows: list[dict[str, Any]] = []
    arms = stacked.assign(arm=stacked["model"].astype(str) + "|" + stacked["variant"].astype(str))
    weights = {f"{a}|target": 1.0, f"{a}|benign": -1.0, f"{b}|target": -1.0, f"{b}|benign": 1.0}
    for group, fams in _family_groups(list(dict.fromkeys(stacked["family"]))):
        c = bootstrap_contrast(arms[arms["family"].isin(fams)], group="arm", weights=weights, outcome="refused",
                               cluster="pair", n_boot=n_boot, seed=seed)
        rows.append({"a": a, "b": b, "group": group, "difference": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p,
                     "n_pairs": c.n_clusters})
    return pd.DataFrame(rows)


def tracking_drop(stacked: pd.DataFrame, models: Sequence[str], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """How much harm tracking each model loses under attack: (target minus twin refusal) asked directly minus the
    same under each pooled attack group, paired over request pairs. Zero means the mask holds."""
    rows: list[dict[str, Any]] = []
    groups = dict(_family_groups(list(dict.fromkeys(stacked["family"]))))
    if "direct" not in groups:
        raise ValueError("tracking_drop needs the direct family as its baseline")
    for group, fams in groups.items():
        if group == "direct":
            continue
        part = stacked[stacked["family"].isin([*fams, "direct"])]
        arms = part.assign(arm=part["model"].astype(str) + "|" + part["variant"].astype(str) + "|"
                           + np.where(part["family"] == "direct", "direct", "attack"))
        for model in models:
            weights = {f"{model}|target|direct": 1.0, f"{model}|benign|direct": -1.0,
                       f"{model}|target|attack": -1.0, f"{model}|benign|attack": 1.0}
            c = bootstrap_contrast(arms, group="arm", weights=weights, outcome="refused", cluster="pair",
                                   n_boot=n_boot, seed=seed)
            rows.append({"model": model, "group": group, "drop": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p,
                         "n_pairs": c.n_clusters})
    return pd.DataFrame(rows)


def training_table(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained model: method, examples, training tokens, CPU- and wall-seconds, tokens/s, final loss."""
    rows = []
    for model, rec in records.items():
        data = rec.get("data", {})
        rows.append({"model": model, "recipe": rec.get("recipe"), "method": rec.get("method"),
                     "n_examples": data.get("n_examples"), "epochs": rec.get("hyper_parameters", {}).get("epochs"),
                     "steps": rec.get("steps"), "training_tokens": rec.get("training_tokens"),
                     "cpu_seconds": rec.get("cpu_seconds"), "wall_seconds": rec.get("wall_seconds"),
                     "tokens_per_second": rec.get("tokens_per_second"), "final_loss": rec.get("final_loss"),
                     "data_hash": data.get("data_hash")})
    return pd.DataFrame(rows)


def direct_refusals(stacked: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """The judged refusals of direct target requests by ``models``, labelled by model (the detection input)."""
    sub = stacked[(stacked["wrapper"] == "direct/plain") & (stacked["variant"] == "target") & stacked["refused"]
                  & stacked["model"].isin(list(models))]
    return sub.assign(system=sub["model"].astype(str)).reset_index(drop=True)


def style_auc(refusals: pd.DataFrame, a: str, b: str, folds: int = 5, n_boot: int = 2000, seed: int = 0
              ) -> dict[str, Any]:
    """Can a classifier on the reply text alone tell ``a``'s direct refusals from ``b``'s? (grouped by request).

    Uses the detection experiment's classifier (MiniLM embeddings, logistic regression, folds grouped by request,
    bootstrap over requests). Returns nan AUC with the counts when either model has too few refusals to fit.
    """
    from personalab.experiments.detection import detection_auc, embed_replies

    df = refusals[refusals["system"].isin([a, b])].reset_index(drop=True)
    counts = {"n_positive": int((df["system"] == a).sum()), "n_negative": int((df["system"] == b).sum())}
    folds = min(folds, int(df["item"].nunique()))
    if min(counts.values()) < 2 or folds < 2:
        return {"positive": a, "negative": b, "auc": np.nan, "lo": np.nan, "hi": np.nan, **counts}
    try:
        return detection_auc(df, embed_replies(df), a, b, folds=folds, n_boot=n_boot, seed=seed)
    except ValueError:  # a fold with one class only: too few refusals for cross-validation
        return {"positive": a, "negative": b, "auc": np.nan, "lo": np.nan, "hi": np.nan, **counts}


def first_token_auc(probes: Mapping[str, pd.DataFrame], a: str, b: str, token: str = "I", n_boot: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """Can the probability of the reply's first token (``token``) on direct target requests tell ``a`` from ``b``?

    ``probes`` are the depth experiment's ``responses_probe`` tables (a ``top`` column of first-token probabilities).
    AUC of ``a`` scoring higher, with a bootstrap over requests (both models' answers to a request stay together).
    """
    import ast

    from personalab.experiments.detection import auc_interval

    rows = []
    for label, model in ((1, a), (0, b)):
        d = probes[model]
        d = d[(d["condition"] == "direct/plain") & (d["variant"] == "target")]
        for item, top in zip(d["item"], d["top"]):
            probs = ast.literal_eval(top) if isinstance(top, str) else dict(top)
            rows.append((label, float(probs.get(token, 0.0)), item))
    y, score, groups = (np.array(col, dtype=object) for col in zip(*rows))
    value, lo, hi = auc_interval(y.astype(int), score.astype(float), groups, n_boot=n_boot, seed=seed)
    return {"positive": a, "negative": b, "token": token, "auc": value, "lo": lo, "hi": hi,
            "n_requests": int(len(set(groups.tolist())))}
