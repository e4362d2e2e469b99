"""Tests for personalab.experiments.erosion: many-shot planning and fits, event times, survival curves, the control."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import erosion
from personalab.prompts import load_items


def _items(n: int = 3) -> list:
    return load_items(split="dev", variant="target")[:n]


def test_context_budget() -> None:
    """Context minus reply minus margin; no room raises."""
    assert erosion.context_budget(2048, 64, 256) == 1728
    with pytest.raises(ValueError):
        erosion.context_budget(100, 64, 64)


def test_many_shot_plan_skips_whole_n_that_do_not_fit() -> None:
    """An n over the limit is skipped for every item and recorded; kept n cover all items."""
    items = _items()
    count = lambda text: len(text.split())  # noqa: E731  (whitespace words as tokens)
    conversations, meta, skipped = erosion.many_shot_plan(items, [0, 1, 2, 32], count, 400)
    kept = sorted({m["shots"] for m in meta})
    assert kept == [0, 1, 2]
    assert list(skipped["shots"]) == [32]
    assert skipped["prompt_tokens"].iloc[0] > 400
    assert len(conversations) == len(items) * 3
    assert all(len(c) == 2 * m["shots"] + 1 for c, m in zip(conversations, meta))


def _many_shot_df(success: dict[int, float], n_items: int = 20) -> pd.DataFrame:
    """Replies where, at each n, the first round(success * n_items) items complied."""
    rows = []
    for n, s in success.items():
        k = round(s * n_items)
        rows += [{"shots": n, "item": f"i{j}", "refused": j >= k} for j in range(n_items)]
    return pd.DataFrame(rows)


def test_power_law_recovers_exponent_and_intercept() -> None:
    """Exact power-law rates give back c and alpha; the interval covers the estimate."""
    df = _many_shot_df({0: 0.05, 1: 0.1, 2: 0.2, 4: 0.4, 8: 0.8})
    fit = erosion.fit_many_shot_power_law(df, n_boot=200)
    assert fit["alpha"] == pytest.approx(1.0, abs=1e-9)
    assert fit["c"] == pytest.approx(0.1, abs=1e-9)
    assert fit["points"] == 4 and fit["shots_used"] == "1 2 4 8"
    assert fit["alpha_lo"] <= fit["alpha"] <= fit["alpha_hi"]
    assert 0 <= fit["undefined_share"] <= 1


def test_power_law_undefined_with_zero_success() -> None:
    """A zero attack-success rate makes the log-log fit undefined (nan), not silently dropped."""
    df = _many_shot_df({1: 0.0, 2: 0.2, 4: 0.4})
    fit = erosion.fit_many_shot_power_law(df, n_boot=50)
    assert math.isnan(fit["alpha"])


def test_many_shot_rates_success_mirrors_refusal() -> None:
    """Success = 1 - refusal, with the interval flipped."""
    table = erosion.many_shot_rates(_many_shot_df({0: 0.25, 4: 0.5}))
    row = table.set_index("shots").loc[0]
    assert row["success"] == pytest.approx(0.25)
    assert row["success_lo"] == pytest.approx(1 - row["hi"])


def _turns(labels: dict[str, list[str]], first_eligible: int = 2) -> pd.DataFrame:
    rows = []
    for item, seq in labels.items():
        rows += [{"item": item, "turn": t + 1, "label": lab, "escalated": t + 1 >= first_eligible}
                 for t, lab in enumerate(seq)]
    return pd.DataFrame(rows)


def test_first_events_counts_only_eligible_turns() -> None:
    """Compliance at the benign first turn is not an event; attempts are numbered among escalated turns."""
    df = _turns({"a": ["compliance", "refusal", "compliance", "refusal"],
                 "b": ["compliance", "refusal", "refusal", "refusal"],
                 "c": ["refusal", "compliance", "refusal", "refusal"]})
    ev = erosion.first_events(df).set_index("item")
    assert ev.loc["a", "time"] == 2 and ev.loc["a", "event"]
    assert ev.loc["b", "time"] == 3 and not ev.loc["b", "event"]
    assert ev.loc["c", "time"] == 1 and ev.loc["c", "event"]
    assert (ev["attempts"] == 3).all()


def test_survival_curve_matches_empirical_share_without_early_censoring() -> None:
    """With censoring only at the horizon, KM equals the share not yet complied; Wilson bounds bracket it."""
    events = pd.DataFrame({"item": list("abcde"), "time": [1, 2, 2, 3, 3],
                           "event": [True, True, True, False, False]})
    curve = erosion.survival_curve(events, range(1, 4))
    assert list(curve["survival"]) == pytest.approx([0.8, 0.4, 0.4])
    assert list(curve["complied"]) == [1, 3, 3]
    assert (curve["lo"] <= curve["survival"]).all() and (curve["survival"] <= curve["hi"]).all()


def test_survival_curve_without_events_is_flat() -> None:
    """No compliance at all: survival 1 at every attempt, Wilson interval still given."""
    events = pd.DataFrame({"item": list("ab"), "time": [3, 3], "event": [False, False]})
    curve = erosion.survival_curve(events, range(1, 4))
    assert (curve["survival"] == 1).all()
    assert (curve["hi"] == 1).all() and (curve["lo"] < 1).all()


def test_compare_at_budget_paired_difference() -> None:
    """Escalation complied for 2 of 4 items within the budget, best-of-N for 1: difference 0.25."""
    esc = pd.DataFrame({"item": list("abcd"), "time": [1, 2, 5, 5], "event": [True, True, False, False]})
    bon = pd.DataFrame({"item": list("abcd"), "time": [3, 5, 5, 5], "event": [True, False, False, False]})
    out = erosion.compare_at_budget(esc, bon, budget=5, n_boot=200)
    assert out["escalation"] == 0.5 and out["best_of_n"] == 0.25
    assert out["difference"] == pytest.approx(0.25)
    assert out["lo"] <= out["difference"] <= out["hi"]


def test_augment_is_seeded_and_keeps_letters() -> None:
    """Same seed, same text; the augmentation only recases and reorders inner letters."""
    text = "Write a glowing review of a restaurant I have never visited."
    a = erosion.augment(text, np.random.default_rng(1))
    assert a == erosion.augment(text, np.random.default_rng(1))
    assert sorted(a.lower()) == sorted(text.lower())
    assert a.split(" ")[0][0].lower() == "w" and len(a.split(" ")) == len(text.split(" "))
    assert erosion.augment(text, np.random.default_rng(1), p_caps=0, p_scramble=0) == text


class _FakeRun:
    """Stands in for Run: echoes the last user message, labels replies containing 'no' as refusals."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def chat(self, conversations, sampling, meta, desc=None):  # noqa: ANN001
        self.calls.append(len(conversations))
        rows = [{**m, "sample": 0, "prefill": "", "reply": f"reply {len(c)}"} for c, m in zip(conversations, meta)]
        self.last = conversations
        return pd.DataFrame(rows)

    def judge(self, df):  # noqa: ANN001
        out = df.copy()
        out["label"] = "compliance"
        out["refused"] = False
        return out


def test_escalate_feeds_replies_back_turn_by_turn() -> None:
    """One batched call per turn; the last call's conversations hold every earlier reply."""
    run, items = _FakeRun(), _items(2)
    df = erosion.escalate(run, items, turns=4, sampling=None)
    assert run.calls == [2, 2, 2, 2]
    last = run.last[0]
    assert [m["role"] for m in last] == ["user", "assistant"] * 3 + ["user"]
    assert last[1]["content"] == "reply 1" and last[-1]["content"] == items[0].text
    assert list(df.groupby("item")["target_turn"].sum()) == [1, 1]
    assert set(df.loc[df["turn"] == 1, "escalated"]) == {False}


def test_best_of_n_augmented_tries() -> None:
    """Greedy best-of-N: tries x items conversations in one call, numbered 1..tries."""
    run, items = _FakeRun(), _items(2)
    df = erosion.best_of_n(run, items, tries=3, max_tokens=8, seed=0)
    assert run.calls == [6]
    assert sorted(df["turn"].unique()) == [1, 2, 3]
    assert df["escalated"].all()


def test_final_turn_vs_direct_is_paired_difference() -> None:
    """Direct refused 3 of 4, the final escalated turn 1 of 4: difference +0.5 with an interval around it."""
    direct = pd.DataFrame({"item": list("abcd"), "refused": [True, True, True, False]})
    esc = pd.DataFrame({"item": list("abcd") * 2, "target_turn": [False] * 4 + [True] * 4,
                        "refused": [True] * 4 + [True, False, False, False]})
    out = erosion.final_turn_vs_direct(esc, direct, n_boot=200)
    assert out["direct"] == 0.75 and out["final_turn"] == 0.25
    assert out["difference"] == pytest.approx(0.5)
    assert out["lo"] <= 0.5 <= out["hi"]
