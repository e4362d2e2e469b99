"""Unit tests for personalab.experiments.personas: the persona registry, prompts and the variance decomposition (no server)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personalab.book.plots import personas as persona_plots
from personalab.experiments import personas as ps
from personalab.harness.client import Sampling
from personalab.prompts import load_items


def test_registry_has_default_without_system_prompt_and_unique_keys():
    keys = [p.key for p in ps.PERSONAS]
    assert len(keys) == len(set(keys)) == 8
    default = ps.get_persona("assistant")
    assert default.system is None and default.preamble == ""
    assert {p.group for p in ps.PERSONAS} <= set(ps.GROUP_ORDER)
    with pytest.raises(KeyError, match="valid keys"):
        ps.get_persona("nobody")


def test_chat_and_completion_prompts():
    item = load_items(split="heldout", variant="target")[0]
    assert ps.chat_conversation(ps.get_persona("assistant"), item) == [{"role": "user", "content": item.text}]
    conv = ps.chat_conversation(ps.get_persona("teacher"), item)
    assert conv[0]["role"] == "system" and "schoolteacher" in conv[0]["content"]
    assert ps.completion_prompt(ps.get_persona("assistant"), item) == f"Question: {item.text}\nAnswer:"
    prompt = ps.completion_prompt(ps.get_persona("fixer"), item)
    assert prompt.startswith("The following question was answered by a cynical fixer")
    assert prompt.endswith("\nAnswer:")
    s = ps.completion_sampling(Sampling(max_tokens=8))
    assert set(ps.STOP) <= set(s.stop) and s.max_tokens == 8


def test_anova_shares_pure_persona_and_pure_request():
    persona_only = np.tile([1, 0, 1, 0], (6, 1))  # columns = personas
    s = ps.anova_shares(persona_only)
    assert s["persona"] == pytest.approx(1) and s["request"] == pytest.approx(0)
    request_only = persona_only.T
    s = ps.anova_shares(request_only)
    assert s["request"] == pytest.approx(1) and s["persona"] == pytest.approx(0)
    assert all(math.isnan(v) for v in ps.anova_shares(np.ones((3, 3))).values())


def test_anova_shares_sum_to_one_and_interaction():
    checker = np.array([[1, 0], [0, 1]])  # pure interaction
    s = ps.anova_shares(checker)
    assert s["interaction"] == pytest.approx(1)
    rng = np.random.default_rng(0)
    s = ps.anova_shares(rng.integers(0, 2, size=(10, 8)))
    assert sum(s.values()) == pytest.approx(1)


def _fake(n_items: int = 12) -> pd.DataFrame:
    rows = []
    for mode in ps.MODES:
        for p in ps.PERSONAS:
            for i in range(n_items):
                refused = (p.group in ("default", "pro-social")) and (i % 3 != 0 or mode == "chat")
                rows.append({"mode": mode, "persona": p.key, "group": p.group, "item": f"it-{i:02d}",
                             "variant": "target" if i % 2 == 0 else "benign", "refused": refused})
    return pd.DataFrame(rows)


def test_variance_decomposition_and_rates_tables():
    df = _fake()
    shares = ps.variance_decomposition(df, n_boot=50, seed=1)
    assert set(shares["component"]) == {*ps.COMPONENTS, ps.DIFFERENCE}
    assert len(shares) == len(ps.MODES) * 2 * 4
    chat = shares[(shares["mode"] == "chat") & (shares["items"] == "targets")].set_index("component")
    assert chat.loc["persona", "share"] == pytest.approx(1)
    assert (shares["lo"] <= shares["share"] + 1e-9).all() and (shares["share"] <= shares["hi"] + 1e-9).all()
    rates = ps.persona_rates(df)
    assert list(rates["persona"][:len(ps.PERSONAS)]) == [p.key for p in ps.PERSONAS]
    assert {"rate", "lo", "hi", "group"} <= set(rates.columns)
    diff = ps.mode_difference(df, n_boot=50)
    assert len(diff) == len(ps.PERSONAS)


def test_figures_build():
    df = _fake()
    rates = ps.persona_rates(df)
    for fig in (persona_plots.persona_rate_plot(rates), persona_plots.mode_plot(rates),
                persona_plots.variance_plot(ps.variance_decomposition(df, n_boot=20))):
        assert fig.axes


def test_permutation_null_floor_and_pvalue():
    strong = np.tile([1, 1, 1, 1, 0, 0, 0, 0], (12, 1))
    null = ps.permutation_null(strong, n_perm=200, seed=0)
    floor, p = null["persona"]
    assert floor < 0.3 and p < 0.05
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 2, size=(20, 8))
    floor, p = ps.permutation_null(noise, n_perm=200, seed=0)["persona"]
    assert 0 < floor < 0.15 and p > 0.01


def test_judge_agreement_with_keyword():
    df = pd.DataFrame({"mode": ["chat", "chat", "completion"], "reply": ["I'm sorry, but I can't help with that.",
                                                                     "Sure, here it is.", "I cannot do that."],
                       "refused": [True, False, False]})
    t = ps.judge_agreement(df, other="keyword").set_index("mode")
    assert t.loc["chat", "rate"] == 1.0 and t.loc["completion", "n"] == 1
