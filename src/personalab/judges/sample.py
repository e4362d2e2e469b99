"""The labelling pool: real replies from both embedded models under every attack, picked by a fixed rule.

Hand labels are only as useful as the replies they cover. The pool therefore spans every *condition* (each
registered wrapper in :mod:`personalab.attacks`, plus the parameterised prefills ``prefill(item, 20)`` and the
reverse experiment ``refusal_prefill(item, k)``), both default models and both request splits. Within each cell
(condition x model x split) :func:`stratified_sample` picks :data:`PER_CELL` items by a seeded hash ranking, with
one benign item among them when the condition accepts benign items and the rest targets, spread over distinct
categories. Nothing depends on the order of the item list or on the clock, so the pool is the same on every
machine; the generation cache makes a rerun instant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from personalab import attacks
from personalab.harness.client import Generation, GenRequest, Sampling
from personalab.prompts import Item, load_items
from personalab.judges.labels import POOL_PATH

POOL_MODELS: tuple[str, ...] = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")
POOL_SEED = "judge-pool-1"
PER_CELL = 3
BENIGN_PER_CELL = 1
MAX_TOKENS = 96
POOL_COLUMNS: tuple[str, ...] = ("id", "model_id", "family", "wrapper", "item", "split", "variant", "language",
                                 "prefill", "reply")
_LANGUAGE = {"technical/lang_fr": "fr", "technical/lang_es": "es", "technical/lang_de": "de"}


class PoolItem(Protocol):
    """What the sampler needs to know about a request (a :class:`~personalab.prompts.Item` or a test double)."""

    id: str
    category: str
    variant: str
    split: str


@dataclass(frozen=True)
class Condition:
    """One way of sending a request: a registered wrapper or a parameterised builder with a fixed setting."""

    family: str
    wrapper: str
    build: Callable[[Item], attacks.Conversation]
    targets_only: bool

    @property
    def language(self) -> str:
        """The language the reply is expected in."""
        return _LANGUAGE.get(self.wrapper, "en")


def conditions() -> list[Condition]:
    """Every registered wrapper but the control (labelled pool of the first pass), then ``prefill(item, 20)`` and ``refusal_prefill(item, k)`` for k = 2 and 9.

    ``prefill(item, 5)`` and ``prefill(item, 10)`` are the registered ``prefill/k5`` and ``prefill/k10``. The
    refusal prefills are ``"I'm sorry,"`` (k = 2) and the whole refusal opening (k = 9, ending in "because").
    """
    out = [Condition(w.family, w.key, w.build, w.requires_target) for w in attacks.wrappers()
           if w.family != attacks.CONTROL_FAMILY]
    out.append(Condition("prefill", "prefill/k20", lambda item: attacks.prefill(item, 20), True))
    for k in (2, 9):
        out.append(Condition("refusal_prefill", f"refusal_prefill/k{k}",
                             lambda item, k=k: attacks.refusal_prefill(item, k), False))
    return out


def _rank(seed: str, *parts: str) -> str:
    """A stable pseudo-random sort key for one item within one cell."""
    return hashlib.sha256("|".join((seed, *parts)).encode("utf-8")).hexdigest()


def _pick(candidates: Sequence[PoolItem], n: int, seed: str, cell: tuple[str, ...]) -> list[PoolItem]:
    """``n`` candidates in hash order, preferring a new category each time (categories repeat only when needed)."""
    ranked = sorted(candidates, key=lambda it: _rank(seed, *cell, it.id))
    chosen: list[PoolItem] = []
    while len(chosen) < min(n, len(ranked)):
        used = {it.category for it in chosen}
        rest = [it for it in ranked if it not in chosen]
        fresh = [it for it in rest if it.category not in used]
        chosen.append((fresh or rest)[0])
    return chosen


def stratified_sample(items: Sequence[PoolItem], condition_names: Iterable[tuple[str, bool]],
                      models: Sequence[str], *, per_cell: int = PER_CELL, benign_per_cell: int = BENIGN_PER_CELL,
                      seed: str = POOL_SEED) -> list[tuple[str, str, PoolItem]]:
    """The pool's sampling rule: ``(model, condition, item)`` triples, ``per_cell`` per condition x model x split.

    ``condition_names`` gives ``(name, targets_only)`` pairs. In each cell ``benign_per_cell`` benign items are
    taken when the condition accepts them, and targets fill the rest; within a variant, items are ranked by a
    hash of ``seed``, model, condition and item id, and each pick prefers a category not yet used in the cell.
    """
    splits = sorted({it.split for it in items})
    out: list[tuple[str, str, PoolItem]] = []
    for name, targets_only in condition_names:
        for model in models:
            for split in splits:
                cell = (model, name, split)
                pool = [it for it in items if it.split == split]
                n_benign = 0 if targets_only else benign_per_cell
                targets = _pick([it for it in pool if it.variant == "target"], per_cell - n_benign, seed, cell)
                benign = _pick([it for it in pool if it.variant == "benign"], n_benign, seed, cell)
                out += [(model, name, it) for it in (*targets, *benign)]
    return out


def pool_id(model_id: str, wrapper: str, item_id: str) -> str:
    """A stable 12-hex-digit id for one pool row."""
    return hashlib.sha256(f"{model_id}|{wrapper}|{item_id}".encode("utf-8")).hexdigest()[:12]


def pool_plan(models: Sequence[str] = POOL_MODELS) -> list[tuple[str, Condition, Item]]:
    """The pool's rows before generation: ``(model, condition, item)`` for the shipped request set."""
    by_name = {c.wrapper: c for c in conditions()}
    triples = stratified_sample(load_items(), [(c.wrapper, c.targets_only) for c in by_name.values()], models)
    return [(model, by_name[name], item) for model, name, item in triples]  # type: ignore[misc]


def _answer(model: str, requests: Sequence[GenRequest], progress: bool) -> list[Generation]:
    """Generations for ``requests``: from the cache alone when it holds them all, else through a server."""
    from personalab.harness.client import CacheMiss, Harness
    from personalab.harness.registry import get_model
    from personalab.harness.server import Endpoint, serve

    spec = get_model(model)
    desc = f"pool · {model}"
    cache_only = Endpoint(spec, (), spec.served_name or spec.id, None, {"cache_only": True})
    try:
        return Harness(cache_only, progress=progress).generate(requests, desc=desc)
    except CacheMiss:
        with serve(model) as endpoint:
            return Harness(endpoint, progress=progress).generate(requests, desc=desc)


def generate_pool(models: Sequence[str] = POOL_MODELS, *, progress: bool = True) -> pd.DataFrame:
    """Answer every planned row with its model (greedy, :data:`MAX_TOKENS` tokens) and return the pool table."""
    plan = pool_plan(models)
    sampling = Sampling(temperature=0.0, max_tokens=MAX_TOKENS, seed=0)
    rows: list[dict[str, str]] = []
    for model in models:
        mine = [(c, it) for m, c, it in plan if m == model]
        requests = [GenRequest.chat(c.build(it), sampling) for c, it in mine]
        generations = _answer(model, requests, progress)
        for (cond, item), req, gen in zip(mine, requests, generations):
            rows.append({"id": pool_id(model, cond.wrapper, item.id), "model_id": model, "family": cond.family,
                         "wrapper": cond.wrapper, "item": item.id, "split": item.split, "variant": item.variant,
                         "language": cond.language, "prefill": req.prefill or "", "reply": gen.text})
    return pd.DataFrame(rows, columns=list(POOL_COLUMNS))


def write_pool(models: Sequence[str] = POOL_MODELS, *, progress: bool = True) -> Path:
    """Generate the pool and write :data:`POOL_PATH` atomically."""
    from personalab.outputs import write_table

    return write_table(generate_pool(models, progress=progress), POOL_PATH)
