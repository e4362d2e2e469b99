"""`personalab stability` end to end: one repetition of prefill_sure from an empty cache on a real server."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from personalab.paths import REPO_ROOT
from personalab.stability import rerun

from .conftest import TEST_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_rerun_writes_the_verdicts_of_the_rows_it_reran(endpoint, tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"runs": [{"experiment": "prefill_sure", "models": [TEST_MODEL], "params": {
        "split": "heldout", "n_items": 2, "max_tokens": 16, "n_boot": 200}}]}))
    # each repetition has its own empty cache and server state, so point it at the session's server explicitly
    monkeypatch.setenv("PERSONALAB_ENDPOINT", endpoint.base_urls[0])
    committed = REPO_ROOT / "experiments" / "results" / "prefill_sure" / TEST_MODEL
    before = {p.name: p.read_bytes() for p in committed.iterdir()}

    table = rerun(tmp_path / "out", seeds=(1,), only=["prefill_sure"], config=config,
                  verdicts_dir=tmp_path / "stability")

    written = pd.read_csv(tmp_path / "stability" / "verdicts.csv")
    assert written.to_dict("records") == table.to_dict("records")
    assert written["key"].tolist() == ["depth"]  # the only row that reads prefill_sure
    row = written.iloc[0]
    assert row["n_repetitions"] == 1 and row["verdicts"] == row["committed"] and row["held"]
    assert row["varied"] == f"empty generation cache; seed 1; re-ran prefill_sure on {TEST_MODEL}"
    rep = tmp_path / "out" / "rep_1"
    results = rep / "experiments" / "results" / "prefill_sure" / TEST_MODEL
    responses = pd.read_csv(results / "responses.csv")
    assert len(responses) == 4 and not responses["cached"].any()  # 2 requests, direct and prefilled, all fresh
    assert json.loads((results / "provenance.json").read_text())["seed"] == 1
    assert (rep / ".personalab" / "generations.sqlite").stat().st_size > 0
    assert (rep / "experiments" / "executed" / "prefill_sure" / f"{TEST_MODEL}.ipynb").exists()
    assert (rep / "figures" / "prefill_sure" / TEST_MODEL / "refusal_rate.svg").exists()
    prov = json.loads((tmp_path / "stability" / "provenance.json").read_text())["runs"][-1]
    assert prov["keys"] == ["depth"] and prov["seeds"] == [1]
    assert prov["repetitions"][0]["servers"][0]["vllm_version"]
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == before
