"""Add fresh replies under the labelling pool's own conditions to the probe pool, for a later labelling pass.

The first pool (``personalab judges sample``) has three replies per condition, model and split; where a family
there is too small to settle a judge's agreement (the forced refusal prefills: 24 replies, 21 of them refusals),
this draws more under the same conditions (:func:`personalab.judges.sample.conditions`, here chosen by family) from
held-out requests that the pool has not used for that condition and model, with the pool's greedy decoding and
length, and appends them to ``experiments/labels/probe_pool.csv`` (serving each model once). Label them blind
(``tools/unlabelled_batches.py``) by ``experiments/labels/GUIDE.md``.
    usage: .venv/bin/python tools/fresh_pool_draw.py --families refusal_prefill [--models ID ...] [--per-cell 6]
           [--seed pool-fresh-1]
"""

from __future__ import annotations

import argparse

import pandas as pd

from personalab.harness.client import GenRequest, Sampling
from personalab.judges.labels import POOL_PATH, PROBE_POOL_PATH
from personalab.judges.probe_pool import FRESH_SPLIT, PROBE_COLUMNS
from personalab.judges.sample import MAX_TOKENS, _answer, conditions, pool_id, stratified_sample
from personalab.outputs import read_table, write_table
from personalab.prompts import load_items

SLIPPAGE_MODELS: tuple[str, ...] = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct",
                                    "smollm2-135m-mask-shallow", "smollm2-135m-mask-deep",
                                    "smollm2-135m-mask-preference")


def plan(families: list[str], models: list[str], per_cell: int, seed: str, taken: set[str]):
    """``(model, condition, item)`` rows: held-out items only, none whose pool id is already ``taken``."""
    chosen = [c for c in conditions() if c.family in families]
    if not chosen:
        raise SystemExit(f"No pool condition of the families {', '.join(families)}; the pool has "
                         f"{', '.join(sorted({c.family for c in conditions()}))}.")
    rows = []
    for cond in chosen:
        for model in models:
            items = [it for it in load_items() if it.split == FRESH_SPLIT
                     and pool_id(model, cond.wrapper, it.id) not in taken]
            picks = stratified_sample(items, [(cond.wrapper, cond.targets_only)], [model], per_cell=per_cell,
                                      benign_per_cell=per_cell // 3, seed=seed)
            rows += [(model, cond, it) for _, _, it in picks]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", required=True, help="pool families to draw (e.g. refusal_prefill)")
    parser.add_argument("--models", nargs="+", default=list(SLIPPAGE_MODELS))
    parser.add_argument("--per-cell", type=int, default=6, help="replies per condition and model")
    parser.add_argument("--seed", default="pool-fresh-1")
    args = parser.parse_args()
    old = read_table(PROBE_POOL_PATH)
    taken = set(old["id"]) | set(read_table(POOL_PATH)["id"])
    rows = plan(args.families, args.models, args.per_cell, args.seed, taken)
    print(f"{len(rows)} replies planned; serving the models")
    sampling = Sampling(temperature=0.0, max_tokens=MAX_TOKENS, seed=0)
    out = []
    for model in args.models:
        mine = [(c, it) for m, c, it in rows if m == model]
        requests = [GenRequest.chat(c.build(it), sampling) for c, it in mine]
        for (cond, item), req, gen in zip(mine, requests, _answer(model, requests, True)):
            out.append({"id": pool_id(model, cond.wrapper, item.id), "model_id": model, "family": cond.family,
                        "wrapper": cond.wrapper, "item": item.id, "split": item.split, "variant": item.variant,
                        "language": cond.language, "prefill": req.prefill or "", "reply": gen.text,
                        "temperature": 0.0, "max_tokens": MAX_TOKENS})
    merged = pd.concat([old, pd.DataFrame(out, columns=list(PROBE_COLUMNS))], ignore_index=True)
    write_table(merged, PROBE_POOL_PATH)
    print(f"{len(out)} new replies in {PROBE_POOL_PATH} ({len(merged)} rows in all)")


if __name__ == "__main__":
    main()
