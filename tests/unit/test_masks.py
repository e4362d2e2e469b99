"""Comparing masks: stacking models' replies, per-family rates, paired contrasts between models, training records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import masks as mk


def replies(refuse: dict[str, float], n_pairs: int = 20, seed: int = 0) -> pd.DataFrame:
    """Synthetic slippage replies: for each family, the first round(p * n) target pairs are refused, twins never."""
    rows = []
    for family, p in refuse.items():
        wrapper = "direct/plain" if family == "direct" else f"{family}/w"
        for i in range(n_pairs):
            for variant in ("target", "benign"):
                refused = variant == "target" and i < round(p * n_pairs)
                rows.append({"wrapper": wrapper, "family": family, "variant": variant, "pair": f"p{i:02d}",
                             "item": f"p{i:02d}-{variant[0]}", "split": "heldout", "refused": refused,
                             "reply": "I'm sorry, but I can't help with that." if refused else "Here you go."})
    return pd.DataFrame(rows)


@pytest.fixture()
def stacked():
    return mk.stack({
        "base": replies({"direct": 0.2, "identity": 0.1, "technical": 0.1}),
        "shallow": replies({"direct": 1.0, "identity": 0.5, "technical": 0.2}),
        "deep": replies({"direct": 1.0, "identity": 0.9, "technical": 0.9}),
    })


def test_family_table_counts_each_model_and_marks_training_groups(stacked):
    table = mk.family_table(stacked).set_index(["model", "variant", "family"])
    assert table.loc[("shallow", "target", "identity"), "k"] == 10
    assert table.loc[("deep", "target", "technical"), "rate"] == pytest.approx(0.9)
    assert table.loc[("base", "benign", "direct"), "rate"] == 0
    assert table.loc[("deep", "target", "identity"), "training"] == "shown in training"
    assert table.loc[("deep", "target", "technical"), "training"] == "never trained"
    assert table.loc[("deep", "target", "direct"), "training"] == "baseline"
    row = table.loc[("shallow", "target", "identity")]
    assert row["lo"] < row["rate"] < row["hi"]


def test_group_table_pools_attack_families_by_training_group(stacked):
    table = mk.group_table(stacked).set_index(["model", "variant", "training"])
    assert table.loc[("shallow", "target", "shown in training"), "k"] == 10
    assert table.loc[("shallow", "target", "never trained"), "rate"] == pytest.approx(0.2)
    assert "baseline" not in set(table.index.get_level_values("training"))


def test_model_contrast_is_paired_and_signed(stacked):
    c = mk.model_contrasts(stacked, "deep", "shallow", n_boot=500, seed=1)
    t = c[c["variant"] == "target"].set_index("group")
    assert t.loc["technical", "difference"] == pytest.approx(0.7)
    assert t.loc["direct", "difference"] == pytest.approx(0.0)
    assert t.loc["technical", "lo"] > 0 and t.loc["never trained", "lo"] > 0
    assert t.loc["shown in training", "difference"] == pytest.approx(0.4)
    assert set(t["n_pairs"]) == {20}
    b = c[c["variant"] == "benign"].set_index("group")
    assert (b["difference"] == 0).all()


def test_model_contrast_refuses_unknown_model(stacked):
    assert mk.model_contrasts(stacked, "deep", "nope", n_boot=10).empty


def test_stack_needs_models():
    with pytest.raises(ValueError, match="no models"):
        mk.stack({})


def test_direct_refusals_keep_only_refused_direct_targets(stacked):
    refusals = mk.direct_refusals(stacked, ["shallow", "deep"])
    assert set(refusals["system"]) == {"shallow", "deep"}
    assert (refusals["wrapper"] == "direct/plain").all() and refusals["refused"].all()
    assert len(refusals) == 40


def test_style_auc_reports_too_few_refusals_instead_of_failing(stacked):
    refusals = mk.direct_refusals(stacked, ["base", "deep"])
    few = refusals[(refusals["system"] == "deep") | (refusals["item"] == "p00-t")]
    out = mk.style_auc(few, "base", "deep", n_boot=10)
    assert np.isnan(out["auc"]) and out["n_positive"] == 1


def test_training_table_reads_the_marker_fields():
    record = {"recipe": "deep", "method": "sft", "data": {"n_examples": 238, "data_hash": "ab"},
              "hyper_parameters": {"epochs": 1}, "steps": 30, "training_tokens": 31000, "cpu_seconds": 500.0,
              "wall_seconds": 300.0, "tokens_per_second": 103.0, "final_loss": 0.5}
    table = mk.training_table({"m": record})
    assert table.iloc[0].to_dict() == {
        "model": "m", "recipe": "deep", "method": "sft", "n_examples": 238, "epochs": 1, "steps": 30,
        "training_tokens": 31000, "cpu_seconds": 500.0, "wall_seconds": 300.0, "tokens_per_second": 103.0,
        "final_loss": 0.5, "data_hash": "ab"}


def test_style_features_read_a_missing_prefill_as_none(monkeypatch):
    """Results tables read an empty prefill back as NaN; the style classifier must treat it as no prefill."""
    import numpy as np
    import pandas as pd

    import personalab.judges.embedding as embedding
    from personalab.experiments.detection import embed_replies

    seen = []
    monkeypatch.setattr(embedding, "features", lambda replies, prefills: seen.append(prefills) or np.zeros((2, 3)))
    embed_replies(pd.DataFrame({"reply": ["No.", "Sure, here"], "prefill": [np.nan, "Sure,"]}))
    embed_replies(pd.DataFrame({"reply": ["No."]}))
    assert seen == [[None, "Sure,"], [None]]


def test_discrimination_does_not_reward_refusing_everything():
    over = replies({"direct": 1.0, "technical": 1.0})
    over.loc[over["variant"] == "benign", "refused"] = True  # refuses the twins too
    stacked = mk.stack({"over": over, "tracks": replies({"direct": 1.0, "technical": 0.5})})
    d = mk.discrimination(stacked, ["over", "tracks"], n_boot=300, seed=0).set_index(["model", "group"])
    assert d.loc[("over", "never trained"), "difference"] == pytest.approx(0.0)
    assert d.loc[("tracks", "never trained"), "difference"] == pytest.approx(0.5)
    assert d.loc[("tracks", "direct"), "lo"] > 0.5
    assert "shown in training" not in set(d.index.get_level_values("group"))  # no identity/context/prefill rows
    c = mk.discrimination_contrast(stacked, "tracks", "over", n_boot=300, seed=0).set_index("group")
    assert c.loc["never trained", "difference"] == pytest.approx(0.5)
    assert c.loc["never trained", "lo"] > 0 and c.loc["direct", "difference"] == pytest.approx(1.0)


def test_tracking_drop_is_zero_for_a_mask_that_holds_and_positive_for_one_that_slips():
    holds = replies({"direct": 0.8, "technical": 0.8, "identity": 0.8})
    slips = replies({"direct": 0.8, "technical": 0.2, "identity": 0.5})
    stacked = mk.stack({"holds": holds, "slips": slips})
    d = mk.tracking_drop(stacked, ["holds", "slips"], n_boot=300, seed=0).set_index(["model", "group"])
    assert d.loc[("holds", "never trained"), "drop"] == pytest.approx(0.0)
    assert d.loc[("slips", "never trained"), "drop"] == pytest.approx(0.6)
    assert d.loc[("slips", "never trained"), "lo"] > 0
    assert d.loc[("slips", "shown in training"), "drop"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="direct family"):
        mk.tracking_drop(mk.stack({"x": replies({"technical": 0.5})}), ["x"])


def test_first_token_auc_reads_the_top_probabilities_and_pairs_requests():
    def probe(p_i):
        return pd.DataFrame({"condition": ["direct/plain"] * 3 + ["context/fiction"], "variant": ["target"] * 4,
                             "item": ["a", "b", "c", "a"], "top": [str({"I": p, "Sure": 0.1}) for p in p_i]})

    r = mk.first_token_auc({"x": probe([0.9, 0.8, 0.7, 0.0]), "y": probe([0.1, 0.2, 0.3, 0.99])}, "x", "y", n_boot=200)
    assert r["auc"] == pytest.approx(1.0) and r["n_requests"] == 3 and r["lo"] <= r["auc"] <= r["hi"]
    assert mk.first_token_auc({"x": probe([0.5] * 4), "y": probe([0.5] * 4)}, "x", "y", n_boot=50)["auc"] == 0.5


def test_points_and_difference_text_never_print_minus_zero():
    from personalab.book import difference_text, points

    assert points(-0.004) == "+0" and points(0.23) == "+23" and points(-0.4) == "-40"
    assert difference_text(0.1, -0.004, 0.19) == "+10 percentage points (95% bootstrap CI +0 to +19)"
