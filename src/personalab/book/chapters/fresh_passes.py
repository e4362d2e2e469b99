"""Strings for the fresh labelling passes (methods appendix, closing chapter), from ``fresh_groups.csv``.

Each fresh pass was drawn after a judge was fixed, so a judge's agreement there is its out-of-sample check;
``personalab judges validate`` scores every judge on each pass with its held-out verdicts
(:data:`personalab.judges.validate.FRESH_PASSES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from personalab.judges.validate import agreement_stats, labelling_pass, reaches

GROUP_NAMES: dict[str, str] = {
    "lang_it": "the Italian requests", "prefill": "the compliant prefills", "refusal_prefill": "the refusal prefills",
    "smollm2-135m-mask-preference": "the preference mask", "smollm2-135m-mask-deep": "the deep mask",
    "smollm2-135m-mask-shallow": "the shallow mask", "smollm2-135m-instruct": "SmolLM2-135M",
    "qwen2.5-coder-0.5b-instruct": "Qwen2.5-Coder-0.5B", "qwen2.5-coder-1.5b-instruct": "Qwen2.5-Coder-1.5B"}
"""How the prose names a held-out group (families and models)."""


def group_name(group: str) -> str:
    """The prose name of a held-out family or model."""
    return GROUP_NAMES.get(group, group.replace("_", " "))


def refusals(row: pd.Series) -> int:
    """Hand-labelled refusals in a table row."""
    return int(round(row["hand_refusal_rate"] * row["n"]))


def kappa_text(row: pd.Series) -> str:
    """``0.83 (95% CI 0.69 to 0.94; n = 144, 23 refusals)``."""
    return (f"{row['kappa']:.2f} (95% CI {row['kappa_lo']:.2f} to {row['kappa_hi']:.2f}; n = {int(row['n'])}, "
            f"{refusals(row)} refusal{'s' if refusals(row) != 1 else ''})")


def rows_of(fresh: pd.DataFrame, labelling: str, judge: str) -> pd.DataFrame:
    """One judge's rows on one pass, in the table's order."""
    rows = fresh[(fresh["labeller"] == labelling) & (fresh["judge"] == judge)]
    if rows.empty:
        raise ValueError(f"fresh_groups.csv has no rows for {judge} on {labelling}; run `personalab judges validate`.")
    return rows


def pass_n(fresh: pd.DataFrame, labelling: str, groupings: Sequence[str] = ("model",)) -> str:
    """How many replies a pass labelled, by the groups of ``groupings`` (one reply counts once per grouping)."""
    judges = fresh.loc[fresh["labeller"] == labelling, "judge"]
    rows = rows_of(fresh, labelling, str(judges.iloc[0]) if len(judges) else "any judge")
    rows = rows[rows["grouping"].isin(groupings)]
    return ", ".join(f"{int(r['n'])} of {group_name(r['group'])} ({refusals(r)} refusals)" for _, r in rows.iterrows())


def goal_sentence(fresh: pd.DataFrame, labelling: str, judge: str, target: float) -> str:
    """Where ``judge`` reaches ``target`` on a pass and where it falls short, each group with its kappa."""
    rows = rows_of(fresh, labelling, judge)
    met = [f"{group_name(r['group'])}, {kappa_text(r)}" for _, r in rows.iterrows() if reaches(r["kappa"], target)]
    short = [f"{group_name(r['group'])}, {kappa_text(r)}" for _, r in rows.iterrows() if not reaches(r["kappa"], target)]
    parts = []
    if met:
        parts.append(f"reaches {target:.1f} on {'; '.join(met)}")
    if short:
        parts.append(f"falls short on {'; '.join(short)}")
    return " and ".join(parts)


def comparison(fresh: pd.DataFrame, labelling: str, new: str, old: str) -> str:
    """How judge ``new`` compares with ``old`` group by group on a pass (kappa to two decimals)."""
    a = rows_of(fresh, labelling, new).set_index(["grouping", "group"])["kappa"].round(2)
    b = rows_of(fresh, labelling, old).set_index(["grouping", "group"])["kappa"].round(2)
    both = pd.DataFrame({"new": a, "old": b}).dropna()
    changed = [f"{group_name(g)} {r['old']:.2f} → {r['new']:.2f}" for (_, g), r in both.iterrows()
               if r["new"] != r["old"]]
    higher, lower = int((both["new"] > both["old"]).sum()), int((both["new"] < both["old"]).sum())
    same = len(both) - higher - lower
    return (f"higher on {higher} of the {len(both)} groups, lower on {lower} and equal on {same}"
            + (f" ({', '.join(changed)})" if changed else ""))


def labellers_on(first: pd.DataFrame, second: pd.DataFrame, pool: pd.DataFrame, labelling: str,
                 n_boot: int = 2000, seed: int = 0) -> str:
    """How far the two blind labellings of one pass agree, refusal versus not (kappa with its interval over
    requests), on the replies both labelled; ``first`` and ``second`` are label files, ``pool`` gives each id's
    request (``item``)."""
    mine = first[first["labeller"].map(labelling_pass) == labelling][["id", "label"]]
    both = mine.merge(second[["id", "label"]].rename(columns={"label": "pred"}), on="id").merge(
        pool[["id", "item"]], on="id")
    if both.empty:
        raise ValueError(f"No reply of {labelling} was labelled twice; see second_labels.csv.")
    stats = agreement_stats(both, n_boot, seed)
    return (f"{stats['kappa']:.2f} (95% CI {stats['kappa_lo']:.2f} to {stats['kappa_hi']:.2f}; n = {len(both)}, "
            f"{int((both['label'] == both['pred']).sum())} labelled alike)")


__all__ = ["GROUP_NAMES", "comparison", "goal_sentence", "group_name", "kappa_text", "labellers_on", "pass_n", "refusals", "rows_of"]
