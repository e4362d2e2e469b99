"""Tests for personalab.experiments.depth: sweep conditions, outcomes, fits, first-token measures (no server)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import depth
from personalab.book.chapters import depth as depth_chapter
from personalab.book.plots import depth as depth_plots
from personalab.attacks import REFUSAL_OPENING
from personalab.experiment import Run
from personalab.harness.registry import get_model
from personalab.harness.server import Endpoint
from personalab.prompts import load_items

WORDS = depth.TokenUnit("whitespace words")


def _item():
    return load_items(split="dev", variant="target")[0]


def test_token_unit_falls_back_to_words_for_remote_models() -> None:
    """A model without a local checkpoint counts k in whitespace words, and says so."""
    unit = depth.token_unit(SimpleNamespace(kind="remote", id="x"))
    assert unit.name == "whitespace words" and unit.tokenize is None
    assert unit.count("a b  c") == 3


def test_sweep_conditions_build_prefills_of_depth_k() -> None:
    """k = 0 is the direct request; k words of the compliant (or refusal) opening otherwise."""
    item = _item()
    conds = depth.sweep_conditions([0, 3], WORDS)
    assert list(conds) == ["k=0", "k=3"]
    assert conds["k=0"](item) == [{"role": "user", "content": item.text}]
    assert conds["k=3"](item)[-1] == {"role": "assistant", "content": " ".join(item.compliant_start.split()[:3])}
    rev = depth.sweep_conditions([2], WORDS, family="refusal_prefill")["k=2"]
    assert rev.family == "refusal_prefill"
    assert rev(item)[-1]["content"] == " ".join(REFUSAL_OPENING.split()[:2])


def test_sweep_conditions_reject_bad_input() -> None:
    """Unknown families and repeated k values fail loudly."""
    with pytest.raises(ValueError):
        depth.sweep_conditions([1], WORDS, family="other")
    with pytest.raises(ValueError):
        depth.sweep_conditions([1, 1], WORDS)


def test_sweep_conditions_with_a_tokenizer_pair() -> None:
    """A tokenize/detokenize pair defines the unit (here: characters)."""
    unit = depth.TokenUnit("chars", list, "".join)
    assert depth.sweep_conditions([4], unit)["k=4"](_item())[-1]["content"] == _item().compliant_start[:4]


def _judged(rates_by_k: dict[int, float], n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, p in rates_by_k.items():
        for i in range(n):
            complied = rng.random() < p
            rows.append({"condition": f"k={k}", "item": f"it{i}", "refused": not complied,
                         "label": "compliance" if complied else "refusal"})
    return depth.add_outcomes(pd.DataFrame(rows))


def test_add_outcomes_and_sweep_rates() -> None:
    """depth comes from the condition name; complied = not refused; the other share is reported."""
    df = pd.DataFrame({"condition": ["k=0", "k=0", "k=5"], "item": ["a", "b", "a"], "refused": [True, False, False],
                       "label": ["refusal", "other", "compliance"]})
    out = depth.add_outcomes(df)
    assert out["depth"].tolist() == [0, 0, 5]
    assert out["complied"].tolist() == [False, True, True]
    rates = depth.sweep_rates(out)
    row0 = rates.set_index("depth").loc[0]
    assert row0["k"] == 1 and row0["n"] == 2 and row0["other_rate"] == 0.5
    assert 0 <= row0["lo"] <= row0["rate"] <= row0["hi"] <= 1


def test_fit_depth_finds_a_crossing_inside_the_sweep() -> None:
    """A rising curve crosses 50 % between the k values where the observed rate crosses it."""
    df = _judged({0: 0.05, 1: 0.1, 3: 0.3, 5: 0.5, 10: 0.8, 40: 0.95})
    fit = depth.fit_depth(df, n_boot=50)
    assert fit.identified and fit.b > 0
    assert 1 < fit.k50 < 15 and fit.k50_lo <= fit.k50 <= fit.k50_hi
    assert fit.status == "crosses 50% within the sweep"
    assert fit.predict([0])[0] < 0.5 < fit.predict([40])[0]


def test_fit_depth_reports_constant_outcomes_and_early_crossings() -> None:
    """No fit when nothing varies; an already-compliant model is said to start above 50 %."""
    flat = _judged({0: 1.0, 5: 1.0})
    fit = depth.fit_depth(flat, n_boot=10)
    assert not fit.identified and fit.status.startswith("not identified")
    high = _judged({0: 0.8, 5: 0.9, 40: 1.0}, seed=1)
    assert depth.fit_depth(high, n_boot=10).status == "at or above 50% already at k = 0"
    with pytest.raises(ValueError):
        depth.fit_depth(high, scale="cubic")


def test_fit_band_brackets_the_fit() -> None:
    """The pointwise band is ordered and contains the point estimate at most grid points."""
    df = _judged({0: 0.05, 2: 0.3, 5: 0.5, 10: 0.8, 40: 0.95})
    fit = depth.fit_depth(df, n_boot=20)
    band, crossings = depth.fit_band(df, grid=[0, 5, 40], n_boot=60)
    assert (band["lo"] <= band["hi"]).all()
    half = crossings.set_index("level").loc[0.5]
    assert half["k"] == pytest.approx(fit.k50) and half["lo"] <= half["k"] <= half["hi"]
    inside = (band["lo"] <= fit.predict(band["depth"]) + 1e-9) & (fit.predict(band["depth"]) <= band["hi"] + 1e-9)
    assert inside.sum() >= 2


def test_auc_known_values() -> None:
    """Perfect ranking 1, reversed 0, ties one half, one class only nan."""
    assert depth.auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert depth.auc([0.1, 0.9], [True, False]) == 0.0
    assert depth.auc([0.5, 0.5], [True, False]) == 0.5
    assert math.isnan(depth.auc([0.5, 0.2], [True, True]))


def _probe_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    probes = pd.DataFrame({
        "condition": ["direct/plain"] * 4 + ["identity/x"] * 2,
        "family": ["direct"] * 4 + ["identity"] * 2,
        "item": ["a", "b", "c", "d", "a", "b"],
        "variant": ["target", "target", "benign", "benign", "target", "target"],
        "first_token": ["I", "I", "Sure", "Here", "Sure", "I"],
        "top": [{"I": 0.9, "Sure": 0.1}, {"I": 0.6}, {"Sure": 0.7, "I": 0.2}, {"Here": 0.8}, {"Sure": 0.9},
                {"I": 0.5, "Sure": 0.4}],
    })
    replies = probes[["condition", "item"]].assign(refused=[True, True, False, False, False, True])
    return probes, replies


def test_opening_tokens_and_canonical_refusal() -> None:
    """The canonical opening is the commonest m-token start of direct refusals, else of any, else the stock one."""
    chars = depth.TokenUnit("chars", list, "".join)
    assert depth.opening_tokens("  I'm sorry", chars, 3) == ("I", "'", "m")
    assert depth.opening_tokens("I am sorry now", WORDS, 2) == ("I", "am")
    replies = pd.DataFrame({"family": ["direct", "direct", "direct", "identity"],
                            "reply": ["I can't.", "I can't do it", "Sure!", "Sorry, no"],
                            "refused": [True, True, False, True]})
    tokens, rule = depth.canonical_refusal(replies, WORDS, m=1)
    assert tokens == ("I",) and "direct requests: 2 of 2" in rule
    only_other = replies.assign(refused=[False, False, False, True])
    assert depth.canonical_refusal(only_other, WORDS, m=1)[0] == ("Sorry,",)
    assert depth.canonical_refusal(replies.assign(refused=False), WORDS, m=2)[0] == ("I'm", "sorry,")


class _FakeHarness:
    """Answers one-token probes: P(next token) depends on the prefill, as a tiny language model would."""

    def __init__(self) -> None:
        self.seen: list = []

    def generate(self, requests, desc=""):
        self.seen += requests
        out = []
        for req in requests:
            last = req.messages[-1]
            prefix = last["content"] if last["role"] == "assistant" else ""
            top = {"": {"I": 0.5, "Sure": 0.4}, "I": {"'m": 0.8}, "I'm": {" sorry": 0.5, " happy": 0.5}}[prefix]
            out.append(SimpleNamespace(logprobs=[[{"token": max(top, key=top.get), "logprob": 0.0,
                                                   "top": {t: math.log(p) for t, p in top.items()}}]],
                                       provenance={}, completion_tokens=1, prompt_tokens=10, cached=False))
        return out


def test_first_token_and_sequence_probes_multiply_conditional_probabilities() -> None:
    """P(opening) is the product of the probed conditionals; sampling and generations are recorded on the run."""
    spec = get_model("smollm2-135m-instruct")
    run = Run(experiment="depth", model_id=spec.id, endpoint=Endpoint(spec, (), spec.id), harness=_FakeHarness(),
              results_dir=Path("r"), figures_dir=Path("f"), seed=0, judge_name="keyword", params={})
    items = load_items(split="dev", variant="target")[:2]
    conds = {"direct/plain": depth.probe_conditions(["direct/plain"])["direct/plain"]}
    first = depth.first_token_probe(run, items, conds)
    assert first["first_token"].tolist() == ["I", "I"] and first["top"][0]["Sure"] == pytest.approx(0.4)
    seq = depth.sequence_probe(run, items, conds, ("I", "'m", " sorry"), first)
    assert seq["p_sequence"].tolist() == pytest.approx([0.5 * 0.8 * 0.5] * 2)
    assert len(run.generation_log) == 6 and run.samplings[0]["max_tokens"] == 1
    assert run.harness.seen[-1].messages[-1] == {"role": "assistant", "content": "I'm"}


def test_contrasts_are_paired_differences_from_k0() -> None:
    """One row per k > 0 with an interval around the observed difference."""
    df = _judged({0: 0.1, 5: 0.6, 40: 0.9})
    table = depth.contrasts(df, n_boot=100)
    assert table["depth"].tolist() == [5, 40]
    assert ((table["lo"] <= table["difference"]) & (table["difference"] <= table["hi"])).all()


def test_refusal_mass_is_a_lower_bound_outside_the_top_list() -> None:
    """Tokens outside the returned alternatives count zero; duplicates count once."""
    assert depth.refusal_mass({"I": 0.5, "Sorry": 0.2}, ["I", "Sorry", "I"]) == pytest.approx(0.7)
    assert depth.refusal_mass({"Sure": 0.9}, ["I"]) == 0.0


def test_calibration_and_mass_tables() -> None:
    """Bins keep their order and carry Wilson intervals; per-condition means carry bootstrap intervals."""
    probes, replies = _probe_frames()
    scored = replies.merge(probes, on=["condition", "item"])
    scored["p"] = [depth.refusal_mass(t, ["I"]) for t in scored["top"]]
    table = depth.calibration_table(scored, "p", bins=[0.0, 0.3, 0.6, 1.0])
    assert table["bin"].tolist() == sorted(table["bin"].tolist())
    assert table["n"].sum() == len(scored)
    quantiles = depth.calibration_table(scored, "p", bins=3)
    assert quantiles["n"].sum() == len(scored) and quantiles["mean_score"].is_monotonic_increasing
    assert ((table["lo"] <= table["rate"]) & (table["rate"] <= table["hi"])).all()
    mass = depth.mass_by_condition(scored, "p", n_boot=20)
    assert set(mass["condition"]) == {"direct/plain", "identity/x"}
    auc, lo, hi = depth.auc_with_ci(scored, "p", n_boot=50)
    assert auc == 1.0 and lo <= auc <= hi


def test_top_tokens_and_probe_conditions() -> None:
    """Top tokens average over requests; default probes are direct plus one template per attack family."""
    probes, _ = _probe_frames()
    tops = depth.top_tokens(probes, "direct/plain", n=2)
    target = tops[tops["variant"] == "target"].set_index("token")["mean_prob"]
    assert target["I"] == pytest.approx(0.75)
    conds = depth.probe_conditions()
    families = [w.family for w in conds.values()]
    assert families[0] == "direct" and len(families) == len(set(families))
    assert "prefill" not in families and "control" not in families
    with pytest.raises(ValueError):
        depth.probe_conditions(["prefill/sure"])


def test_plots_return_figures() -> None:
    """The three figure builders run on small tables."""
    df = _judged({0: 0.1, 5: 0.5, 40: 0.9})
    fit = depth.fit_depth(df, n_boot=10)
    fig = depth_plots.plot_sweep(depth.sweep_rates(df), fit, depth.fit_band(df, [0, 5, 40], n_boot=10)[0], "c", "t")
    assert fig.axes
    probes, replies = _probe_frames()
    scored = replies.merge(probes, on=["condition", "item"]).assign(p=0.5)
    mass = depth.mass_by_condition(scored, "p", n_boot=10)
    assert depth_plots.plot_first_token(mass, depth.top_tokens(probes, "direct/plain"), "I", "t").axes
    assert depth_plots.plot_calibration(depth.calibration_table(scored, "p"), "t").axes


def test_chapter_phrases_follow_the_data() -> None:
    """Crossing phrases say inside / before / beyond the sweep; undefined AUCs are said to be undefined."""
    row = {"status": "crosses 50% within the sweep", "k_max": 40}
    assert "passes 50% at k = 4.0" in depth_chapter.crossing_phrase(row, {"level": 0.5, "k": 4.0, "lo": 2.0, "hi": 7.0})
    assert "already at k = 0" in depth_chapter.crossing_phrase(row, {"level": 0.5, "k": -0.3, "lo": -0.6, "hi": 0.1})
    assert "beyond the sweep" in depth_chapter.crossing_phrase(row, {"level": 0.9, "k": 80.0, "lo": 50.0, "hi": 200.0})
    wide = depth_chapter.crossing_phrase(row, {"level": 0.9, "k": 19.0, "lo": -0.5, "hi": 900.0})
    assert wide == "the fitted curve passes 90% at k = 19.0 (95% bootstrap CI below 0 to beyond the sweep's 40)"
    flat = {"status": "not identified: complied in every reply at every k"}
    assert depth_chapter.crossing_phrase(flat) == "no curve could be fitted: compliance in every reply at every k"
    assert depth_chapter.auc_phrase(0.8312, 0.7, 0.93) == "0.83 (95% bootstrap CI 0.70 to 0.93)"
    assert "undefined" in depth_chapter.auc_phrase(float("nan"), float("nan"), float("nan"))


def test_calibration_bins_of_tiny_scores_get_distinct_labels():
    from personalab.experiments.depth import calibration_table

    df = pd.DataFrame({"p": [1e-5, 2e-5, 3e-5, 4e-5, 0.2, 0.9], "refused": [0, 0, 0, 1, 1, 1]})
    table = calibration_table(df, "p", bins=5)
    assert table["bin"].is_unique and int(table["n"].sum()) == len(df)
