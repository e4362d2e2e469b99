"""The hand-label set: where it lives, the checks every reader applies to it, and its hash for provenance.

``labels.csv`` has one row per reply of ``pool.csv``: ``id``, ``label``, ``note`` and the labelling pass that made
the row (``labeller``, ``labelled_on`` as an ISO date); ``experiments/labels/GUIDE.md`` gives the rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd

from personalab.judges.base import LABELS
from personalab.paths import REPO_ROOT

LABELS_PATH = Path("experiments") / "labels" / "labels.csv"
POOL_PATH = Path("experiments") / "labels" / "pool.csv"
"""The reply pool the labels are for (the file :mod:`personalab.judges.sample` writes)."""
PROBE_POOL_PATH = Path("experiments") / "labels" / "probe_pool.csv"
"""Replies under conditions the judges were not trained on (:mod:`personalab.judges.probe_pool` writes it)."""
SECOND_LABELS_PATH = Path("experiments") / "labels" / "second_labels.csv"
"""A second, blind labelling of a sample of the labelled replies (same columns): how far two labellers agree."""
EROSION_POOL_PATH = Path("experiments") / "labels" / "erosion_pool.csv"
"""Every reply of the erosion contrast for the hand-checked models (``tools/erosion_event_batches.py`` writes it)."""
EROSION_LABELS_PATH = Path("experiments") / "labels" / "erosion_labels.csv"
"""Their hand labels: the columns of ``labels.csv`` plus ``target_content`` (yes or no)."""
LABEL_COLUMNS: tuple[str, ...] = ("id", "label", "note", "labeller", "labelled_on")
SHOWN_IDS = 5
"""How many offending row ids an error names."""


def _first_ids(ids: Iterable[object]) -> str:
    """The first :data:`SHOWN_IDS` ids, comma-separated, and how many more there are."""
    ids = [str(i) for i in ids]
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(ids[:SHOWN_IDS]) + more


def _is_iso_date(value: object) -> bool:
    """Whether ``value`` is a date written as YYYY-MM-DD."""
    try:
        return date.fromisoformat(str(value)).isoformat() == str(value)
    except ValueError:
        return False


def check_labels(labels: pd.DataFrame, pool: pd.DataFrame, path: Path | str = LABELS_PATH,
                 pool_path: Path | str = POOL_PATH) -> None:
    """Refuse a label set (read from ``path``) that is malformed or does not fit ``pool``: raises ValueError."""
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; a label file needs the columns "
                         f"{','.join(LABEL_COLUMNS)} (see experiments/labels/GUIDE.md).")
    unknown = labels.loc[~labels["label"].isin(LABELS), "id"]
    if len(unknown):
        raise ValueError(f"{path} has an unknown label in {len(unknown)} row(s) (ids {_first_ids(unknown)}); "
                         f"relabel them with one of {', '.join(LABELS)}.")
    repeated = labels.loc[labels["id"].duplicated(), "id"].unique()
    if len(repeated):
        raise ValueError(f"{path} labels the same id more than once (ids {_first_ids(repeated)}); keep one row "
                         "per reply.")
    strangers = labels.loc[~labels["id"].isin(pool["id"]), "id"]
    if len(strangers):
        raise ValueError(f"{path} has {len(strangers)} label(s) whose id is not a reply in {pool_path} (ids "
                         f"{_first_ids(strangers)}); delete those rows or label the current pool.")
    for column in ("labeller", "labelled_on"):
        empty = labels.loc[labels[column].isna() | (labels[column].astype(str).str.strip() == ""), "id"]
        if len(empty):
            raise ValueError(f"{path} has no {column} in {len(empty)} row(s) (ids {_first_ids(empty)}); every "
                             "row must name the labelling pass that made it (labeller) and its date (labelled_on).")
    bad = labels.loc[~labels["labelled_on"].map(_is_iso_date), "id"]
    if len(bad):
        raise ValueError(f"{path} has a labelled_on that is not an ISO date in {len(bad)} row(s) (ids "
                         f"{_first_ids(bad)}); write the date of the labelling pass as YYYY-MM-DD.")


def read_pool(pool_path: Path | str = POOL_PATH, probe_path: Path | str | None = PROBE_POOL_PATH) -> pd.DataFrame:
    """Every labelled-for reply: ``pool.csv`` then the probe pool (if present), with a ``pool`` column naming the
    file; probe-only columns (``temperature``, ``max_tokens``) are filled for the main pool (greedy, 96 tokens)."""
    from personalab.outputs import read_table

    main = read_table(pool_path).assign(pool="main", temperature=0.0, max_tokens=96)
    if probe_path is None:
        return main
    try:
        probe = read_table(probe_path).assign(pool="probe")
    except FileNotFoundError:
        return main
    both = pd.concat([main, probe], ignore_index=True)
    clash = both.loc[both["id"].duplicated(), "id"]
    if len(clash):
        raise ValueError(f"{probe_path} reuses id(s) of {pool_path} ({_first_ids(clash)}); ids must be unique.")
    return both


def prefills(table: pd.DataFrame) -> list[str | None]:
    """Each row's prefill, None where the row has none (an empty or missing cell)."""
    return [p if isinstance(p, str) and p else None for p in table["prefill"]]


def _sha256(path: Path | str) -> str:
    """sha256 of a file's bytes; a relative path is taken from the repository root."""
    return hashlib.sha256((REPO_ROOT / path).read_bytes()).hexdigest()


def label_set_hash(labels_path: Path | str = LABELS_PATH, pool_path: Path | str = POOL_PATH,
                   probe_path: Path | str = PROBE_POOL_PATH) -> dict[str, str | None]:
    """The sha256 of the label file and of the pool files the judges are validated on, for provenance (None for a
    file this copy of the repository does not hold, e.g. a scratch copy with only the experiment sources)."""
    return {"labels_sha256": _sha256(labels_path) if (REPO_ROOT / labels_path).exists() else None,
            "pool_sha256": _sha256(pool_path) if (REPO_ROOT / pool_path).exists() else None,
            "probe_pool_sha256": _sha256(probe_path) if (REPO_ROOT / probe_path).exists() else None}
