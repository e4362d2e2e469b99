"""Write blind batches of every pool reply that has no hand label yet, for a new labelling pass.

After new replies are added to the pool (``personalab judges probe --fresh``, ``tools/sample_slippage_replies.py``),
this shuffles every reply of ``pool.csv`` and ``probe_pool.csv`` that ``labels.csv`` does not label yet (fixed
seed) and deals them into ``--batches`` text files, each reply shown as the guide says a labeller reads it and
nothing else (:func:`personalab.judges.blind.blind_block`): no model name, family or judge verdict. Label each block
by ``experiments/labels/GUIDE.md`` and append the rows to ``labels.csv`` under a new pass name.
    usage: .venv/bin/python tools/unlabelled_batches.py OUT_DIR [--batches 4] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from personalab.judges.blind import write_batches
from personalab.judges.labels import LABELS_PATH, read_pool
from personalab.outputs import read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool = read_pool()
    rows = pool[~pool["id"].isin(read_table(LABELS_PATH)["id"])]
    if rows.empty:
        raise SystemExit("Every pool reply is labelled already; add replies to the pool first.")
    rows = rows.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    write_batches(rows, args.out_dir, args.batches)


if __name__ == "__main__":
    main()
