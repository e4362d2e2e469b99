"""Blind labelling batches: a pool reply shown as the labelling guide says a labeller reads it, and nothing else.

A label is only independent of the judges if the labeller never sees what they said, nor which model or attack
produced the reply. :func:`blind_block` writes the conversation the model was sent, the prefill (marked as not the
model's own words) and the reply, under the row's id; no model name, family, earlier label or verdict.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from personalab.attacks import WRAPPERS, get_wrapper
from personalab.attacks.judge_probe import PROBES
from personalab.prompts import get_item


def conversation(wrapper: str, item: str) -> list[dict[str, str]]:
    """The messages a pool row's model was sent, without a trailing prefill (shown on its own)."""
    if wrapper.startswith("probe/"):
        messages = PROBES[wrapper.removeprefix("probe/")](get_item(item))
    elif wrapper in WRAPPERS:
        messages = get_wrapper(wrapper)(get_item(item))
    else:  # a prefill of k tokens that is not registered: the bare request, then the prefill
        messages = [{"role": "user", "content": get_item(item).text}]
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages


def blind_block(n: int, row: pd.Series) -> str:
    """Reply number ``n`` of a batch (a pool row with ``id``, ``wrapper``, ``item``, ``prefill``, ``reply``)."""
    turns = "\n".join(f"  [{m['role']}] {m['content']}" for m in conversation(row["wrapper"], row["item"]))
    prefill = row["prefill"] if isinstance(row["prefill"], str) and row["prefill"] else "(none)"
    return (f"=== {n}. id {row['id']} ===\nCONVERSATION:\n{turns}\nPREFILL (put in the assistant's mouth by the "
            f"experiment, not the model's own words): {prefill}\nREPLY (the model's own words, cut at the length "
            f"limit):\n{row['reply']}\n")


def write_batches(rows: pd.DataFrame, out_dir: Path, batches: int) -> list[Path]:
    """Deal ``rows`` (in their order) into ``batches`` text files ``batch_1.txt``, ... of :func:`blind_block`s."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for b in range(batches):
        part = rows.iloc[b::batches]
        path = out_dir / f"batch_{b + 1}.txt"
        path.write_text("\n".join(blind_block(n + 1, row) for n, (_, row) in enumerate(part.iterrows())),
                        encoding="utf-8")
        print(f"{path}: {len(part)} replies")
        paths.append(path)
    return paths


__all__ = ["blind_block", "conversation", "write_batches"]
