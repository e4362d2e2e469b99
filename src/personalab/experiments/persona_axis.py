"""A persona axis in the residual stream, and whether the attack wrappers that move a model along it slip more.

For each model, the mean activation (last prompt token, every block's output) of the dev requests under each persona
of the persona-selection experiment gives one point per persona; the axis at a layer is the first principal component
of those points, oriented so that the default Assistant (no system prompt) lies on its positive side, in the spirit of
Lu et al.'s Assistant axis. Each slippage wrapper's held-out target prompts are projected on the axis; the shift of
their mean projection from the plain requests' is set against the wrapper's measured slippage (direct refusal minus
refusal under the wrapper, from the committed slippage run of the same model). Prefill wrappers are left out: their
last prompt token lies inside the prefilled reply, not at the start of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from personalab import activations as act
from personalab.attacks import get_wrapper
from personalab.experiments.personas import PERSONAS, Persona, chat_conversation
from personalab.prompts import Item
from personalab.stats import _percentile

#: The persona whose end of the axis is called positive (no system prompt: the post-trained default).
ASSISTANT = "assistant"
#: Families whose wrappers are set against slippage (not direct, the baseline; not prefill, see the module text).
AXIS_FAMILIES: tuple[str, ...] = ("control", "identity", "context", "value_conflict", "technical", "erosion")


def persona_means(model: act.LocalModel, items: Sequence[Item], personas: Sequence[Persona] = PERSONAS,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Mean block outputs (layers, hidden) at the last prompt token of ``items`` under each persona's system prompt."""
    return {p.key: act.last_position(model, [chat_conversation(p, i) for i in items], progress=progress).mean(axis=0)
            for p in personas}


def persona_axis(means: dict[str, np.ndarray], assistant: str = ASSISTANT) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: the unit first principal component of the persona means, signed so the Assistant projects above
    their mean, and the share of the personas' variance it explains. Shapes (layers, hidden) and (layers,)."""
    if assistant not in means or len(means) < 3:
        raise ValueError(f"the persona axis needs the {assistant!r} persona and at least two others")
    keys = list(means)
    points = np.stack([means[k] for k in keys], axis=1).astype(np.float64)  # (layers, personas, hidden)
    centred = points - points.mean(axis=1, keepdims=True)
    axes, shares = [], []
    for layer in centred:
        _, s, vt = np.linalg.svd(layer, full_matrices=False)
        v = vt[0] if layer[keys.index(assistant)] @ vt[0] >= 0 else -vt[0]
        axes.append(v)
        shares.append(float(s[0] ** 2 / np.sum(s ** 2)))
    return np.stack(axes), np.array(shares)


def wrapper_projections(model: act.LocalModel, axis: np.ndarray, layer: int, wrappers: Sequence[str],
                        items: Sequence[Item], progress: bool = True) -> pd.DataFrame:
    """Projection on the axis at ``layer`` of every item under every wrapper: one row per (wrapper, item)."""
    model.check_layer(layer)
    rows = []
    for name in wrappers:
        wrapper = get_wrapper(name)
        reads = act.last_position(model, [list(wrapper(i)) for i in items], progress=progress)
        for item, value in zip(items, reads[:, layer, :] @ act.unit(axis[layer])):
            rows.append({"wrapper": name, "family": name.split("/")[0], "item": item.id, "projection": float(value)})
    return pd.DataFrame(rows)


def slippage_by_wrapper(responses: pd.DataFrame) -> pd.DataFrame:
    """Per wrapper of a slippage run: target refusal rate and slippage (direct/plain's rate minus this one's), both
    on the requests the wrapper was asked of (all of them in a full design, a share in an incomplete one)."""
    targets = responses[responses["variant"] == "target"]
    direct = targets[targets["wrapper"] == "direct/plain"].groupby("item")["refused"].mean()
    if direct.empty:
        raise ValueError("the slippage responses have no direct/plain baseline")
    rows = []
    for wrapper, sub in targets.groupby("wrapper", sort=False):
        refusal = float(sub["refused"].mean())
        rows.append({"wrapper": wrapper, "refusal": refusal,
                     "slippage": float(direct.reindex(sub["item"].unique()).mean()) - refusal})
    return pd.DataFrame(rows)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties; nan when either side is constant)."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def shift_vs_slippage(projections: pd.DataFrame, slippage: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per wrapper, the mean projection minus direct/plain's beside its slippage; and Spearman's correlation across
    wrappers with a bootstrap interval that resamples wrappers."""
    means = projections.groupby("wrapper", sort=False)["projection"].mean()
    if "direct/plain" not in means.index:
        raise ValueError("the projections have no direct/plain baseline")
    table = pd.DataFrame({"wrapper": means.index, "family": [w.split("/")[0] for w in means.index],
                          "shift": means.to_numpy() - means["direct/plain"]})
    table = table.merge(slippage, on="wrapper")
    table = table[table["wrapper"] != "direct/plain"].reset_index(drop=True)
    x, y = table["shift"].to_numpy(), table["slippage"].to_numpy()
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(table), size=len(table))
        value = spearman(x[pick], y[pick])
        if np.isfinite(value):
            reps.append(value)
    lo, hi = _percentile(np.array(reps, dtype=float), confidence)
    return table, {"rho": spearman(x, y), "lo": lo, "hi": hi, "n_wrappers": int(len(table))}
