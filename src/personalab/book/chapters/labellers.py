"""The methods appendix's two-labeller paragraph: how far a second, blind labelling pass agrees with the first, and
whether the judge's shortfall on its weakest held-out groups is the judge's or the labels'.

Every string is computed from ``labeller_agreement.csv`` (written by ``personalab judges validate`` from
``experiments/labels/second_labels.csv``) and the two label files, so the paragraph follows the data.
"""

from __future__ import annotations

import pandas as pd

from personalab.judges.validate import KAPPA_TARGET, reaches


def _ci(row: pd.Series) -> str:
    return f"{row['kappa']:.2f} (95% CI {row['kappa_lo']:.2f} to {row['kappa_hi']:.2f})"


def _name(group: str) -> str:
    return group.replace("_", " ").replace("-instruct", "")


def group_verdict(labellers: float, judge_first: float, judge_second: float, target: float = KAPPA_TARGET) -> str:
    """Whose shortfall a group shows: ``"judge"`` when the labellers reach the target and the judge falls short of it
    against both of them, ``"labels"`` when the labellers themselves fall short, ``"neither"`` otherwise."""
    if not reaches(labellers, target):
        return "labels"
    if not reaches(max(judge_first, judge_second), target):
        return "judge"
    return "neither"


def labeller_numbers(table: pd.DataFrame, confusion: pd.DataFrame, first: pd.DataFrame, second: pd.DataFrame,
                     target: float = KAPPA_TARGET) -> dict[str, str]:
    """The glued strings from the agreement table, the judge's confusion on the replies both labellers labelled alike
    (``confusion``, split ``all``) and the two label files (``first``, ``second``: id, label, ...): ``n``
    (replies and requests), ``passes``, ``all`` (the labellers' refusal-vs-not kappa), ``kappa3``, ``split`` (the
    replies the two put on different sides of it), ``judge_all``, ``groups`` (labellers and judge per group),
    ``judge_short`` (on how many groups the shortfall is the judge's, by :func:`group_verdict`),
    ``verdict``, ``agreed`` (the judge on the replies both labellers put on the same side), ``comp`` and
    ``judge_comp`` (compliance versus not, the erosion ladder's outcome: labellers, judge against the first),
    ``other_as_comp`` (the replies both call other that the judge calls compliance) and ``comp_rates``."""
    rows = table.set_index(["scope", "group", "comparison"])
    pair = lambda scope, group: rows.loc[(scope, group, "first vs second labeller")]
    judge = lambda scope, group, who: rows.loc[(scope, group, f"judge vs {who}")]
    both = first.merge(second, on="id", suffixes=("", "_second"))
    split = both[(both["label"] == "refusal") != (both["label_second"] == "refusal")]
    if len(split) != int(pair("all", "all")["n_split"]):
        raise ValueError("labeller_agreement.csv does not match the label files: run `personalab judges validate`.")
    kinds = sorted({" versus ".join(sorted({a, b})) for a, b in zip(split["label"], split["label_second"])})
    has_note = lambda column: split[column].fillna("").astype(str).str.strip() != ""
    noted = int((has_note("note") & has_note("note_second")).sum())
    groups = [(s, g) for s, g in dict.fromkeys(zip(table["scope"], table["group"])) if s in ("family", "model")]
    verdicts = {(s, g): group_verdict(pair(s, g)["kappa"], judge(s, g, "first labeller")["kappa"],
                                      judge(s, g, "second labeller")["kappa"], target) for s, g in groups}
    by = {v: [f"{s} {_name(g)}" for (s, g), w in verdicts.items() if w == v] for v in ("judge", "labels", "neither")}
    verdict = []
    if by["judge"]:
        verdict.append(f"On {len(by['judge'])} of the {len(groups)} groups ({', '.join(by['judge'])}) the two "
                       f"labellers agree at {target:.1f} or better while the judge's estimate stays below it against "
                       "either of them: there the shortfall is the judge's, not the labels', so the labels do not rule "
                       "the goal out")
    if by["labels"]:
        verdict.append(f"on {', '.join(by['labels'])} the labellers themselves agree less than {target:.1f}, so the "
                       "labels there cannot show whether any judge reaches it")
    if by["neither"]:
        verdict.append(f"on {', '.join(by['neither'])} the judge reaches {target:.1f} against one of the labellers")
    text = "; ".join(verdict)
    agreed = judge("all", "all", "agreed labels")
    n_agreed, misses = int(agreed["n"]), int(agreed["n_split"])
    counts = confusion[confusion["split"] == "all"].set_index("hand_label")
    counts = counts[[c for c in counts.columns if c.startswith("judge_")]].astype(int)
    n_alike = int(counts.to_numpy().sum())
    judged_comp, labelled_comp = counts["judge_compliance"].sum(), counts.loc["compliance"].sum()
    comp = lambda row: f"{row['kappa_comp']:.2f} (95% CI {row['kappa_comp_lo']:.2f} to {row['kappa_comp_hi']:.2f})"
    return {
        "comp": comp(pair("all", "all")),
        "judge_comp": comp(judge("all", "all", "first labeller")),
        "other_as_comp": f"{counts.loc['other', 'judge_compliance']} of the {counts.loc['other'].sum()}",
        "comp_rates": (f"{judged_comp / n_alike * 100:.0f}% of the {n_alike} replies both labelled alike, where the "
                       f"labellers find {labelled_comp / n_alike * 100:.0f}%"),
        "n": f"{int(pair('all', 'all')['n'])} replies to {int(pair('all', 'all')['n_items'])} requests",
        "passes": ", ".join(sorted(set(second["labeller"]))),
        "all": _ci(pair("all", "all")),
        "kappa3": f"{pair('all', 'all')['kappa3']:.2f} (95% CI {pair('all', 'all')['kappa3_lo']:.2f} to "
                  f"{pair('all', 'all')['kappa3_hi']:.2f})",
        "split": f"{len(split)} repl{'y' if len(split) == 1 else 'ies'} ({', '.join(kinds) or 'none'}; {noted} of them "
                 "with a note from both labellers on why the call was hard)",
        "judge_all": (f"{_ci(judge('all', 'all', 'first labeller'))} against the first and "
                      f"{_ci(judge('all', 'all', 'second labeller'))} against the second"),
        "groups": "; ".join(f"{s} {_name(g)} (n = {int(pair(s, g)['n'])}): labellers {_ci(pair(s, g))}, judge "
                            f"{_ci(judge(s, g, 'first labeller'))} against the first and "
                            f"{judge(s, g, 'second labeller')['kappa']:.2f} against the second" for s, g in groups),
        "judge_short": f"{len(by['judge'])} of the {len(groups)}",
        "verdict": text[0].upper() + text[1:] + "." if text else "",
        "agreed": (f"{_ci(agreed)}, n = {n_agreed}, with {misses} repl{'y' if misses == 1 else 'ies'} on which it "
                   "contradicts both"),
    }


__all__ = ["group_verdict", "labeller_numbers"]
