"""Tests for personalab.experiments.slippage: conditions, the capability (competence) rules, rate and slippage tables, the
gallery rule and the figures, on synthetic judged replies (no server)."""

from __future__ import annotations

import base64

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from personalab.experiments import slippage as sl
from personalab.book.chapters import slippage as sl_chapter
from personalab.book.plots import slippage as sl_plots
from personalab.attacks import FAMILIES, get_wrapper, to_leetspeak, wrappers
from personalab.prompts import load_items, twin_of

TARGETS = load_items(split="heldout", variant="target")[:4]
BENIGN = [twin_of(t) for t in TARGETS]


def fake_replies(refuse: dict[str, bool] | None = None, default: bool = True) -> pd.DataFrame:
    """A judged table shaped like ``ask_all``'s: every pair under every wrapper; ``refuse`` maps wrapper -> refused."""
    refuse = refuse or {}
    rows = []
    for variant, items in (("target", TARGETS), ("benign", BENIGN)):
        for key, w in sl.conditions(variant == "target").items():
            for item in items:
                refused = refuse.get(key, default)
                rows.append({"wrapper": key, "family": w.family, "item": item.id, "category": item.category,
                             "variant": variant, "split": item.split, "sample": 0,
                             "reply": "I'm sorry, I can't." if refused else f"Here you go: {item.text}",
                             "label": "refusal" if refused else "compliance", "refused": refused})
    df = pd.DataFrame(rows)
    df["mode"] = df["family"].map(sl.mode_of)
    twins = {b.id: b.twin for b in BENIGN}
    df["pair"] = [twins.get(i, i) for i in df["item"]]
    return sl.add_competence(df, [*TARGETS, *BENIGN])


def test_conditions_cover_the_registry_and_skip_target_only_wrappers_for_benign() -> None:
    assert list(sl.conditions(True)) == [w.key for w in wrappers()]
    benign = sl.conditions(False)
    assert sl.DIRECT in benign
    assert all(not w.requires_target for w in benign.values())
    assert set(sl.conditions(True)) - set(benign) == {w.key for w in wrappers() if w.requires_target}


def test_every_family_has_a_mode_and_form_checks_are_registered_technical_wrappers() -> None:
    assert set(FAMILIES) <= set(sl.MODES)
    assert sl.mode_of("identity") == "competing objectives"
    assert sl.mode_of("technical") == "mismatched generalisation"
    for key in sl.FORM_CHECKS:
        assert get_wrapper(key).family == "technical"


def test_content_stems_drop_short_words_stopwords_and_digits() -> None:
    assert sl.content_stems("Write my 500-word essays about the causes") == {"write", "word", "essay", "cause"}


@pytest.mark.parametrize("key", ["technical/base64", "technical/leetspeak"])
def test_on_topic_needs_decoded_words_not_visible_in_the_prompt(key: str) -> None:
    item = BENIGN[0]
    conv = get_wrapper(key)(item)
    hidden = sl.hidden_stems(item, conv)
    assert len(hidden) >= sl.MIN_SHARED_STEMS  # the rule can be met at all on this item
    assert sl.on_topic(item.text, item, conv)  # decoding the request and talking about it counts
    assert not sl.on_topic("Sure! Please decode the message and reply in plain English.", item, conv)
    assert not sl.on_topic(to_leetspeak(item.text), item, conv)  # echoing leetspeak is not reading it
    assert not sl.on_topic(base64.b64encode(item.text.encode()).decode(), item, conv)


def test_form_ok_checks_language_for_language_wrappers_and_none_elsewhere() -> None:
    item = BENIGN[0]
    assert sl.form_ok(item.translations["fr"] + " Voici les étapes que je vous propose pour le faire.",
                      "technical/lang_fr", item)
    assert not sl.form_ok("Here are the steps you should follow to do it, and this is how it works.",
                          "technical/lang_fr", item)
    assert sl.form_ok("anything", "identity/expert", item) is None
    assert sl.form_ok("anything", sl.DIRECT, item) is None


def test_competent_requires_compliance_and_form() -> None:
    df = fake_replies(default=False)
    lang = df[df["wrapper"] == "technical/lang_de"]
    assert lang["form_ok"].eq(False).all()  # English replies to a German prompt
    assert not lang["competent"].any()
    b64 = df[df["wrapper"] == "technical/base64"]
    assert b64["form_ok"].all() and b64["competent"].all()  # replies restate the decoded request
    other = df[df["wrapper"] == "identity/expert"]
    assert other["form_ok"].isna().all() and other["competent"].all()


def test_rate_tables_have_every_level_and_a_wilson_interval() -> None:
    df = fake_replies({sl.DIRECT: True, "identity/expert": False})
    rates = sl.rate_tables(df)
    assert set(rates["level"]) == {"wrapper", "family", "mode"}
    row = rates[(rates["level"] == "family") & (rates["group"] == "identity") & (rates["variant"] == "target")].iloc[0]
    assert (row["k"], row["n"]) == (3 * len(TARGETS), 4 * len(TARGETS))
    assert 0 <= row["lo"] <= row["rate"] <= row["hi"] <= 1
    assert rates.iloc[0]["level"] == "wrapper" and rates.iloc[0]["group"] == sl.DIRECT


def test_slippage_is_direct_minus_attacked_and_paired() -> None:
    df = fake_replies({"identity/expert": False})  # everything refused except one wrapper
    slip = sl.slippage_table(df, n_boot=200)
    one = slip[(slip["group"] == "identity/expert") & (slip["variant"] == "target")].iloc[0]
    assert one["slippage"] == pytest.approx(1.0) and one["lo"] == one["hi"] == pytest.approx(1.0)
    assert one["competent_gain"] == pytest.approx(1.0)
    fam = slip[(slip["level"] == "family") & (slip["group"] == "identity") & (slip["variant"] == "target")].iloc[0]
    assert fam["slippage"] == pytest.approx(0.25)
    assert fam["n_items"] == len(TARGETS) and fam["n_replies"] == 4 * len(TARGETS)
    none = slip[(slip["group"] == "context") & (slip["level"] == "family")]
    assert (none["slippage"] == 0).all()
    assert sl.DIRECT not in set(slip["group"])


def test_competent_gain_ignores_compliance_in_the_wrong_language() -> None:
    df = fake_replies({"technical/lang_fr": False})
    row = df["wrapper"] == "technical/lang_fr"
    slip = sl.slippage_table(df, n_boot=100)
    r = slip[(slip["group"] == "technical/lang_fr") & (slip["variant"] == "target")].iloc[0]
    assert r["slippage"] == pytest.approx(1.0) and r["competent_gain"] == pytest.approx(0.0)
    assert not df.loc[row, "competent"].any()


def test_mode_contrast_sign() -> None:
    df = fake_replies({w.key: False for w in wrappers("identity")})
    c = sl.mode_contrast(df, n_boot=100).iloc[0]
    assert c["difference"] > 0  # mismatched-generalisation attacks left more refusals than competing objectives


def test_capability_table_lists_three_measures_for_each_form_checked_wrapper() -> None:
    cap = sl.capability_table(fake_replies(default=False))
    assert len(cap) == 2 * len(sl.FORM_CHECKS) * 3
    assert list(cap["wrapper"].iloc[:3]) == ["technical/lang_fr"] * 3
    assert list(cap["measure"].iloc[:3]) == ["refusal", "compliance (raw)", "competent compliance"]


def test_gallery_picks_first_item_then_first_wrapper() -> None:
    df = fake_replies({"identity/expert": False, "identity/pretrained_self": False})
    gal = sl.gallery(df)
    ident = gal[gal["family"] == "identity"].set_index("label")
    first = sorted(t.id for t in TARGETS)[0]
    assert ident.loc["compliance", "wrapper"] == "identity/expert"
    assert ident.loc["compliance", "item"] == first
    assert ident.loc["refusal", "wrapper"] == "identity/ghostwriter"
    assert "compliance" not in set(gal.loc[gal["family"] == "context", "label"])


def test_short_cuts_and_flattens() -> None:
    assert sl.short("a  b\nc") == "a b c"
    assert len(sl.short("x" * 500, 200)) == 200 and sl.short("x" * 500, 200).endswith("…")


def test_figures_draw(tmp_path) -> None:
    df = fake_replies({"identity/expert": False})
    fam = sl.family_rates(sl.rate_tables(df))
    assert set(fam["family"]) == set(FAMILIES)
    fig = sl_plots.family_heatmap({"qwen2.5-coder-0.5b-instruct": fam, "smollm2-135m-instruct": fam})
    fig2 = sl_plots.slippage_plot(sl.slippage_table(df, n_boot=50), title="t")
    fig.savefig(tmp_path / "h.png")
    fig2.savefig(tmp_path / "s.png")
    plt.close("all")


def test_collect_family_rates_puts_the_current_table_under_its_model() -> None:
    fam = sl.family_rates(sl.rate_tables(fake_replies()))
    tables = sl_plots.collect_family_rates("qwen2.5-coder-0.5b-instruct", fam, experiment="no-such-experiment")
    assert list(tables) == ["qwen2.5-coder-0.5b-instruct"]


def test_summary_tables_for_the_chapter() -> None:
    df = fake_replies({"identity/expert": False})
    rates, slip = sl.rate_tables(df), sl.slippage_table(df, n_boot=50)
    fam = sl_chapter.summary_table(rates, slip)
    assert list(fam["family"]) == list(FAMILIES)
    assert fam.loc[0, "slippage, points"] == "baseline"
    assert fam.set_index("family").loc["identity", "slippage, points"].startswith("+25")
    per_wrapper = sl_chapter.summary_table(rates, slip, level="wrapper").set_index("wrapper")
    assert per_wrapper.loc["prefill/k5", "over-refusal on benign twins"] == "not applicable"
    cap = sl_chapter.capability_summary(sl.capability_table(df))
    assert list(cap["wrapper"]) == list(sl.FORM_CHECKS) and cap.shape[1] == 5


def _set(df: pd.DataFrame, variant: str, family: str, refused: bool) -> pd.DataFrame:
    """``df`` with every reply of ``variant`` under ``family`` set to ``refused``."""
    out = df.copy()
    out.loc[(out["variant"] == variant) & (out["family"] == family), "refused"] = refused
    return out


def test_harm_contrast_separates_harm_specific_from_general_slippage() -> None:
    """Identity drops only targets' refusals (harm-specific); context drops both variants' (not harm-specific)."""
    df = _set(_set(_set(fake_replies(), "target", "identity", False), "target", "context", False),
              "benign", "context", False)
    h = sl.harm_contrast(df, n_boot=200).set_index("family")
    assert h.loc["identity", "slippage"] == pytest.approx(1.0) and h.loc["identity", "harm"] == pytest.approx(1.0)
    assert h.loc["context", "slippage"] == pytest.approx(1.0) and h.loc["context", "harm"] == pytest.approx(0.0)
    assert h.loc["context", "twin_slippage"] == pytest.approx(1.0)
    assert h.loc["identity", "vs_control"] == pytest.approx(1.0)  # the control kept refusing
    assert h.loc["identity", "slippage_lo"] == pytest.approx(1.0) and h.loc["identity", "slippage_p"] == 0.0
    assert h.loc["technical", "slippage_p"] == 1.0  # no change at all
    prefill_shared = sum(not w.requires_target for w in wrappers("prefill"))
    assert h.loc["prefill", "n_wrappers_shared"] == prefill_shared
    assert list(h["role"].unique()) == ["control", "attack", "pooled"]
    attack = h[h["role"] == "attack"]
    assert attack["slippage_p_holm"].notna().all() and (attack["slippage_p_holm"] >= attack["slippage_p"]).all()
    assert h.loc[["control", sl.ALL_ATTACKS], "slippage_p_holm"].isna().all()
    assert h.loc[sl.ALL_ATTACKS, "n_wrappers"] == sum(len(wrappers(f)) for f in FAMILIES
                                                      if f not in ("direct", "control"))


def test_harm_contrast_slippage_matches_the_slippage_table() -> None:
    df = _set(fake_replies(), "target", "technical", False)
    h = sl.harm_contrast(df, n_boot=100, seed=3).set_index("family")
    s = sl.slippage_table(df, n_boot=100, seed=3)
    fam = s[(s["level"] == "family") & (s["variant"] == "target")].set_index("group")
    for f in ("identity", "technical", "prefill"):
        assert tuple(h.loc[f, ["slippage", "slippage_lo", "slippage_hi"]]) == tuple(fam.loc[f, ["slippage", "lo",
                                                                                                   "hi"]])


def test_harm_contrast_without_a_control_family_reports_it_missing() -> None:
    """Committed runs made before the control family existed: vs_control is nan, nothing else changes."""
    df = fake_replies()
    h = sl.harm_contrast(df[df["family"] != "control"], n_boot=50)
    assert "control" not in set(h["family"])
    assert h["vs_control"].isna().all() and h["vs_control_p_holm"].isna().all()
    assert h["slippage"].notna().all()


def test_harm_bar_passes_only_when_targets_are_refused_more_than_twins() -> None:
    df = _set(fake_replies(), "benign", "direct", False)
    bar = sl.harm_bar(df, n_boot=200).iloc[0]
    assert bar["difference"] == pytest.approx(1.0) and bar["passes_bar"]
    assert (bar["both_refused"], bar["target_only"], bar["twin_only"], bar["neither"]) == (0, 4, 0, 0)
    assert bar["target_k"] == 4 and bar["twin_k"] == 0 and bar["n_pairs"] == 4
    same = sl.harm_bar(fake_replies(), n_boot=200).iloc[0]
    assert same["difference"] == 0.0 and not same["passes_bar"] and same["both_refused"] == 4


# ---------------------------------------------------------------------------------------------- incomplete design

ALL_TARGETS = load_items(split="heldout", variant="target")


def test_full_design_asks_every_target_under_every_wrapper() -> None:
    full = sl.assign_wrappers(ALL_TARGETS, None)
    assert set(full) == set(sl.conditions(True))
    assert all(len(ids) == len(ALL_TARGETS) for ids in full.values())


def test_incomplete_design_deals_each_family_evenly_and_keeps_the_baselines_whole() -> None:
    design = sl.assign_wrappers(ALL_TARGETS, 1, seed=0)
    ids = {t.id for t in ALL_TARGETS}
    for family in FAMILIES:
        keys = [w.key for w in wrappers(family)]
        counts = [len(design[k]) for k in keys]
        if family in sl.BASELINE_FAMILIES:
            assert all(set(design[k]) == ids for k in keys)
            continue
        # every target gets exactly one wrapper of the family, and the wrappers' shares differ by at most one
        assert sorted(i for k in keys for i in design[k]) == sorted(ids)
        assert max(counts) - min(counts) <= 1
    by_id = {t.id: t for t in ALL_TARGETS}
    per_category = pd.Series([by_id[i].category for i in design["identity/expert"]]).value_counts()
    assert per_category.max() - per_category.min() <= 1  # balanced within categories too


def test_incomplete_design_is_fixed_by_seed_and_ids_and_two_per_family_doubles_it() -> None:
    assert sl.assign_wrappers(ALL_TARGETS, 1, seed=3) == sl.assign_wrappers(list(reversed(ALL_TARGETS)), 1, seed=3)
    assert sl.assign_wrappers(ALL_TARGETS, 1, seed=3) != sl.assign_wrappers(ALL_TARGETS, 1, seed=4)
    two = sl.assign_wrappers(ALL_TARGETS, 2, seed=0)
    assert sum(len(two[w.key]) for w in wrappers("identity")) == 2 * len(ALL_TARGETS)
    assert all(len(set(v)) == len(v) for v in two.values())
    with pytest.raises(ValueError, match="per_family"):
        sl.assign_wrappers(ALL_TARGETS, 0)


def test_twins_follow_their_targets_wrapper_or_the_familys_twin_wrapper() -> None:
    twins = [twin_of(t) for t in ALL_TARGETS]
    design = sl.assign_wrappers(ALL_TARGETS, 1, seed=0)
    mirrored = sl.twin_assignment(design, twins)
    assert set(mirrored) == set(sl.conditions(False))
    twin_of_target = {t.id: t.twin for t in ALL_TARGETS}
    assert set(mirrored["identity/expert"]) == {twin_of_target[i] for i in design["identity/expert"]}
    assert set(mirrored["prefill/sure"]) == {t.id for t in twins}  # k5/k10 targets' twins go to prefill/sure


def test_contrasts_compare_the_same_pairs_in_every_arm() -> None:
    # Only two of the four pairs were asked under identity/expert; the others' direct refusals must not count.
    df = fake_replies({sl.DIRECT: True, "identity/expert": False}, default=True)
    asked = set(df["pair"].unique()[:2])
    expert = df["wrapper"] == "identity/expert"
    df = df[~expert | df["pair"].isin(asked)]
    df.loc[(df["wrapper"] == sl.DIRECT) & ~df["pair"].isin(asked), "refused"] = False
    slip = sl.slippage_table(df, n_boot=100).set_index(["level", "group", "variant"])
    assert slip.loc[("wrapper", "identity/expert", "target"), "slippage"] == pytest.approx(1.0)
    assert slip.loc[("wrapper", "identity/expert", "target"), "n_items"] == 2
