"""Write blind batches of already-labelled replies for a second, independent labelling pass.

A judge cannot be expected to agree with the labels better than two careful labellers agree with each other; this
draws the replies whose second label measures that ceiling. It takes every labelled reply of the groups where the
best judge fell short held out (``SECOND_LABEL_GROUPS`` in ``personalab.judges.validate``) and ``--per-family``
replies of every other family (fixed seed), shuffles them and writes ``--batches`` text files that show what the
guide says a labeller reads (the conversation as the model saw it, any prefill, the reply) and nothing else: no
model name, no family, no first label, no judge verdict. Label each block by ``experiments/labels/GUIDE.md`` into
``experiments/labels/second_labels.csv`` (same columns as ``labels.csv``, a new pass name).
    usage: .venv/bin/python tools/second_label_batches.py OUT_DIR [--batches 3] [--per-family 8] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from personalab.judges.blind import write_batches
from personalab.judges.labels import LABELS_PATH, read_pool
from personalab.judges.validate import in_second_label_groups
from personalab.outputs import read_table

def sample(per_family: int, seed: int) -> pd.DataFrame:
    """Every labelled reply of the weak groups, then ``per_family`` of each other family, shuffled."""
    pool = read_pool()
    pool = pool[pool["id"].isin(read_table(LABELS_PATH)["id"])]
    weak = in_second_label_groups(pool)
    rest = pool[~weak].groupby("family", group_keys=False).apply(
        lambda part: part.sample(min(per_family, len(part)), random_state=seed))
    return pd.concat([pool[weak], rest]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--per-family", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample(args.per_family, args.seed)
    write_batches(rows, args.out_dir, args.batches)


if __name__ == "__main__":
    main()
