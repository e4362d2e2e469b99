"""What chapter pages call to quote results: read committed results files and glue formatted numbers.

Chapters never talk to a model. Their hidden code cells read ``experiments/results/...`` (written by
experiment runs) and glue strings into the prose with myst-nb, so every number in the text comes from a file.
"""

from __future__ import annotations

from personalab.outputs import read_json, read_table, results_dir_for
from personalab.stats import Rate, rate


def pct(x: float) -> str:
    """A proportion as a whole percent, the way the prose quotes it: ``0.423 -> "42%"``."""
    return f"{x * 100:.0f}%"


def points(x: float) -> str:
    """A proportion as signed whole percentage points, with no "-0": ``-0.004 -> "+0"``, ``0.23 -> "+23"``."""
    return f"{round(x * 100):+d}"


def difference_text(difference: float, lo: float, hi: float) -> str:
    """A difference of proportions with its bootstrap interval, the way the prose quotes it."""
    return f"{points(difference)} percentage points (95% bootstrap CI {points(lo)} to {points(hi)})"


def glue_text(key: str, text: str) -> str:
    """Glue ``text`` under ``key`` for ``{glue:text}`` roles, without displaying it."""
    from myst_nb import glue

    glue(key, text, display=False)
    return text


def result_rates(experiment: str, model_id: str, by: str = "condition", table: str = "rates") -> dict[str, Rate]:
    """The rates of one committed results table, keyed by the ``by`` column, as :class:`Rate` objects."""
    df = read_table(results_dir_for(experiment, model_id) / f"{table}.csv")
    return {str(row[by]): rate(int(row["k"]), int(row["n"])) for _, row in df.iterrows()}


def provenance(experiment: str, model_id: str) -> dict:
    """The provenance record of one committed run."""
    return read_json(results_dir_for(experiment, model_id) / "provenance.json")


def interval_phrase(diff: float, lo: float, hi: float, unit: str = "percentage points") -> str:
    """``"30 percentage points (95% CI 10 to 50)"`` from a difference of proportions and its interval."""
    return f"{diff * 100:.0f} {unit} (95% bootstrap CI {lo * 100:.0f} to {hi * 100:.0f})"


def direction_phrase(lo: float, hi: float, lower: str, higher: str) -> str:
    """Say in words what an interval on a difference supports, so the prose follows the data on every rerun."""
    if lo > 0:
        return f"the interval lies wholly above zero: {lower}"
    if hi < 0:
        return f"the interval lies wholly below zero: {higher}"
    return "the interval includes zero, so this sample cannot tell the two conditions apart"
