"""The probe pool: replies under conditions the judges were never trained on, for out-of-distribution validation.

Built from the conditions of :mod:`personalab.attacks.judge_probe` (named personas, fiction frames whose
characters may decline, list answers, recovering prefills, degenerate high-temperature text, Italian and
Portuguese requests) on DEV-split items only, from every model in :data:`PROBE_MODELS` that is pulled. In each
cell (condition x model) :func:`personalab.judges.sample.stratified_sample` picks the items; the first
:data:`GREEDY_SHARE` of them are answered greedily and the rest at :data:`WARM_TEMPERATURE`; the degenerate cell
uses :data:`HOT_TEMPERATURE`. Replies run to :data:`MAX_TOKENS` tokens so that the truncation study has the whole
reply. The file has the columns of ``pool.csv`` plus ``temperature`` and ``max_tokens``.

A later *fresh draw* (:data:`FRESH_SPLIT`, :data:`FRESH_SEED`) takes HELD-OUT items instead, with the same
conditions and temperatures: its rows never enter any judge's training (the trainable judges learn from dev-split
labels only), so labelling them checks the judges on replies unlike any they were built on, and tightens the
intervals of the groups where they fall short.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from personalab.attacks.judge_probe import PROBES, probe_family
from personalab.harness.client import GenRequest, Sampling
from personalab.judges.labels import PROBE_POOL_PATH
from personalab.judges.sample import POOL_COLUMNS, _answer, pool_id, stratified_sample
from personalab.prompts import Item, load_items

PROBE_MODELS: tuple[str, ...] = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct")
"""The book's two models and the larger Qwen sibling, which no experiment and no judge training uses."""
PROBE_SEED = "judge-probe-1"
MAX_TOKENS = 160
WARM_TEMPERATURE = 0.8
HOT_TEMPERATURE = 1.6
GREEDY_SHARE = 2 / 3
PER_FAMILY = 16
"""Replies per probe family and model (split evenly over the family's conditions)."""
BENIGN_SHARE = 1 / 3
FRESH_SPLIT = "heldout"
FRESH_SEED = "judge-probe-fresh-1"
PROBE_COLUMNS: tuple[str, ...] = (*POOL_COLUMNS, "temperature", "max_tokens")


def probe_conditions(languages: Sequence[str] = ("fr", "es", "de", "it", "pt"), *,
                     include_other: bool = True) -> list[str]:
    """The probe condition keys to generate: every non-language probe (unless ``include_other`` is false), then
    ``lang_<xx>`` for ``languages``; an unknown language is refused before any model is served."""
    unknown = [lang for lang in languages if f"lang_{lang}/system" not in PROBES]
    if unknown:
        raise ValueError(f"No language probe for {', '.join(unknown)}; known: "
                         f"{', '.join(k[5:7] for k in PROBES if k.startswith('lang_'))}.")
    keys = [k for k in PROBES if not probe_family(k).startswith("lang_")] if include_other else []
    return keys + [f"lang_{lang}/system" for lang in languages]


def _temperature(key: str, rank: int, n: int) -> float:
    """The sampling temperature of the ``rank``-th of ``n`` picks in a cell."""
    if probe_family(key) == "degenerate":
        return HOT_TEMPERATURE
    return 0.0 if rank < round(n * GREEDY_SHARE) else WARM_TEMPERATURE


def probe_plan(models: Sequence[str], keys: Sequence[str], *, split: str = "dev", per_family: int = PER_FAMILY,
               seed: str = PROBE_SEED) -> list[tuple[str, str, Item, float]]:
    """``(model, condition, item, temperature)`` rows: items of ``split`` only, ``per_family`` per family and
    model (the first draw: dev items, :data:`PER_FAMILY`, :data:`PROBE_SEED`)."""
    if per_family < 1:
        raise ValueError(f"per_family must be at least 1, not {per_family}.")
    items = [it for it in load_items() if it.split == split]
    if not items:
        raise ValueError(f"No request of the split {split!r}; the request set has "
                         f"{', '.join(sorted({it.split for it in load_items()}))}.")
    plan = []
    for key in keys:
        siblings = [k for k in keys if probe_family(k) == probe_family(key)]
        n = max(per_family // len(siblings), 1)
        lang = probe_family(key).removeprefix("lang_") if probe_family(key).startswith("lang_") else None
        usable = [it for it in items if lang is None or lang in it.translations]
        triples = stratified_sample(usable, [(key, False)], models, per_cell=n,
                                    benign_per_cell=round(n * BENIGN_SHARE), seed=seed)
        for model in models:
            mine = [it for m, _, it in triples if m == model]
            plan += [(model, key, it, _temperature(key, r, len(mine))) for r, it in enumerate(mine)]
    return plan


def generate_probe_pool(models: Sequence[str], keys: Sequence[str], *, progress: bool = True,
                        **draw: Any) -> pd.DataFrame:
    """Answer every planned row with its model and return the probe pool table (``draw``: the keyword arguments
    of :func:`probe_plan`)."""
    plan = probe_plan(models, keys, **draw)
    rows: list[dict[str, object]] = []
    for model in models:
        mine = [(key, it, t) for m, key, it, t in plan if m == model]
        requests = [GenRequest.chat(PROBES[key](it), Sampling(temperature=t, max_tokens=MAX_TOKENS, seed=0))
                    for key, it, t in mine]
        for (key, item, t), req, gen in zip(mine, requests, _answer(model, requests, progress)):
            family = probe_family(key)
            rows.append({"id": pool_id(model, f"{key}@t{t:g}", item.id), "model_id": model, "family": family,
                         "wrapper": f"probe/{key}", "item": item.id, "split": item.split, "variant": item.variant,
                         "language": family.removeprefix("lang_") if family.startswith("lang_") else "en",
                         "prefill": req.prefill or "", "reply": gen.text, "temperature": t,
                         "max_tokens": MAX_TOKENS})
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS))


def write_probe_pool(models: Sequence[str], keys: Sequence[str], *, progress: bool = True,
                     path: Path = PROBE_POOL_PATH, **draw: Any) -> Path:
    """Generate the probe pool and write it, keeping rows of earlier runs that this run did not regenerate."""
    from personalab.outputs import read_table, write_table
    from personalab.paths import REPO_ROOT

    new = generate_probe_pool(models, keys, progress=progress, **draw)
    if (REPO_ROOT / path).exists():
        old = read_table(path)
        new = pd.concat([old[~old["id"].isin(new["id"])], new], ignore_index=True)
    return write_table(new, path)
