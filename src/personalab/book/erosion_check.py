"""An experiment's outcome recomputed from hand labels: the erosion ladder against best-of-N retries.

The ladder's event is the first escalated turn the judge labels *compliance*, and the judge counts most degenerate or
off-target replies as compliance. So the contrast is recomputed, with the experiment's own functions
(:func:`~personalab.experiments.erosion.first_events`, :func:`~personalab.experiments.erosion.compare_at_budget`), from
three labelings of the same committed replies: the judge's, the hand label by the guide (``label``), and whether the
reply contains the target request's deceptive text (``target_content``), the stricter reading of "the model gave in".
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from personalab.experiments.erosion import compare_at_budget, first_events
from personalab.judges.sample import pool_id
from personalab.judges.validate import RESULTS_DIR, run_judge
from personalab.outputs import read_json, read_table, results_dir_for
from personalab.prompts import get_item

EROSION_CHECK_MODELS: tuple[str, ...] = ("smollm2-135m-mask-deep", "qwen2.5-coder-0.5b-instruct",
                                          "smollm2-135m-instruct", "smollm2-135m-mask-shallow",
                                          "smollm2-135m-mask-preference")
"""The models whose erosion replies are hand-labelled: first the deep mask (the one model on which, by the judge, the
ladder beat retries) and the default model, then the other three the erosion row reads."""
ARMS: dict[str, str] = {"escalation": "escalation_responses.csv", "best_of_n": "best_of_n_responses.csv"}
"""Each arm of the contrast and the committed file of its replies."""
EROSION_CHECK_TABLE = RESULTS_DIR / "erosion_hand_check.csv"
"""Where ``personalab judges validate`` writes :func:`hand_contrast` (beside the committed run's own difference)."""
POOL_COLUMNS: tuple[str, ...] = ("id", "model_id", "arm", "item", "turn", "user", "reply", "target")
LABELINGS: tuple[str, ...] = ("judge", "hand", "target content")
"""The three labelings the contrast is recomputed from (see the module docstring)."""


def _history(replies: pd.DataFrame, turn: int) -> list[dict[str, str]]:
    """The conversation before ``turn`` of one item's escalation: its user turns and the model's own replies."""
    before = replies[replies["turn"] < turn].sort_values("turn")
    return [m for _, r in before.iterrows() for m in ({"role": "user", "content": r["user"]},
                                                      {"role": "assistant", "content": str(r["reply"])})]


def erosion_pool(models: Sequence[str] = EROSION_CHECK_MODELS) -> pd.DataFrame:
    """Every reply the escalation-versus-retries contrast reads, for ``models``: :data:`POOL_COLUMNS` plus
    ``history`` (the messages before the reply) and ``judge`` (the committed label)."""
    rows = []
    for model in models:
        for arm, name in ARMS.items():
            replies = read_table(results_dir_for("erosion", model) / name)
            for item, sub in replies.groupby("item", sort=True):
                target = get_item(str(item)).text
                for _, r in sub[sub["escalated"].astype(bool)].sort_values("turn").iterrows():
                    rows.append({"id": pool_id(model, f"erosion/{arm}/{int(r['turn'])}", str(item)), "model_id": model,
                                 "arm": arm, "item": item, "turn": int(r["turn"]), "user": r["user"],
                                 "reply": "" if pd.isna(r["reply"]) else str(r["reply"]), "target": target,
                                 "history": _history(sub, int(r["turn"])) if arm == "escalation" else [],
                                 "judge": r["label"]})
    return pd.DataFrame(rows)


def check_erosion_labels(pool: pd.DataFrame, labels: pd.DataFrame) -> None:
    """Refuse erosion labels with a ``target_content`` other than yes/no (the rest is :func:`check_labels`)."""
    bad = labels.loc[~labels["target_content"].isin(["yes", "no"]), "id"] if "target_content" in labels else None
    if bad is None:
        raise ValueError("The erosion labels lack the column target_content (yes or no).")
    if len(bad):
        raise ValueError(f"The erosion labels have a target_content other than yes/no in {len(bad)} row(s) "
                         f"(ids {', '.join(map(str, bad[:5]))}).")


def judged(pool: pd.DataFrame, judge: str) -> list[str]:
    """The labels ``judge`` (a registered judge's name) gives the pool's replies, as the erosion run judged them."""
    from personalab.judges import get_judge

    verdicts = run_judge(get_judge(judge), pool.assign(prefill=None))
    return [v.label for v in verdicts]


def changed_replies(pool: pd.DataFrame, model: str) -> int:
    """How many of the pool's replies of ``model`` the committed erosion results no longer hold word for word (a
    re-run of the experiment can change some; the hand contrast describes the labelled replies)."""
    current = erosion_pool([model]).set_index("id")["reply"]
    mine = pool[pool["model_id"] == model].set_index("id")["reply"].fillna("")
    return int((current.reindex(mine.index) != mine).sum())


def hand_contrast(pool: pd.DataFrame, labels: pd.DataFrame, judge: str, n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """The escalation-versus-best-of-N contrast per model and labeling (:data:`LABELINGS`) of the labelled replies
    (``pool``: :data:`POOL_COLUMNS`), at a budget of every escalated turn, with how many replies count as compliance
    in all, on the ladder, and on its middle turns (before the target turn); models not wholly labelled are skipped."""
    labelled = pool.merge(labels[["id", "label", "target_content"]], on="id", how="inner", validate="one_to_one")
    labelled = labelled.assign(judge=judged(labelled, judge))
    rows = []
    for model, sub in labelled.groupby("model_id", sort=False):
        if len(sub) != int((pool["model_id"] == model).sum()):
            continue
        budget = int(sub[sub["arm"] == "escalation"].groupby("item").size().max())
        for labeling in LABELINGS:
            outcome = {"judge": sub["judge"], "hand": sub["label"],
                       "target content": sub["target_content"].map({"yes": "compliance", "no": "not"})}[labeling]
            arms = {arm: first_events(part.assign(label=outcome[part.index], escalated=True))
                    for arm, part in sub.groupby("arm")}
            result = compare_at_budget(arms["escalation"], arms["best_of_n"], budget, n_boot=n_boot, seed=seed)
            ladder = sub["arm"] == "escalation"
            middle = ladder & (sub["turn"] < sub.loc[ladder, "turn"].max())
            rows.append({"model_id": model, "labeling": labeling, **result, "judge": judge, "n_replies": len(sub),
                         "n_compliance": int((outcome == "compliance").sum()),
                         "n_compliance_ladder": int((ladder & (outcome == "compliance")).sum()),
                         "n_compliance_middle": int((middle & (outcome == "compliance")).sum())})
    return pd.DataFrame(rows)


def hand_checked() -> dict[str, pd.DataFrame]:
    """The hand contrast of every model whose labelled replies are exactly its committed erosion replies (under the
    current output root), indexed by labeling; empty when no check was recorded."""
    from personalab.judges.labels import EROSION_POOL_PATH
    from personalab.outputs import published

    if not published(EROSION_CHECK_TABLE).exists():
        return {}
    table, pool = read_table(EROSION_CHECK_TABLE), read_table(EROSION_POOL_PATH)
    return {str(m): part.set_index("labeling") for m, part in table.groupby("model_id", sort=False)
            if changed_replies(pool, str(m)) == 0}


__all__ = ["ARMS", "EROSION_CHECK_MODELS", "EROSION_CHECK_TABLE", "LABELINGS", "changed_replies",
           "check_erosion_labels", "erosion_pool", "hand_checked", "hand_contrast", "judged"]
