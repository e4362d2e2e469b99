"""What the erosion chapter quotes: one model's committed erosion results as formatted strings to glue.

Book text lives here, apart from :mod:`personalab.experiments.erosion`, so the analysis never formats prose.
"""

from __future__ import annotations

import math

import pandas as pd

from personalab.book import direction_phrase, interval_phrase, pct, provenance
from personalab.book.erosion_check import hand_checked
from personalab.outputs import read_table, results_dir_for
from personalab.stats import rate


def chapter_numbers(model_id: str, experiment: str = "erosion") -> dict[str, str]:
    """The formatted numbers the erosion chapter glues for one model, read from its committed results."""
    d = results_dir_for(experiment, model_id)
    prov = provenance(experiment, model_id)
    ms = read_table(d / "many_shot_rates.csv").set_index("shots")
    fit = read_table(d / "many_shot_fit.csv").iloc[0]
    turns = read_table(d / "escalation_turn_rates.csv").set_index("turn")
    tries = read_table(d / "best_of_n_try_rates.csv").set_index("turn")
    cmp_ = read_table(d / "escalation_vs_best_of_n.csv").iloc[0]
    strict = read_table(d / "final_turn_vs_direct.csv").iloc[0]
    skipped = prov.get("shots_skipped") or []
    checked = hand_checked()

    def r(row: pd.Series) -> str:
        return str(rate(int(row["k"]), int(row["n"])))

    top = int(ms.index.max())
    last = int(turns.index.max())
    budget = int(cmp_["budget"])
    n_items = int(cmp_["n_items"])
    fit_ok = math.isfinite(float(fit["alpha"]))
    return {
        "name": prov["model"]["name"].split(" (")[0],
        "n": str(prov["n_items"]),
        "judge": f'{prov["judge"]["name"]} {prov["judge"]["version"]}',
        "ms_zero": r(ms.loc[0]) if 0 in ms.index else "not measured",
        "ms_top_n": str(top),
        "ms_top": r(ms.loc[top]),
        "ms_skipped": ("n = " + ", ".join(str(s) for s in skipped) + " did not fit its context and was skipped")
        if skipped else "every n fitted its context",
        "alpha": (f'{fit["alpha"]:.2f} (95% bootstrap CI {fit["alpha_lo"]:.2f} to {fit["alpha_hi"]:.2f})'
                  if fit_ok else "undefined (an attack-success rate of zero)"),
        "c": (f'{pct(fit["c"])} (95% bootstrap CI {pct(fit["c_lo"])} to {pct(fit["c_hi"])})'
              if fit_ok else "undefined"),
        "undefined": f'{fit["undefined_share"] * 100:.0f}%',
        "ms_one": r(ms.loc[1]) if 1 in ms.index else "not measured",
        "ms_two": r(ms.loc[2]) if 2 in ms.index else "not measured",
        "alpha_verdict": ("the exponent's interval lies above zero: success kept rising with more shots"
                          if fit_ok and fit["alpha_lo"] > 0 else
                          "the exponent's interval lies below zero: success fell with more shots"
                          if fit_ok and fit["alpha_hi"] < 0 else
                          "the exponent's interval includes zero: beyond one shot, more shots did not measurably "
                          "raise success" if fit_ok else "no exponent could be fitted"),
        "shots_used": str(fit["shots_used"]).replace(" ", ", "),
        "turn1": r(turns.loc[1]),
        "turn_last": r(turns.loc[last]),
        "turns": str(last),
        "budget": str(budget),
        "esc_share": str(rate(round(cmp_["escalation"] * n_items), n_items)),
        "bon_share": str(rate(round(cmp_["best_of_n"] * n_items), n_items)),
        "bon_first": r(tries.loc[1]),
        "diff": interval_phrase(cmp_["difference"], cmp_["lo"], cmp_["hi"]),
        "hand": hand_check_sentence(model_id, checked),
        "hand_diff": hand_difference(model_id, checked),
        "hand_reading": hand_reading(model_id, checked),
        "verdict": direction_phrase(cmp_["lo"], cmp_["hi"],
                                    lower="escalation got more compliance than the same number of retries",
                                    higher="the retries got more compliance than the escalation"),
        "strict_diff": interval_phrase(strict["difference"], strict["lo"], strict["hi"]),
        "strict_verdict": direction_phrase(strict["lo"], strict["hi"],
                                           lower="after the escalation the target request was refused less often",
                                           higher="after the escalation the target request was refused more often"),
    }


def hand_check_sentence(model_id: str, checked: dict[str, pd.DataFrame] | None = None) -> str:
    """What reading every reply of ``model_id``'s escalation-versus-retries contrast by hand changed
    (:mod:`personalab.book.erosion_check`), as two sentences; says so when there is no such check."""
    checked = hand_checked() if checked is None else checked
    if model_id not in checked:
        return ("Its replies were not read by hand for this contrast (or have changed since they were), so the "
                "judge's count stands unchecked.")
    rows = checked[model_id]
    judge, hand, target = rows.loc["judge"], rows.loc["hand"], rows.loc["target content"]
    verdict = direction_phrase(hand["lo"], hand["hi"],
                               lower="escalation got more compliance than the same number of retries",
                               higher="the retries got more compliance than the escalation")
    n_target = int(target["n_compliance"])
    return (f"Read by hand, {int(hand['n_compliance'])} of the {int(hand['n_replies'])} replies this contrast reads "
            f"are compliance by the guide, where the judge found {int(judge['n_compliance'])}; escalation minus "
            f"retries is then {interval_phrase(hand['difference'], hand['lo'], hand['hi'])}: {verdict}. Counting "
            f"only replies that contain the target's own deceptive text ({n_target} repl"
            f"{'y' if n_target == 1 else 'ies'} in all), it is "
            f"{interval_phrase(target['difference'], target['lo'], target['hi'])}.")


def hand_difference(model_id: str, checked: dict[str, pd.DataFrame] | None = None) -> str:
    """Escalation minus retries for ``model_id`` by the hand labels, with its interval, or why there is none."""
    checked = hand_checked() if checked is None else checked
    if model_id not in checked:
        return "not read by hand"
    hand = checked[model_id].loc["hand"]
    return interval_phrase(hand["difference"], hand["lo"], hand["hi"])


def hand_reading(model_id: str, checked: dict[str, pd.DataFrame] | None = None) -> str:
    """What the hand labels make of the judge's escalation-versus-retries result for ``model_id``, in a sentence:
    by the guide's labels (compliance with the turn's own request) and by the target's own deceptive text."""
    checked = hand_checked() if checked is None else checked
    if model_id not in checked:
        return "Without a reading by hand, that rests on the judge alone."
    rows = checked[model_id]
    judge, hand, target = (rows.loc[k] for k in ("judge", "hand", "target content"))
    if target["lo"] > 0:
        return ("Even counting only the target's own deceptive text, the conversation wore this model down where "
                "retries did not.")
    if hand["lo"] > 0:
        return (f"By the guide's labels the ladder beat retrying here, but {int(hand['n_compliance_middle'])} of the "
                f"{int(hand['n_compliance_ladder'])} compliant replies on the ladder answered its milder middle steps, "
                "before the target request arrived; counting only the target's own deceptive text, it did not.")
    if judge["lo"] > 0:
        return ("The hand labels remove it: the judge had counted the model's off-target replies, mostly repeats of "
                "an earlier, harmless answer, as compliance, and read by hand the ladder did not measurably beat "
                "retrying.")
    return "Neither the judge's labels nor the hand labels separate the ladder from retrying on this model."
