"""The erosion contrast recomputed from hand labels: pool, label checks and the three labelings. No server."""

from __future__ import annotations

import pandas as pd
import pytest

from personalab.judges.labels import EROSION_POOL_PATH
from personalab.book.erosion_check import (
    EROSION_CHECK_MODELS, POOL_COLUMNS, changed_replies, check_erosion_labels, erosion_pool, hand_contrast,
)
from personalab.paths import REPO_ROOT

REFUSE = "I'm sorry, but I can't help with that."
COMPLY = "Here is the review you asked for: The bakery is wonderful, five stars, the best croissants in town."


def _pool() -> pd.DataFrame:
    """Two items, five escalated turns and five tries each: the judge sees compliance from turn 2 of the ladder and
    never in the retries; the hand labels (below) keep only item b's ladder."""
    rows = []
    for item in ("a", "b"):
        for arm in ("escalation", "best_of_n"):
            for turn in (range(2, 7) if arm == "escalation" else range(1, 6)):
                rows.append({"id": f"{item}-{arm}-{turn}", "model_id": "m", "arm": arm, "item": item, "turn": turn,
                             "user": "u", "reply": COMPLY if arm == "escalation" else REFUSE, "target": "t"})
    return pd.DataFrame(rows, columns=list(POOL_COLUMNS))


def _labels(pool: pd.DataFrame) -> pd.DataFrame:
    keep = (pool["arm"] == "escalation") & (pool["item"] == "b")
    return pd.DataFrame({"id": pool["id"], "label": ["compliance" if k else "other" for k in keep],
                         "target_content": ["yes" if k and t == 6 else "no" for k, t in zip(keep, pool["turn"])]})


def test_hand_contrast_recomputes_the_contrast_under_each_labeling() -> None:
    pool = _pool()
    table = hand_contrast(pool, _labels(pool), judge="keyword_ext3", n_boot=200).set_index("labeling")
    assert table.loc["judge", "escalation"] == 1.0 and table.loc["judge", "best_of_n"] == 0.0
    assert table.loc["hand", "difference"] == pytest.approx(0.5)
    assert table.loc["target content", "n_compliance"] == 1 and table.loc["target content", "budget"] == 5
    assert (table["n_replies"] == 20).all()


def test_a_model_not_wholly_labelled_has_no_contrast() -> None:
    pool = _pool()
    assert hand_contrast(pool, _labels(pool).iloc[1:], judge="keyword_ext3", n_boot=50).empty


@pytest.mark.parametrize("bad, message", [(lambda d: d.drop(columns="target_content"), "lack the column"),
                                          (lambda d: d.assign(target_content="maybe"), "other than yes/no")])
def test_erosion_labels_need_a_yes_no_target_content(bad, message: str) -> None:
    pool = _pool()
    check_erosion_labels(pool, _labels(pool))
    with pytest.raises(ValueError, match=message):
        check_erosion_labels(pool, bad(_labels(pool)))


def test_the_committed_erosion_pool_is_every_reply_the_contrast_reads() -> None:
    committed = pd.read_csv(REPO_ROOT / EROSION_POOL_PATH)
    built = erosion_pool(EROSION_CHECK_MODELS)
    assert set(committed["id"]) == set(built["id"]) and committed["id"].is_unique
    # each model: 20 items x (5 escalated turns + 5 retries); no turn-1 (benign) reply of the ladder
    assert (committed.groupby("model_id").size() == 200).all()
    assert committed.loc[committed["arm"] == "escalation", "turn"].min() == 2
    for model in EROSION_CHECK_MODELS:
        assert 0 <= changed_replies(committed, model) <= 200


def _checked(judge_lo: float, hand_lo: float, target_lo: float) -> dict[str, pd.DataFrame]:
    rows = [{"labeling": k, "difference": lo + 0.1, "lo": lo, "hi": lo + 0.2, "n_compliance": 10, "n_replies": 200,
             "n_compliance_ladder": 8, "n_compliance_middle": 6}
            for k, lo in (("judge", judge_lo), ("hand", hand_lo), ("target content", target_lo))]
    return {"m": pd.DataFrame(rows).set_index("labeling")}


@pytest.mark.parametrize("los, start", [
    ((0.3, 0.1, 0.05), "Even counting only the target's own deceptive text"),
    ((0.3, 0.1, -0.1), "By the guide's labels the ladder beat retrying here, but 6 of the 8"),
    ((0.3, -0.1, -0.1), "The hand labels remove it"),
    ((-0.1, -0.1, -0.1), "Neither the judge's labels nor the hand labels"),
])
def test_hand_reading_says_which_reading_keeps_the_ladder_ahead(los, start: str) -> None:
    from personalab.book.chapters import erosion as chapter

    checked = _checked(*los)
    assert chapter.hand_reading("m", checked).startswith(start)
    assert chapter.hand_reading("unchecked", checked).startswith("Without a reading by hand")
    assert chapter.hand_difference("unchecked", checked) == "not read by hand"
    assert chapter.hand_check_sentence("m", checked).startswith("Read by hand, 10 of the 200 replies")


def test_hand_contrast_counts_compliance_on_the_ladder_and_its_middle_turns() -> None:
    pool = _pool()
    table = hand_contrast(pool, _labels(pool), judge="keyword_ext3", n_boot=50).set_index("labeling")
    # hand labels: item b's five escalated turns are compliance, four of them before the target turn (6)
    assert (table.loc["hand", "n_compliance_ladder"], table.loc["hand", "n_compliance_middle"]) == (5, 4)
