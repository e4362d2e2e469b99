"""Add a stratified sample of held-out slippage replies to the probe pool, for hand labelling.

The slippage runs' replies are what the judge labels in the book's main experiment, so they are the replies a
judge check should read. The first use was the trained masks (models no judge was built on, whose refusals no
labelled reply showed); later passes draw fresh replies of the groups where the judge falls short (``--families``,
e.g. ``prefill`` over every model). ``--per-family`` replies per attack family and model (targets and twins
alternating), drawn with a fixed seed from the committed slippage results, are appended to
``experiments/labels/probe_pool.csv`` with the run's own ``max_tokens``; label them in ``labels.csv`` by
``experiments/labels/GUIDE.md``, without looking at any judge's output. A reply whose id (model, wrapper, request)
is already in the pool is never drawn again, so a row that was labelled keeps the reply its label was given for.
    usage: .venv/bin/python tools/sample_slippage_replies.py [--models ID ...] [--families F ...] [--per-family 3]
           [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from personalab.judges.labels import POOL_PATH, PROBE_POOL_PATH
from personalab.judges.probe_pool import PROBE_COLUMNS
from personalab.judges.sample import pool_id
from personalab.outputs import read_json, read_table, results_dir_for, write_table

MASKS: tuple[str, ...] = ("smollm2-135m-mask-shallow", "smollm2-135m-mask-deep", "smollm2-135m-mask-preference")


def sample(model: str, per_family: int, seed: int, taken: set[str] = frozenset(),
           families: Sequence[str] | None = None) -> pd.DataFrame:
    """``per_family`` replies of each family (all, or ``families``) of ``model``'s slippage run, none in ``taken``."""
    run = results_dir_for("slippage", model)
    replies = read_table(run / "responses.csv")
    [max_tokens] = {s["max_tokens"] for s in read_json(run / "provenance.json")["sampling"]}
    ids = [pool_id(model, f"slippage/{w}", it) for w, it in zip(replies["wrapper"], replies["item"])]
    replies = replies[[i not in taken for i in ids]]
    if families is not None:
        unknown = sorted(set(families) - set(replies["family"]))
        if unknown:
            raise SystemExit(f"No slippage family {', '.join(unknown)} for {model}; it has "
                             f"{', '.join(sorted(replies['family'].unique()))}.")
        replies = replies[replies["family"].isin(families)]
    picked = []
    for family, part in replies.groupby("family", sort=True):
        part = part.sample(frac=1.0, random_state=seed)
        for i in range(per_family):
            variant = ("target", "benign")[i % 2]
            rows = part[part["variant"] == variant]
            if len(rows) > i // 2:
                picked.append(rows.iloc[i // 2])
    out = pd.DataFrame(picked)
    return pd.DataFrame({
        "id": [pool_id(model, f"slippage/{w}", it) for w, it in zip(out["wrapper"], out["item"])],
        "model_id": model, "family": out["family"].to_numpy(), "wrapper": out["wrapper"].to_numpy(),
        "item": out["item"].to_numpy(), "split": out["split"].to_numpy(), "variant": out["variant"].to_numpy(),
        "language": "en", "prefill": out["prefill"].fillna("").to_numpy(), "reply": out["reply"].to_numpy(),
        "temperature": 0.0, "max_tokens": max_tokens})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MASKS), help="models whose slippage replies to sample")
    parser.add_argument("--families", nargs="+", help="attack families to sample (default: every family)")
    parser.add_argument("--per-family", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    old = read_table(PROBE_POOL_PATH)
    taken = set(old["id"]) | set(read_table(POOL_PATH)["id"])
    new = pd.concat([sample(m, args.per_family, args.seed, taken, args.families) for m in args.models],
                    ignore_index=True)
    merged = pd.concat([old, new[list(PROBE_COLUMNS)]], ignore_index=True)
    write_table(merged, PROBE_POOL_PATH)
    print(f"{len(new)} new slippage replies in {PROBE_POOL_PATH} ({len(merged)} rows in all)")


if __name__ == "__main__":
    main()
