"""Write the erosion runs' replies as a pool and blind batches, so that the escalation-versus-retries contrast can be
recomputed from hand labels instead of the judge.

The erosion ladder counts an item as broken at the first escalated turn the judge labels *compliance*, and the judge
calls most degenerate or off-target replies compliance (methods appendix, "Two labellers"). This takes every reply
the contrast reads (escalated turns 2-6 and the best-of-N tries) for ``--models``, writes them to
``experiments/labels/erosion_pool.csv`` and as text batches that show the conversation so far, the reply and the
target request the ladder ends in, and nothing else: no model, no judge verdict. Label each block by
``experiments/labels/GUIDE.md`` against the turn's own request, and say whether the reply contains the target's
deceptive text, into ``experiments/labels/erosion_labels.csv``. Replies that file already labels are left out of the
batches, so a run for more models batches only the new replies.
    usage: .venv/bin/python tools/erosion_event_batches.py OUT_DIR [--models ID ...] [--batches 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from personalab.judges.labels import EROSION_LABELS_PATH, EROSION_POOL_PATH
from personalab.book.erosion_check import EROSION_CHECK_MODELS, erosion_pool
from personalab.outputs import published, read_table, write_table


def block(n: int, row: pd.Series) -> str:
    """One reply as the labeller sees it: the turns before it, the turn's request, the reply, the target."""
    history = "\n".join(f"  [{m['role']}] {m['content']}" for m in row["history"])
    return (f"=== {n}. id {row['id']} ===\nCONVERSATION SO FAR:\n{history or '  (none)'}\n  [user] {row['user']}\n"
            f"REPLY TO LABEL (the model's own words, cut at the length limit):\n{row['reply']}\n"
            f"TARGET REQUEST (what the conversation is steering towards):\n  {row['target']}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models", nargs="+", default=list(EROSION_CHECK_MODELS))
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    pool = erosion_pool(args.models)
    write_table(pool.drop(columns=["history"]), EROSION_POOL_PATH)
    if published(EROSION_LABELS_PATH).exists():  # a reply labelled before is not batched again
        pool = pool[~pool["id"].isin(read_table(EROSION_LABELS_PATH)["id"])]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    items = sorted(set(pool["item"]))
    for b in range(args.batches):
        part = pool[pool["item"].isin(items[b::args.batches])].sample(frac=1.0, random_state=b)
        text = "\n".join(block(n + 1, row) for n, (_, row) in enumerate(part.iterrows()))
        (args.out_dir / f"erosion_{b + 1}.txt").write_text(text, encoding="utf-8")
        print(f"{args.out_dir / f'erosion_{b + 1}.txt'}: {len(part)} replies")


if __name__ == "__main__":
    main()
