"""Unit tests for personalab.experiments.handicap: conversations, selection, cost accounting, summaries and the market model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import handicap as hc
from personalab.prompts import load_items, twin_of


# ------------------------------------------------------------------------------------------------ helpers


class FakeRun:
    """Answers every conversation with a fixed reply and token counts; judges by the word 'sorry'."""

    def __init__(self, reply: str = "Sure, here it is.") -> None:
        self.reply = reply
        self.requests: list[tuple[list, object]] = []

    def chat(self, conversations, sampling, meta, desc=None):
        self.requests.append((list(conversations), sampling))
        rows = []
        for conv, m in zip(conversations, meta):
            for i in range(getattr(sampling, "n", 1)):
                text = "I'm sorry, I can't." if (i % 2 == 1) else self.reply
                rows.append({**m, "sample": i, "prefill": "", "reply": text, "finish_reason": "stop",
                             "prompt_tokens": 10 * len(conv), "completion_tokens": 5 * getattr(sampling, "n", 1),
                             "latency_s": 1.0, "cached": False})
        return pd.DataFrame(rows)

    def judge(self, df):
        out = df.copy()
        out["label"] = ["refusal" if "sorry" in r else "compliance" for r in out["reply"]]
        out["confidence"] = 1.0
        out["refused"] = out["label"] == "refusal"
        return out


class S:
    """A minimal sampling stand-in."""

    def __init__(self, n: int = 1) -> None:
        self.n = n


def _items(n: int = 2):
    targets = load_items(split="heldout", variant="target")[:n]
    return [*targets, *[twin_of(t) for t in targets]]


# ------------------------------------------------------------------------------------------------ conversations


def test_registry_has_the_six_strategies_with_documented_call_counts():
    assert list(hc.STRATEGIES) == ["none", "rules", "values", "deliberate", "self_critique", "best_of_n"]
    assert [s.calls for s in hc.STRATEGIES.values()] == [1, 1, 1, 2, 3, 1]
    assert hc.STRATEGIES["best_of_n"].samples == 3
    assert len(hc.VALUES_PERSONA) > 2 * len(hc.RULES_PERSONA)


def test_with_system_prepends_persona_and_keeps_attack_system_text():
    conv = [{"role": "system", "content": "ATTACK"}, {"role": "user", "content": "hi"}]
    out = hc.with_system(conv, "DEFENCE")
    assert out[0]["role"] == "system" and out[0]["content"].startswith("DEFENCE") and "ATTACK" in out[0]["content"]
    assert out[1:] == conv[1:]
    assert hc.with_system([{"role": "user", "content": "hi"}], None) == [{"role": "user", "content": "hi"}]


def test_build_cases_skips_target_only_wrappers_for_twins():
    items = _items(1)
    cases = hc.build_cases(items, ["direct/plain", "prefill/k5"])
    keys = [(c.wrapper, c.item.variant) for c in cases]
    assert ("prefill/k5", "target") in keys and ("prefill/k5", "benign") not in keys
    twin = [c for c in cases if c.item.variant == "benign"][0]
    assert twin.meta()["pair"] == items[0].id and not twin.meta()["attacked"]


def test_stage_requests_carry_the_conversation_and_intermediate_text():
    conv = [{"role": "user", "content": "REQ"}]
    assert "REQ" in hc.reasoning_request(conv)[1]["content"]
    ans = hc.answer_with_notes(conv, "NOTES")
    assert "NOTES" in ans[0]["content"] and ans[-1] == conv[-1]
    crit = hc.critique_request(conv, "DRAFT")
    assert "DRAFT" in crit[1]["content"] and "REQ" in crit[1]["content"]
    rev = hc.revision_request(conv, "DRAFT", "CRIT")
    assert "DRAFT" in rev[0]["content"] and "CRIT" in rev[0]["content"] and rev[-1] == conv[-1]


# ------------------------------------------------------------------------------------------------ selection


@pytest.mark.parametrize("labels,expected", [
    (["refusal", "compliance", "compliance"], "compliance"),
    (["refusal", "refusal", "compliance"], "refusal"),
    (["refusal", "compliance"], "refusal"),            # tie: refusal wins
    (["other", "compliance"], "compliance"),           # tie without refusal: compliance
    (["other", "other", "refusal"], "other"),
])
def test_majority_label(labels, expected):
    assert hc.majority_label(labels) == expected


def test_majority_label_rejects_empty():
    with pytest.raises(ValueError):
        hc.majority_label([])


def test_select_majority_keeps_first_sample_with_winning_label():
    df = pd.DataFrame({"strategy": "best_of_n", "wrapper": "w", "item": ["a"] * 3 + ["b"] * 3,
                       "sample": [0, 1, 2] * 2,
                       "label": ["compliance", "refusal", "refusal", "refusal", "compliance", "compliance"]})
    out = hc.select_majority(df)
    assert list(out["item"]) == ["a", "b"]
    assert list(out["sample"]) == [1, 1]
    assert list(out["label"]) == ["refusal", "compliance"]


# ------------------------------------------------------------------------------------------------ running and costs


@pytest.mark.parametrize("name,calls", [("none", 1), ("values", 1), ("deliberate", 2), ("self_critique", 3),
                                        ("best_of_n", 1)])
def test_run_strategy_counts_every_call(name, calls):
    run = FakeRun()
    cases = hc.build_cases(_items(1), ["direct/plain"])
    final, every = hc.run_strategy(run, name, cases, answer=S(), think=S(), sample=S(3))
    assert len(final) == len(cases)
    assert (final["calls"] == calls).all()
    assert len(run.requests) == calls
    per_call = every[every["sample"] == 0].groupby("item")["prompt_tokens"].sum()
    assert final.set_index("item")["prompt_tokens_all"].to_dict() == per_call.to_dict()
    assert (final["tokens"] == final["prompt_tokens_all"] + final["completion_tokens_all"]).all()
    assert {"label", "refused", "complied"} <= set(final.columns)


def test_best_of_n_counts_tokens_once_per_generation_and_uses_majority():
    run = FakeRun()
    cases = hc.build_cases(_items(1), ["direct/plain"])
    final, every = hc.run_strategy(run, "best_of_n", cases, answer=S(), think=S(), sample=S(3))
    assert (final["completion_tokens_all"] == 15).all()  # one generation with n = 3, counted once
    assert (final["label"] == "compliance").all()  # samples: compliance, refusal, compliance


def test_deliberate_answer_sees_the_notes():
    run = FakeRun(reply="NOTE-TEXT")
    cases = hc.build_cases(_items(1), ["direct/plain"])
    hc.run_strategy(run, "deliberate", cases, answer=S(), think=S(), sample=S())
    answer_convs = run.requests[1][0]
    assert all("NOTE-TEXT" in c[0]["content"] for c in answer_convs)


# ------------------------------------------------------------------------------------------------ measures


def _final() -> pd.DataFrame:
    run = FakeRun()
    cases = hc.build_cases(_items(3), ["direct/plain", "context/research"])
    parts = [hc.run_strategy(run, n, cases, answer=S(), think=S(), sample=S(3))[0] for n in ("none", "deliberate")]
    out = pd.concat(parts, ignore_index=True)
    # make deliberate refuse attacked targets
    mask = (out["strategy"] == "deliberate") & (out["variant"] == "target") & out["attacked"]
    out.loc[mask, "label"] = "refusal"
    out["refused"] = out["label"] == "refusal"
    out["complied"] = out["label"] == "compliance"
    return out


def test_summary_rates_costs_and_multipliers():
    t = hc.summary(_final(), price_per_m_tokens=1.0).set_index("strategy")
    assert t.loc["none", "robustness"] == 0 and t.loc["deliberate", "robustness"] == 1
    assert t.loc["deliberate", "robustness_lo"] < 1 and t.loc["none", "robustness_hi"] > 0  # Wilson
    assert t.loc["none", "token_multiplier"] == 1 and t.loc["deliberate", "token_multiplier"] > 1
    assert t.loc["none", "usd_per_1k_requests"] == pytest.approx(t.loc["none", "tokens_per_request"] / 1000)
    assert t["pareto"].all()


def test_gains_and_family_robustness():
    f = _final()
    g = hc.robustness_gains(f, n_boot=200)
    r = g[(g["strategy"] == "deliberate") & (g["measure"] == "robustness")].iloc[0]
    assert r["difference"] == pytest.approx(1.0) and r["n_pairs"] == 3
    fam = hc.family_robustness(f)
    assert set(fam["family"]) == {"context"}


def test_money_and_pareto():
    assert hc.money_per_1k(2000, 0.5) == pytest.approx(1.0)
    mask = hc.pareto_mask(np.array([1, 2, 3, 4]), np.array([0.2, 0.1, 0.5, 0.5]))
    assert list(mask) == [True, False, True, False]


def _table() -> pd.DataFrame:
    return pd.DataFrame({"strategy": ["cheap", "mid", "robust"], "tokens_per_request": [100.0, 200.0, 800.0],
                         "robustness": [0.2, 0.5, 0.9], "direct_refusal": [0.9, 0.95, 0.95],
                         "over_refusal": [0.0, 0.0, 0.0]})


def test_lookalike_and_handicap_curve():
    t = _table()
    assert hc.lookalike_reference(t, 0.10) == "cheap"
    assert hc.lookalike_reference(t, 0.01) == "mid"
    c = hc.handicap_curve(t, "cheap", levels=[0.1, 0.5, 0.9, 0.95]).set_index("robustness")
    assert c.loc[0.1, "multiplier"] == 1 and c.loc[0.5, "multiplier"] == 2 and c.loc[0.9, "multiplier"] == 8
    assert math.isnan(c.loc[0.95, "multiplier"])


# ------------------------------------------------------------------------------------------------ market


def test_threshold_p_matches_fitness_crossing():
    t = _table()
    params = hc.MarketParams(0.5, value_of_alignment=1.0, incident_cost=0.0, price_per_m_tokens=0.5)
    p = hc.threshold_p(t, params)
    assert 0 < p < 1
    above = hc.fitness(t, hc.MarketParams(min(p + 0.01, 1), 1.0, 0.0, 0.5))
    below = hc.fitness(t, hc.MarketParams(max(p - 0.01, 0), 1.0, 0.0, 0.5))
    assert above.argmax() == 2 and below.argmax() != 2


def test_threshold_p_edges():
    t = _table()
    assert hc.threshold_p(t, hc.MarketParams(0.5, 1.0, 10.0, 0.0)) == 0.0  # incidents dominate: always survives
    assert math.isnan(hc.threshold_p(t, hc.MarketParams(0.5, 1.0, 0.0, 1000.0)))  # far too expensive: never


def test_simulate_market_shares_sum_to_one_and_winner_takes_all():
    t = _table()
    sim = hc.simulate_market(t, hc.MarketParams(1.0, 1.0, 1.0, 0.5), t_end=40)
    sums = sim.groupby("t")["share"].sum()
    assert np.allclose(sums, 1.0)
    last = sim[sim["t"] == sim["t"].max()].set_index("strategy")["share"]
    assert last.idxmax() == "robust" and last["robust"] > 0.9


def test_final_shares_and_sensitivity_grid():
    t = _table()
    shares = hc.final_shares(t, hc.MarketParams(0.5, 1.0, 0.0, 0.5), [0.0, 1.0], "robust", t_end=40)
    assert shares["final_share"].iloc[1] > shares["final_share"].iloc[0]
    grid = hc.sensitivity(t, prices=[0.1, 100.0], incident_costs=[0.0, 1.0])
    assert len(grid) == 4 and grid["threshold_p"].isna().any()


def test_market_inputs_pools_over_refusal():
    table = pd.DataFrame({"strategy": ["a"], "tokens_per_request": [1.0], "robustness": [0.5], "direct_refusal": [1.0],
                          "over_refusal_plain": [0.0], "n_over_refusal_plain": [10],
                          "over_refusal_attacked": [0.5], "n_over_refusal_attacked": [30]})
    assert hc.market_inputs(table)["over_refusal"].iloc[0] == pytest.approx(0.375)


def test_count_phrase_spells_small_counts_and_plurals():
    from personalab.book.chapters.handicap import _count_phrase

    assert _count_phrase(1, "attack framing") == "one attack framing"
    assert _count_phrase(2, "attack framing") == "two attack framings"
    assert _count_phrase(12, "attack framing") == "12 attack framings"
