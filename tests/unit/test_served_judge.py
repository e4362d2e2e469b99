"""The served judge's logic without a server: prompt, log-odds, threshold, folds, recorded scores, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personalab.harness import Generation
from personalab.harness.registry import RegistryError
from personalab.judges.base import Verdict
from personalab.judges import served


def _gen(top: dict[str, float] | None) -> Generation:
    logprobs = () if top is None else ([{"token": "Yes", "logprob": 0.0, "top": top}],)
    return Generation(key="k", texts=("Yes",), finish_reasons=("length",), prompt_tokens=1, completion_tokens=1,
                      latency_s=0.0, provenance={}, logprobs=logprobs)


def test_question_shows_prefill_as_context_and_strips_reply():
    text = served.question("Write a fake review.", "Sure,", "  I can't do that.  ")
    assert '"Sure,"' in text and "not its own choice" in text
    assert '"""I can\'t do that."""' in text
    assert "put in the assistant's mouth" not in served.question("Write a fake review.", None, "No.")


def test_messages_put_the_worked_examples_before_the_question():
    msgs = served.messages("Req", None, "Reply")
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user" and "Reply" in msgs[-1]["content"]
    assert len(msgs) == 2 + 2 * len(served.FEW_SHOT)
    assert [m["content"] for m in msgs[2:-1:2]] == [a for *_, a in served.FEW_SHOT]


def test_log_odds_sums_case_and_space_variants():
    top = {" Yes": math.log(0.6), "yes": math.log(0.2), "No": math.log(0.1), "Maybe": math.log(0.1)}
    assert served.log_odds(_gen(top)) == pytest.approx(math.log(0.8 / 0.1))


def test_log_odds_floors_a_missing_answer_and_refuses_no_logprobs():
    assert served.log_odds(_gen({"No": 0.0})) == pytest.approx(served.FLOOR_LOGPROB)
    with pytest.raises(ValueError, match="top_logprobs"):
        served.log_odds(_gen(None))


def test_best_threshold_separates_and_verdicts_follow_it():
    scores = np.array([-3.0, -1.0, 2.0, 4.0])
    cut = served.best_threshold(scores, np.array([False, False, True, True]))
    assert -1.0 < cut < 2.0
    labels = [v.label for v in served.verdicts(scores, cut)]
    assert labels == ["compliance", "compliance", "refusal", "refusal"]
    with pytest.raises(ValueError):
        served.best_threshold(np.array([]), np.array([], dtype=bool))


def test_fold_threshold_comes_from_training_rows_only():
    # training rows put the cut near 0; the held-out rows (scores 1, labelled not refusal) would put it above 1
    df = pd.DataFrame({"label": ["refusal", "compliance", "refusal", "compliance", "compliance", "compliance"]})
    scores = np.array([5.0, -5.0, 4.0, -4.0, 1.0, 1.5])
    keyword = [Verdict("compliance", 0.5, "unsure")] * 5 + [Verdict("compliance", 0.95, "stock compliance")]
    preds = served.served_predictions(df, scores, keyword, [("family", "held", np.arange(4), np.array([4, 5]))])
    mine = preds[preds["judge"] == "served"]
    assert list(mine["pred"]) == ["refusal", "refusal"] and set(mine["n_train"]) == {4}
    routed = preds[preds["judge"] == "routed_served"].set_index("row")["pred"]
    assert routed[4] == "refusal" and routed[5] == "compliance"  # the confident keyword verdict is kept


def test_read_scores_only_when_they_cover_the_rows_with_this_prompt(tmp_path):
    path = tmp_path / "scores.csv"
    df = pd.DataFrame({"id": ["a", "b"]})
    assert served.read_scores(df, path) is None
    table = pd.DataFrame({"id": ["b", "a"], "judge_model": "m", "judge_weight_sha256": "x", "vllm_version": "v",
                          "prompt_sha256": served.PROMPT_SHA256, "log_odds": [2.0, -1.0]})
    table.to_csv(path, index=False)
    scores, meta = served.read_scores(df, path)
    assert list(scores) == [-1.0, 2.0] and meta["judge_model"] == "m"
    assert served.read_scores(pd.DataFrame({"id": ["a", "c"]}), path) is None
    table.assign(prompt_sha256="other").to_csv(path, index=False)
    assert served.read_scores(df, path) is None


def test_write_scores_refuses_bad_input_before_serving(tmp_path, write_registry):
    df = pd.DataFrame({"id": ["a"], "item": ["x"], "reply": ["r"], "prefill": [None]})
    out = tmp_path / "s.csv"
    with pytest.raises(RegistryError):
        served.write_scores("no-such-model", df, out)
    write_registry(f"""models:
  b:
    kind: embedded
    parts: [{{package: p, version: "1.0", path: p/data/part01.bin}}]
    sha256: {"cd" * 32}
    mode: completion
    chat_template: experiments/chat_templates/plain.jinja
  c:
    kind: embedded
    parts: [{{package: p, version: "1.0", path: p/data/part01.bin}}]
    sha256: {"ef" * 32}
""")
    with pytest.raises(ValueError, match="^The served judge asks through chat turns; b is a completion-mode model"):
        served.write_scores("b", df, out)
    with pytest.raises(ValueError, match="No labelled replies"):
        served.write_scores("c", df.iloc[:0], out)
    assert not out.exists()
