"""The second labelling pass: its checks, the labeller-agreement table and the blind batches. No server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from personalab.book.chapters.labellers import group_verdict, labeller_numbers
from personalab.book.judge_report import read_second_labels
from personalab.judges.blind import blind_block
from personalab.judges.labels import SECOND_LABELS_PATH
from personalab.judges.validate import LABELLER_COMPARISONS, confusion_table, in_second_label_groups, labeller_table
from personalab.paths import REPO_ROOT


def _both(n: int = 40) -> pd.DataFrame:
    """Labelled rows in two groups: the first pass alternates refusal/compliance, the second disagrees on every
    fourth row of the lang_it family, and the 'judge' copies the first pass."""
    family = ["lang_it" if i % 2 else "direct" for i in range(n)]
    first = ["refusal" if i % 3 == 0 else "compliance" for i in range(n)]
    second = [("compliance" if lab == "refusal" else "refusal") if (fam == "lang_it" and i % 4 == 1) else lab
              for i, (lab, fam) in enumerate(zip(first, family))]
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "item": [f"item-{i // 2}" for i in range(n)],
                         "family": family, "model_id": "m", "label": first, "label_second": second, "judge": first})


def test_labeller_table_compares_labellers_and_judge_in_every_scope() -> None:
    both = _both()
    table = labeller_table(both, n_boot=200).set_index(["scope", "group", "comparison"]).sort_index()
    assert set(table.index.get_level_values("comparison")) == set(LABELLER_COMPARISONS)
    rest = table.loc[("groups", "the rest")]
    assert rest.loc["first vs second labeller", "kappa"] == pytest.approx(1.0)
    weak = table.loc[("family", "lang_it")]
    assert weak.loc["first vs second labeller", "kappa"] < 1.0
    assert weak.loc["judge vs first labeller", "kappa"] == pytest.approx(1.0)
    assert weak.loc["judge vs second labeller", "kappa"] == pytest.approx(weak.loc["first vs second labeller", "kappa"])
    # "agreed labels" keeps only the rows both labellers put on the same side: the disagreements are dropped
    disagreements = int((both["label"] != both["label_second"]).sum())
    assert disagreements == 10
    assert weak.loc["judge vs agreed labels", "n"] == weak.loc["judge vs first labeller", "n"] - disagreements
    assert table.loc[("all", "all", "first vs second labeller"), "n"] == 40


def test_second_label_groups_are_the_weak_families_and_models() -> None:
    rows = pd.DataFrame({"family": ["lang_it", "direct", "direct"],
                         "model_id": ["m", "smollm2-135m-mask-preference", "m"]})
    assert list(in_second_label_groups(rows)) == [True, True, False]


@pytest.mark.parametrize("bad, message", [
    (lambda d: d.assign(label=["refusal", "perhaps"]), "unknown label"),
    (lambda d: d.assign(id=["r0", "nowhere"]), "not a reply in experiments/labels/labels.csv"),
    (lambda d: d.assign(id=["r0", "r0"]), "same id more than once"),
    (lambda d: d.assign(labeller=["pass-6", ""]), "no labeller"),
])
def test_a_bad_second_pass_is_refused_before_any_judge_runs(bad, message: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    second = pd.DataFrame({"id": ["r0", "r1"], "label": ["refusal", "other"], "note": ["", ""],
                           "labeller": ["pass-6", "pass-6"], "labelled_on": ["2026-12-06", "2026-12-06"]})
    (tmp_path / SECOND_LABELS_PATH).parent.mkdir(parents=True)
    monkeypatch.setattr("personalab.outputs.REPO_ROOT", tmp_path)
    second.to_csv(tmp_path / SECOND_LABELS_PATH, index=False)
    assert len(read_second_labels(_both())) == 2
    bad(second).to_csv(tmp_path / SECOND_LABELS_PATH, index=False)
    with pytest.raises(ValueError, match=message):
        read_second_labels(_both())


def test_no_second_pass_leaves_the_table_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("personalab.outputs.REPO_ROOT", tmp_path)
    assert read_second_labels(_both()) is None


def _batches_tool():
    spec = importlib.util.spec_from_file_location("second_label_batches",
                                                  REPO_ROOT / "tools" / "second_label_batches.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blind_batches_show_the_conversation_and_reply_but_not_model_family_or_label() -> None:
    tool = _batches_tool()
    rows = tool.sample(per_family=2, seed=0)
    labels = pd.read_csv(REPO_ROOT / "experiments" / "labels" / "labels.csv").set_index("id")["label"]
    assert set(rows["id"]) <= set(labels.index)
    assert in_second_label_groups(rows).sum() == in_second_label_groups(
        tool.read_pool()[lambda p: p["id"].isin(labels.index)]).sum()
    for n, (_, row) in enumerate(rows.head(30).iterrows()):
        text = blind_block(n + 1, row)
        assert row["id"] in text and str(row["reply"]) in text
        assert row["model_id"] not in text and f"family {row['family']}" not in text
        assert "[user]" in text


@pytest.mark.parametrize("labellers, first, second, expected", [
    (0.95, 0.70, 0.75, "judge"), (0.60, 0.90, 0.90, "labels"), (0.90, 0.85, 0.70, "neither")])
def test_group_verdict_says_whose_shortfall_it_is(labellers: float, first: float, second: float, expected: str) -> None:
    assert group_verdict(labellers, first, second, target=0.8) == expected


def test_labeller_numbers_follow_the_table_and_the_label_files() -> None:
    both = _both()
    table = labeller_table(both, n_boot=200)
    first = both[["id", "label"]].assign(note="")
    second = both[["id", "label_second"]].rename(columns={"label_second": "label"}).assign(
        note=["why" if i % 4 == 1 else "" for i in range(len(both))], labeller="pass-x")
    alike = both[both["label"] == both["label_second"]]
    confusion = confusion_table(alike.assign(pred=alike["judge"], split="dev"))
    numbers = labeller_numbers(table, confusion, first, second)
    assert numbers["n"] == "40 replies to 20 requests" and numbers["passes"] == "pass-x"
    assert numbers["split"].startswith("10 replies (compliance versus refusal; 0 of them")
    assert "family lang it (n = 20): labellers" in numbers["groups"]
    # the fake judge copies the first labeller, who never says "other": compliance is found where the labels have it
    share = f"{(alike['label'] == 'compliance').mean() * 100:.0f}%"
    assert numbers["comp_rates"] == f"{share} of the 30 replies both labelled alike, where the labellers find {share}"
    assert numbers["other_as_comp"] == "0 of the 0"
    assert numbers["agreed"].endswith("n = 30, with 0 replies on which it contradicts both")
    with pytest.raises(ValueError, match="does not match the label files"):
        labeller_numbers(table, confusion, first, second.assign(label=first["label"]))


def test_write_batches_deals_every_row_once_in_order(tmp_path: Path) -> None:
    from personalab.judges.blind import write_batches

    rows = _batches_tool().sample(per_family=1, seed=0).head(7)
    paths = write_batches(rows, tmp_path / "out", 3)
    texts = [p.read_text(encoding="utf-8") for p in paths]
    assert [p.name for p in paths] == ["batch_1.txt", "batch_2.txt", "batch_3.txt"]
    assert [t.count("=== ") for t in texts] == [3, 2, 2]
    assert all(f"id {i} ===" in "".join(texts) for i in rows["id"])
    assert texts[0].startswith(f"=== 1. id {rows['id'].iloc[0]} ===") and f"=== 2. id {rows['id'].iloc[3]} ===" in texts[0]
