"""The served judge against a real vLLM server: one token per reply, log-odds recorded with the prompt's hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab.harness.client import Harness
from personalab.judges import served
from personalab.judges.labels import LABELS_PATH, read_pool
from personalab.judges.validate import labelled_pool

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_scores_real_replies_and_reads_them_back(endpoint, tmp_path):
    df = labelled_pool(read_pool(), pd.read_csv(LABELS_PATH)).head(4)
    harness = Harness(endpoint, progress=False)
    path = served.write_scores(endpoint.spec.id, df, tmp_path / "scores.csv", harness=harness)
    scores, meta = served.read_scores(df, path)
    assert len(scores) == 4 and np.isfinite(scores).all()
    assert meta["judge_model"] == endpoint.spec.id
    table = pd.read_csv(path)
    assert set(table["prompt_sha256"]) == {served.PROMPT_SHA256} and table["judge_weight_sha256"].notna().all()
    again = served.score_rows(harness, df)  # the second pass is answered by the cache
    assert np.allclose(again, scores)


def test_asks_both_questions_of_real_replies_and_reads_them_back(endpoint, tmp_path):
    from personalab.judges import request_check

    df = labelled_pool(read_pool(), pd.read_csv(LABELS_PATH))
    df = df[df["family"] == "refusal_prefill"]
    asked = request_check.question_requests(
        request_check._reading(df, request_check.CHOSEN_JUDGE, request_check.BASE_JUDGE))
    ids = [*asked.loc[asked["check"] == "offer_is_task", "id"][:2],
           *asked.loc[asked["check"] == "off_target", "id"][:2]]
    path = request_check.write_question_scores(endpoint.spec.id, df[df["id"].isin(ids)], tmp_path / "q.csv",
                                               harness=Harness(endpoint, progress=False))
    table = request_check.read_question_scores(path)
    assert sorted(table["id"]) == sorted(ids) and set(table["check"]) == {"offer_is_task", "off_target"}
    assert np.isfinite(table["log_odds"]).all() and table["judge_weight_sha256"].notna().all()
