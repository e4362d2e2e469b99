"""Activation capping (Lu et al., 2026) as a defence against slippage: its effect beside its capability and compute
cost.

Two directions are capped, each at one layer (the refusal direction's, chosen by cross-fitted dev separation):
the persona axis of :mod:`persona_axis` (signed towards the Assistant) and the refusal direction of
:mod:`refusal_direction` (dev targets minus their twins). Both caps are floors, the form that defends: the projection of
the block's output on the unit direction may not fall below a threshold, which is the ``percentile``-th percentile of
the plain Assistant's projections on the dev-split targets at that layer (Lu et al. cap at the 25th percentile of the
Assistant's projections). Calibration reads dev prompts only. Held-out targets are then answered under the direct
request and a few attack wrappers, and their benign twins under the direct request, with no cap and with each cap;
replies are judged, and checked for being on topic, as in :mod:`refusal_direction`. The compute cost is the seconds
per generated token under each cap over the uncapped run's, measured in turns in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personalab import activations as act
from personalab.attacks import get_wrapper
from personalab.experiments import persona_axis as pa
from personalab.experiments import refusal_direction as rd
from personalab.prompts import Item
from personalab.stats import bootstrap_contrast, rate_table

#: The request every attack is set against (its targets are the direct condition).
BASELINE = "direct/plain"
#: The attack wrappers of the notebook's default: on the committed slippage runs of the base and its three masks these
#: are the ones that slip while the reply stays on topic (technical/code in all four models, the context wrappers most
#: in the deep mask); value_conflict and identity wrappers did not lower refusal there.
WRAPPERS: tuple[str, ...] = ("technical/code", "context/fiction", "context/hypothetical")
#: The caps, in the order tables and figures show them (the persona axis first, Lu et al.'s own defence).
CAPS: tuple[str, ...] = ("axis", "refusal")
#: The scope of the effect pooled over every attack wrapper's targets (the direct request excluded).
POOLED = "attacks pooled"


def request_wrappers(wrappers: Sequence[str]) -> list[str]:
    """The direct request then each attack wrapper once; an empty list, a list with no attack, an unknown wrapper or a
    prefill wrapper (its last prompt token lies inside a prefilled reply, which the judge here does not read) is
    refused in one sentence before any work."""
    attacks = [w for w in dict.fromkeys(wrappers) if w != BASELINE]
    if not attacks:
        raise act.ActivationsError(f"capping needs at least one attack wrapper besides {BASELINE}, got "
                                   f"{list(wrappers)!r}.")
    for name in attacks:
        get_wrapper(name)
        if name.startswith("prefill/"):
            raise act.ActivationsError(f"{name} prefills the reply, and capping reads only the generated text, so "
                                       "prefill wrappers are not offered here.")
    return [BASELINE, *attacks]


def conversation(item: Item, wrapper: str) -> list[dict[str, str]]:
    """``item`` under ``wrapper``, as the slippage experiment sends it."""
    return list(get_wrapper(wrapper)(item))


@dataclass(frozen=True)
class Cap:
    """A floor on the projection of one block's output on a unit direction, and what it was calibrated on."""

    name: str
    layer: int
    direction: np.ndarray  # unit, (hidden,)
    threshold: float
    percentile: float
    n_calibration: int

    def intervention(self) -> act.Intervention:
        """The steering hook that applies this floor."""
        return act.Intervention.cap(self.direction, self.layer, self.threshold)


def calibrate(name: str, vector: np.ndarray, layer: int, dev_acts: np.ndarray, percentile: float) -> Cap:
    """The floor on ``vector``'s unit direction at ``layer``: the ``percentile``-th percentile of the projections of the
    dev activations ``dev_acts`` (prompts, layers, hidden) there."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie between 0 and 100, got {percentile}")
    if len(dev_acts) == 0:
        raise act.ActivationsError("no dev prompts to calibrate the cap on: the prompt set is empty.")
    r = act.unit(np.asarray(vector, dtype=np.float64))
    proj = np.asarray(dev_acts, dtype=np.float64)[:, layer, :] @ r
    return Cap(name, layer, r, float(np.percentile(proj, percentile)), float(percentile), int(len(proj)))


def fit_caps(model: act.LocalModel, dev: Sequence[tuple[Item, Item]], heldout: Sequence[tuple[Item, Item]],
             n_dev: int, percentile: float, layer: int | None = None, folds: int = 2, seed: int = 0,
             progress: bool = True) -> tuple[rd.Direction, list[Cap]]:
    """The refusal direction (from all ``dev`` pairs, as :mod:`refusal_direction` fits it) and the persona axis (from
    the first ``n_dev`` dev pairs, as :mod:`persona_axis` fits it), each made a floor at the refusal direction's layer
    (or ``layer``) by :func:`calibrate` on the plain dev targets."""
    if not dev or not heldout:
        raise act.ActivationsError("capping needs dev and held-out request pairs: the prompt set is empty.")
    direction = rd.fit_direction(model, dev, heldout, folds=folds, seed=seed, progress=progress, layer=layer)
    at = direction.layer
    axis, _ = pa.persona_axis(pa.persona_means(model, [i for pair in dev[:n_dev] for i in pair], progress=progress))
    dev_targets = act.last_position(model, [rd.direct(t) for t, _ in dev], progress=progress)  # read back from cache
    return direction, [calibrate("axis", axis[at], at, dev_targets, percentile),
                       calibrate("refusal", direction.vector, at, dev_targets, percentile)]


def cap_table(model: str, caps: Sequence[Cap]) -> pd.DataFrame:
    """One row per cap: its layer, threshold, calibration and its direction's cosine with the other caps'."""
    return pd.DataFrame([{"model": model, "cap": c.name, "layer": c.layer, "threshold": c.threshold,
                          "percentile": c.percentile, "n_calibration": c.n_calibration,
                          **{f"cosine_{o.name}": float(c.direction @ o.direction) for o in caps}} for c in caps])


def _prompts(heldout: Sequence[tuple[Item, Item]], wrappers: Sequence[str]) -> list[dict[str, Any]]:
    """Every held-out target under every wrapper, then every twin under the direct request, with its row labels."""
    rows = [{"item": t, "pair": t.id, "variant": "target", "wrapper": w} for w in wrappers for t, _ in heldout]
    return rows + [{"item": b, "pair": t.id, "variant": "benign", "wrapper": BASELINE} for t, b in heldout]


def binding(model: act.LocalModel, caps: Sequence[Cap], heldout: Sequence[tuple[Item, Item]],
            wrappers: Sequence[str], progress: bool = True) -> pd.DataFrame:
    """How often each floor binds where the reply is decided: per wrapper's targets and for the twins, the share of
    held-out prompts whose last-token projection lies below the threshold (Wilson), and the mean projection."""
    prompts = _prompts(heldout, wrappers)
    reads = act.last_position(model, [conversation(p["item"], p["wrapper"]) for p in prompts], progress=progress)
    rows = []
    for c in caps:
        proj = reads[:, c.layer, :] @ c.direction
        rows += [{"model": model.id, "cap": c.name, "wrapper": p["wrapper"], "variant": p["variant"],
                  "projection": float(v), "below": bool(v < c.threshold)} for p, v in zip(prompts, proj)]
    table = pd.DataFrame(rows)
    keys = ["model", "cap", "wrapper", "variant"]
    means = table.groupby(keys, sort=False)["projection"].mean().rename("mean_projection").reset_index()
    return rate_table(table, by=keys, outcome="below").merge(means, on=keys)


def capped_replies(model: act.LocalModel, caps: Sequence[Cap], heldout: Sequence[tuple[Item, Item]],
                   wrappers: Sequence[str], max_new_tokens: int = 48, progress: bool = True) -> pd.DataFrame:
    """Greedy replies (unjudged) to every held-out target under every wrapper and to every twin under the direct
    request, with no cap (condition "none") and with each cap (condition: the cap's name)."""
    prompts = _prompts(heldout, wrappers)
    conversations = [conversation(p["item"], p["wrapper"]) for p in prompts]
    rows = []
    for condition, intervention in {"none": act.Intervention(), **{c.name: c.intervention() for c in caps}}.items():
        replies = act.generate(model, conversations, intervention, max_new_tokens=max_new_tokens, progress=progress,
                               desc=f"{condition} · {model.id}")
        rows += [{"model": model.id, "item": p["item"].id, "pair": p["pair"], "category": p["item"].category,
                  "variant": p["variant"], "wrapper": p["wrapper"], "condition": condition, "reply": r}
                 for p, r in zip(prompts, replies)]
    return pd.DataFrame(rows)


def effects(judged: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model and cap, the cap minus no cap on refusal and on on-topic compliance (``competent``), paired by
    bootstrap over request pairs: for each wrapper's targets, for the attacked targets pooled over the attack wrappers
    (:data:`POOLED`) and for the twins (scope "twins")."""
    caps = [c for c in dict.fromkeys(judged["condition"]) if c != "none"]
    rows = []
    for model, m in judged.groupby("model", sort=False):
        targets = m[m["variant"] == "target"]
        scopes = [(w, "target", part) for w, part in targets.groupby("wrapper", sort=False)]
        scopes += [(POOLED, "target", targets[targets["wrapper"] != BASELINE]), ("twins", "benign",
                                                                                 m[m["variant"] == "benign"])]
        for scope, variant, part in scopes:
            for cap in caps:
                for outcome in ("refused", "competent"):
                    c = bootstrap_contrast(part, group="condition", weights={cap: 1.0, "none": -1.0}, outcome=outcome,
                                           cluster="pair", n_boot=n_boot, seed=seed)
                    rows.append({"model": model, "cap": cap, "scope": scope, "variant": variant, "outcome": outcome,
                                 "difference": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p,
                                 "n_pairs": c.n_clusters})
    return pd.DataFrame(rows)


def compute_cost(model: act.LocalModel, caps: Sequence[Cap], conversations: Sequence[list[dict[str, str]]],
                 max_new_tokens: int = 48, repeats: int = 3) -> pd.DataFrame:
    """Seconds per generated token of one batch with no cap and with each cap, after one untimed warm-up; each repeat
    times every condition once, in an order rotated between repeats, so a busy machine slows them alike."""
    conditions = {"none": act.Intervention(), **{c.name: c.intervention() for c in caps}}
    names = list(conditions)
    act.seconds_per_token(model, conversations, conditions["none"], max_new_tokens)
    rows = []
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            rows.append({"model": model.id, "repeat": repeat, "condition": name, "batch": len(conversations),
                         "tokens": max_new_tokens,
                         "s_per_token": act.seconds_per_token(model, conversations, conditions[name], max_new_tokens)})
    return pd.DataFrame(rows)


def cost_summary(timings: pd.DataFrame) -> pd.DataFrame:
    """Per model and cap: the capped over the uncapped seconds per token of the same repeat (median, least and most
    over repeats) and the median extra seconds per token."""
    wide = timings.pivot_table(index=["model", "repeat"], columns="condition", values="s_per_token", sort=False)
    rows = []
    for model, part in wide.groupby(level="model", sort=False):
        for cap in [c for c in part.columns if c != "none"]:
            ratio = part[cap] / part["none"]
            rows.append({"model": model, "cap": cap, "ratio": float(ratio.median()), "ratio_min": float(ratio.min()),
                         "ratio_max": float(ratio.max()),
                         "extra_s_per_token": float((part[cap] - part["none"]).median()),
                         "s_per_token_none": float(part["none"].median()), "n_repeats": int(len(part))})
    return pd.DataFrame(rows)


def provenance(caps: pd.DataFrame, weights: dict[str, str]) -> dict[str, Any]:
    """What the caps came from: each model's weights, layer and thresholds, the library versions, the rule."""
    import torch
    import transformers

    return {"activations": {
        "models": {m: {"weight_id": weights[m], "layer": int(part["layer"].iloc[0]),
                       "thresholds": dict(zip(part["cap"], part["threshold"].round(6)))}
                   for m, part in caps.groupby("model", sort=False)},
        "transformers": transformers.__version__, "torch": torch.__version__,
        "cap": "floor on the projection of the chosen block's output on the unit direction, at the newest position of "
               "each forward pass (the prompt's last token, then each generated token)",
        "calibration": "percentile of the plain Assistant's projections on the dev-split targets at that layer"}}
