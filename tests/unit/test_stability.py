"""``personalab stability`` without a server: the output-root override, the comparison and the re-run's bookkeeping."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from personalab import outputs, pipeline, stability
from personalab.book.chapters import integration
from personalab.book.plots.slippage import collect_family_rates
from personalab.paths import REPO_ROOT

QWEN, SMOL = "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"
MASKS = [f"smollm2-135m-mask-{r}" for r in ("shallow", "deep", "preference")]


# -- the output-root override --------------------------------------------------------------------------------------
def test_published_moves_run_outputs_only(tmp_path, monkeypatch):
    monkeypatch.setenv(outputs.OUTPUT_ROOT_ENV, str(tmp_path))
    assert outputs.published("experiments/results/x/m/a.csv") == tmp_path / "experiments/results/x/m/a.csv"
    assert outputs.published("experiments/executed/x/m.ipynb") == tmp_path / "experiments/executed/x/m.ipynb"
    assert outputs.published("figures/x/m/f.svg") == tmp_path / "figures/x/m/f.svg"
    assert outputs.published("experiments/labels/labels.csv") == REPO_ROOT / "experiments/labels/labels.csv"
    assert outputs.published("experiments/config.yaml") == REPO_ROOT / "experiments/config.yaml"
    assert outputs.published(tmp_path / "abs.csv") == tmp_path / "abs.csv"


def test_without_override_everything_is_the_repository(monkeypatch):
    monkeypatch.delenv(outputs.OUTPUT_ROOT_ENV, raising=False)
    assert outputs.output_root() == REPO_ROOT
    assert outputs.published("experiments/results/x/m/a.csv") == REPO_ROOT / "experiments/results/x/m/a.csv"


def test_read_table_and_read_json_follow_the_override(tmp_path):
    rel = outputs.results_dir_for("exp", "model")
    (tmp_path / rel).mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / rel / "t.csv", index=False)
    (tmp_path / rel / "p.json").write_text('{"k": 3}')
    with outputs.output_root_at(tmp_path):
        assert outputs.read_table(rel / "t.csv")["a"].tolist() == [1, 2]
        assert outputs.read_json(rel / "p.json") == {"k": 3}
        assert len(outputs.read_table("experiments/labels/labels.csv"))  # labels stay in the repository
    assert outputs.OUTPUT_ROOT_ENV not in os.environ
    with pytest.raises(FileNotFoundError, match="No results at"):
        outputs.read_table(rel / "t.csv")


def test_output_root_at_restores_a_previous_value_and_none_leaves_it(tmp_path, monkeypatch):
    monkeypatch.setenv(outputs.OUTPUT_ROOT_ENV, str(tmp_path / "outer"))
    with outputs.output_root_at(tmp_path / "inner"):
        assert outputs.output_root() == tmp_path / "inner"
    with outputs.output_root_at(None):
        assert outputs.output_root() == tmp_path / "outer"
    assert outputs.output_root() == tmp_path / "outer"


def test_staged_outputs_are_published_under_the_override_and_not_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv(outputs.OUTPUT_ROOT_ENV, str(tmp_path / "rep"))
    rel = outputs.results_dir_for("unit-test-exp", "unit-test-model")
    (tmp_path / "stage" / rel).mkdir(parents=True)
    (tmp_path / "stage" / rel / "a.csv").write_text("new")
    pipeline._publish(tmp_path / "stage", rel, outputs.published(rel))
    assert (tmp_path / "rep" / rel / "a.csv").read_text() == "new"
    assert not (REPO_ROOT / rel).exists()


def test_the_cross_model_heatmap_reads_other_models_from_the_override(tmp_path):
    rel = outputs.results_dir_for("slippage", SMOL)
    (tmp_path / rel).mkdir(parents=True)
    pd.DataFrame({"family": ["x"], "rate": [0.5]}).to_csv(tmp_path / rel / "family_rates.csv", index=False)
    current = pd.DataFrame({"family": ["x"], "rate": [0.1]})
    with outputs.output_root_at(tmp_path):
        tables = collect_family_rates(QWEN, current)
    assert set(tables) == {QWEN, SMOL} and tables[SMOL]["rate"].tolist() == [0.5]


# -- comparison and the claim table's column ------------------------------------------------------------------------
def test_compare_marks_a_row_held_only_when_every_repetition_agrees():
    committed = pd.Series({"cracks": "not supported", "depth": "mixed", "inside": "untested here"})
    reps = {"rep_1": pd.Series({"cracks": "not supported", "depth": "mixed", "inside": "untested here"}),
            "rep_2": pd.Series({"cracks": "mixed", "depth": "mixed", "inside": "untested here"})}
    table = stability.compare(committed, reps, {"cracks": "empty cache", "depth": "empty cache"}, "2026-12-10")
    assert table.columns.tolist() == ["key", "committed", "verdicts", "held", "n_changed", "n_repetitions",
                                      "varied", "date"]
    assert table["key"].tolist() == ["cracks", "depth"]
    assert table["held"].tolist() == [False, True] and table["n_changed"].tolist() == [1, 0]
    assert table["n_repetitions"].tolist() == [2, 2] and table.loc[0, "verdicts"] == "not supported; mixed"
    assert set(table["date"]) == {"2026-12-10"}


def _records(keys, date, committed="mixed", verdict="mixed"):
    return pd.DataFrame([{"key": k, "committed": committed, "verdicts": verdict, "held": verdict == committed,
                          "n_changed": int(verdict != committed), "n_repetitions": 1, "varied": f"seed {date}",
                          "date": date} for k in keys])


def test_merge_records_keeps_other_keys_and_adds_new_repetitions_of_the_same_verdict():
    earlier, fresh = _records(["cracks", "depth"], "old"), _records(["depth", "detect"], "new", verdict="supported")
    merged = stability.merge_records(earlier, fresh, ["cracks", "modes", "depth", "detect"]).set_index("key")
    assert merged.index.tolist() == ["cracks", "depth", "detect"]
    assert merged["date"].tolist() == ["old", "new", "new"]
    depth = merged.loc["depth"]
    assert (depth["n_repetitions"], depth["n_changed"], depth["held"]) == (2, 1, False)
    assert depth["verdicts"] == "mixed; supported" and depth["varied"] == "seed old | seed new"
    assert stability.merge_records(None, fresh, ["depth", "detect"]).equals(fresh)


def test_merge_records_drops_a_record_made_for_an_earlier_committed_verdict():
    earlier, fresh = _records(["depth"], "old"), _records(["depth"], "new", committed="supported", verdict="supported")
    merged = stability.merge_records(earlier, fresh, ["depth"]).iloc[0]
    assert (merged["n_repetitions"], merged["committed"], merged["date"]) == (1, "supported", "new")


def test_stable_text():
    row = {"committed": "mixed", "n_repetitions": 3, "n_changed": 0}
    assert integration.stable_text(None, "mixed") == "not measured"
    assert integration.stable_text(row, "mixed") == "held in 3 of 3 re-runs"
    assert integration.stable_text({**row, "n_repetitions": 1}, "mixed") == "held in 1 of 1 re-run"
    assert integration.stable_text({**row, "n_changed": 2}, "mixed") == "changed in 2 of 3"
    assert integration.stable_text(row, "supported").startswith("not measured for this verdict")


def test_stability_phrase_counts_rows_and_names_what_varied():
    assert "not measured" in integration.stability_phrase(["not measured"], None)
    prov = {"runs": [{"date": "2026-12-09T08:00:00+00:00", "n_repetitions": 1, "seeds": [None],
                      "temperature": None, "keys": ["cracks"]},
                     {"date": "2026-12-10T08:00:00+00:00", "n_repetitions": 2, "seeds": [1, 2], "temperature": 0.7,
                      "keys": ["detect", "depth"]}]}
    text = integration.stability_phrase(["held in 2 of 2 re-runs", "changed in 1 of 2", "not measured"], prov)
    assert text.startswith("The recorded re-runs (2026-12-09, 1 re-run from an empty generation cache, rows cracks; "
                           "2026-12-10, 2 re-runs from an empty generation cache, seeds 1, 2, temperature 0.7 where a "
                           "notebook samples, rows detect, depth)")
    assert f"re-derived 2 of the {len(integration.ROW_EXPERIMENTS)} measured rows" in text
    assert "1 held in every re-run and 1 changed at least once" in text


def test_claim_table_reads_the_given_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        integration.claim_table([QWEN, SMOL], QWEN, root=tmp_path)


def test_claim_table_shows_recorded_stability(tmp_path):
    shutil.copytree(REPO_ROOT / "experiments" / "results", tmp_path / "experiments" / "results",
                    ignore=shutil.ignore_patterns("stability"))
    committed, _ = integration.claim_table([QWEN, SMOL], QWEN, root=tmp_path)
    assert committed["stable"].eq("not measured").all() and committed.index[0] == "cracks"
    measured = pd.DataFrame([{"key": "depth", "committed": committed.loc["depth", "verdict"], "verdicts": "x; x",
                              "held": True, "n_changed": 0, "n_repetitions": 2, "varied": "empty cache",
                              "date": "2026-12-10T08:00:00+00:00"}])
    (tmp_path / integration.STABILITY_DIR).mkdir(parents=True)
    measured.to_csv(tmp_path / integration.STABILITY_DIR / "verdicts.csv", index=False)
    (tmp_path / integration.STABILITY_DIR / "provenance.json").write_text(json.dumps({"runs": [
        {"date": "2026-12-10T08:00:00+00:00", "n_repetitions": 2, "seeds": [None, None], "temperature": None,
         "keys": ["depth"]}]}))
    claims, glued = integration.claim_table([QWEN, SMOL], QWEN, root=tmp_path)
    assert claims.loc["depth", "stable"] == "held in 2 of 2 re-runs"
    assert claims.drop(index="depth")["stable"].eq("not measured").all()
    assert glued["int_stable"].startswith("The recorded re-runs (2026-12-10, 2 re-runs from an empty generation "
                                          "cache, rows depth) ")


# -- inputs, refused before any server starts ------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, temperature, only, message", [
    (("1",), None, None, "seeds must be whole numbers >= 0, got '1'"),
    ((True,), None, None, "seeds must be whole numbers"),
    ((-1,), None, None, "seeds must be whole numbers"),
    ((), None, None, "at least one repetition"),
    ((0,), 2.5, None, "temperature must be a number from 0 to 2, got 2.5"),
    ((0,), float("nan"), None, "temperature must be a number from 0 to 2"),
    ((0,), None, ["slipage"], "unknown experiment 'slipage' in --only; available: "),
])
def test_bad_input_is_one_sentence(seeds, temperature, only, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        stability.check_inputs(seeds, temperature, only, ["slippage"])


def test_an_experiment_outside_the_configuration_is_refused():
    with pytest.raises(ValueError, match="depth is not in the run configuration; configured: slippage"):
        stability.check_inputs((0,), None, ["depth"], ["slippage", "slippage"])


def test_repetition_seeds():
    assert stability.repetition_seeds(None, None) == (None,)
    assert stability.repetition_seeds(3, None) == (None, None, None)
    assert stability.repetition_seeds(None, [4, 5]) == (4, 5)
    assert stability.repetition_seeds(2, [4, 5]) == (4, 5)
    with pytest.raises(ValueError, match=r"--repetitions 3 does not match the 2 seed\(s\) given"):
        stability.repetition_seeds(3, [4, 5])
    with pytest.raises(ValueError, match="at least 1, got 0"):
        stability.repetition_seeds(0, None)


def _no_runs(*args, **kwargs):
    raise AssertionError("an experiment ran although the input was refused")


def test_rerun_refuses_bad_input_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(stability, "run_experiment", _no_runs)
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        stability.rerun(tmp_path, only=["nope"])
    with pytest.raises(ValueError, match="none of prefill_sure declares a temperature parameter"):
        stability.rerun(tmp_path, only=["prefill_sure"], temperature=0.7)
    with pytest.raises(ValueError, match="holds the repository"):
        stability.rerun(REPO_ROOT.parent, only=["prefill_sure"])
    assert not list(tmp_path.iterdir())


def test_plan_sets_seed_and_temperature_only_where_declared():
    runs = [{"experiment": "prefill_sure", "models": [QWEN, SMOL], "params": {"n_items": 2}},
            {"experiment": "detection", "models": [QWEN], "params": {"temperature": 0.7}}]
    declared = {"prefill_sure": {"seed": None, "n_items": None}, "detection": {"seed": None, "temperature": None}}
    got = stability.plan(runs, 7, 1.0, declared)
    assert got == [(QWEN, [("prefill_sure", {"n_items": 2, "seed": 7}), ("detection", {"temperature": 1.0, "seed": 7})]),
                   (SMOL, [("prefill_sure", {"n_items": 2, "seed": 7})])]
    assert dict(stability.plan(runs, None, None, declared))[SMOL] == [("prefill_sure", {"n_items": 2})]
    assert runs[0]["params"] == {"n_items": 2}  # the configuration itself is left alone


def test_plan_runs_the_comparisons_after_every_model():
    runs = [{"experiment": "masks", "models": [SMOL], "after_all": True},
            {"experiment": "slippage", "models": [SMOL, "smollm2-135m-mask-deep"], "params": {"n_items": 2}}]
    declared = {"slippage": {"seed": None}, "masks": {"seed": None}}
    got = stability.plan(runs, 3, None, declared)
    assert [(m, [n for n, _ in items]) for m, items in got] == [
        (SMOL, ["slippage"]), ("smollm2-135m-mask-deep", ["slippage"]), (SMOL, ["masks"])]
    assert got[-1][1][0][1] == {"seed": 3}


def test_rows_follow_the_experiments_they_read():
    pairs = {("prefill_sure", SMOL), ("detection", SMOL), ("detection", QWEN)}
    assert stability.rerun_pairs("depth", pairs, [QWEN, SMOL], QWEN) == [("prefill_sure", SMOL)]
    assert stability.rerun_pairs("detect", pairs, [QWEN, SMOL], QWEN) == [("detection", QWEN)]
    assert stability.rerun_pairs("cracks", pairs, [QWEN, SMOL], QWEN) == []


def test_seed_results_copies_all_but_the_rerun_folders_and_the_stability_records(tmp_path):
    results = tmp_path / "src" / "experiments" / "results"
    for folder in ("prefill_sure/a", "prefill_sure/b", "depth/a", "stability"):
        (results / folder).mkdir(parents=True)
        (results / folder / "t.csv").write_text("x")
    (results / "judge_validation").mkdir()
    (results / "judge_validation" / "ood_worst.csv").write_text("y")
    stability.seed_results(tmp_path / "src", tmp_path / "rep", {("prefill_sure", "a")})
    copied = sorted(str(p.relative_to(tmp_path / "rep")) for p in (tmp_path / "rep").rglob("*.csv"))
    assert copied == ["experiments/results/depth/a/t.csv", "experiments/results/judge_validation/ood_worst.csv",
                      "experiments/results/prefill_sure/b/t.csv"]


# -- the whole re-run with the runs and the claim table faked --------------------------------------------------------
def test_rerun_runs_each_repetition_from_an_empty_cache_into_its_own_root(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    for folder in (f"prefill_sure/{QWEN}", f"depth/{QWEN}", "stability"):
        (repo / "experiments" / "results" / folder).mkdir(parents=True)
        (repo / "experiments" / "results" / folder / "t.csv").write_text("committed")
    monkeypatch.setattr(stability, "REPO_ROOT", repo)
    data_before = os.environ["PERSONALAB_DATA"]
    calls = []

    def fake_run(name, model, params, server, serve_model):
        assert serve_model and "judge" not in params  # a re-run generates; only a judge re-run never serves
        data = Path(os.environ["PERSONALAB_DATA"])
        root = outputs.output_root()
        first_of_repetition = root.name not in {c[0] for c in calls}
        assert data == root / ".personalab" and (data / "generations.sqlite").exists() != first_of_repetition
        assert not (root / outputs.results_dir_for(name, model)).exists()  # the committed copy was left out
        assert (root / "experiments/results/depth" / QWEN / "t.csv").read_text() == "committed"
        assert not (root / "experiments/results/stability").exists()
        (data / "generations.sqlite").parent.mkdir(parents=True, exist_ok=True)
        (data / "generations.sqlite").write_text("filled")
        out = outputs.published(outputs.results_dir_for(name, model))
        out.mkdir(parents=True)
        (out / "provenance.json").write_text(json.dumps({"server": [{"vllm_version": "0.32.0", "device": "cpu"}]}))
        calls.append((root.name, name, model, params))

    def fake_claims(models, single, root=None):
        assert (models, single) == ([QWEN, SMOL, *MASKS], QWEN)
        changed = root is not None and Path(root).name == "rep_2"
        verdict = {"cracks": "supported", "depth": "supported" if changed else "mixed", "inside": "untested here"}
        return pd.DataFrame({"verdict": verdict}), {}

    monkeypatch.setattr(stability, "run_experiment", fake_run)
    monkeypatch.setattr(stability, "claim_table", fake_claims)
    earlier = {"key": "cracks", "committed": "supported", "verdicts": "supported", "held": True, "n_changed": 0,
               "n_repetitions": 1, "varied": "empty generation cache; re-ran slippage", "date": "2026-12-01"}
    (tmp_path / "stab").mkdir()
    pd.DataFrame([earlier]).to_csv(tmp_path / "stab" / "verdicts.csv", index=False)
    (tmp_path / "stab" / "provenance.json").write_text(json.dumps({"runs": [{"date": "2026-12-01", "keys": ["cracks"]}]}))
    table = stability.rerun(tmp_path / "out", seeds=(3, 4), only=["prefill_sure"], verdicts_dir=tmp_path / "stab")

    # in the configuration's order (SmolLM2's prefill_sure run is in the main tier, listed before Qwen's)
    assert [(c[0], c[2], c[3]["seed"]) for c in calls] == [("rep_1", SMOL, 3), ("rep_1", QWEN, 3),
                                                          ("rep_2", SMOL, 4), ("rep_2", QWEN, 4)]
    assert calls[0][3]["n_items"] == 20  # the configured parameters are kept
    written = pd.read_csv(tmp_path / "stab" / "verdicts.csv")
    assert written.to_dict("records") == [earlier, *table.to_dict("records")]  # the earlier row of another key stays
    row = written.iloc[1]
    assert len(table) == 1 and row["key"] == "depth"
    assert (row["committed"], row["verdicts"]) == ("mixed", "mixed; supported")
    assert not row["held"] and row["n_changed"] == 1 and row["n_repetitions"] == 2
    assert row["varied"] == f"empty generation cache; seeds 3, 4; re-ran prefill_sure on {QWEN}, {SMOL}"
    runs = json.loads((tmp_path / "stab" / "provenance.json").read_text())["runs"]
    prov = runs[-1]
    assert [r["keys"] for r in runs] == [["cracks"], ["depth"]]
    assert prov["seeds"] == [3, 4] and prov["temperature"] is None and prov["only"] == ["prefill_sure"]
    assert prov["claim_models"] == [QWEN, SMOL, *MASKS] and prov["repetitions"][1]["servers"][0]["vllm_version"] == "0.32.0"
    assert (repo / "experiments/results/prefill_sure" / QWEN / "t.csv").read_text() == "committed"
    assert os.environ["PERSONALAB_DATA"] == data_before and outputs.OUTPUT_ROOT_ENV not in os.environ


@pytest.mark.parametrize("judge, seeds, temperature, message", [
    ("keyword_ext9", (None,), None, "unknown judge 'keyword_ext9'; registered: "),
    ("keyword_ext4", (3,), None, "a judge re-run judges the committed replies once"),
    ("keyword_ext4", (None, None), None, "a judge re-run judges the committed replies once"),
    ("keyword_ext4", (None,), 0.7, "a judge re-run judges the committed replies once"),
])
def test_a_judge_rerun_refuses_bad_input_in_one_sentence(judge, seeds, temperature, message):
    with pytest.raises(ValueError, match=message):
        stability.check_judge(judge, seeds, temperature)
    stability.check_judge(None, seeds, temperature)  # no judge: nothing to check here


def test_a_judge_rerun_refuses_a_judge_the_validation_has_not_scored(monkeypatch):
    from personalab.judges import JUDGES, KeywordJudge

    monkeypatch.setitem(JUDGES, "keyword_unscored", KeywordJudge)
    with pytest.raises(ValueError, match="has no held-out agreement for 'keyword_unscored'.*judges validate"):
        stability.check_judge("keyword_unscored", (None,), None)
    stability.check_judge("keyword_ext4", (None,), None)  # scored: accepted


def test_plan_sets_the_judge_where_declared():
    runs = [{"experiment": "prefill_sure", "models": [QWEN], "params": {"n_items": 2}},
            {"experiment": "masks", "models": [QWEN], "after_all": True}]
    declared = {"prefill_sure": {"judge": None, "n_items": None}, "masks": {"seed": None}}
    got = stability.plan(runs, None, None, declared, "keyword_ext4")
    assert got == [(QWEN, [("prefill_sure", {"n_items": 2, "judge": "keyword_ext4"})]), (QWEN, [("masks", {})])]


def test_a_judge_rerun_judges_copies_of_the_caches_and_never_serves(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "experiments" / "results" / "prefill_sure" / QWEN).mkdir(parents=True)
    monkeypatch.setattr(stability, "REPO_ROOT", repo)
    main_data = tmp_path / "data"
    (main_data / "activations").mkdir(parents=True)
    (main_data / "activations" / "a.npy").write_text("acts")
    (main_data / "generations.sqlite").write_text("replies")
    monkeypatch.setattr(stability, "data_dir", lambda: main_data)
    calls = []

    def fake_run(name, model, params, server, serve_model):
        data = Path(os.environ["PERSONALAB_DATA"])
        assert (data / "generations.sqlite").read_text() == "replies"
        assert (data / "activations" / "a.npy").read_text() == "acts"
        out = outputs.published(outputs.results_dir_for(name, model))
        out.mkdir(parents=True)
        (out / "provenance.json").write_text(json.dumps({"server": []}))
        calls.append((name, model, params, serve_model))

    def fake_claims(models, single, root=None):
        return pd.DataFrame({"verdict": {"depth": "supported" if root else "mixed"}}), {}

    monkeypatch.setattr(stability, "run_experiment", fake_run)
    monkeypatch.setattr(stability, "claim_table", fake_claims)
    table = stability.rerun(tmp_path / "out", only=["prefill_sure"], judge="keyword_ext4",
                            verdicts_dir=tmp_path / "judge")
    assert calls and all(c[2]["judge"] == "keyword_ext4" and c[3] is False for c in calls)
    assert table.iloc[0]["varied"].startswith("judge keyword_ext4 on the committed generations; re-ran prefill_sure")
    assert json.loads((tmp_path / "judge" / "provenance.json").read_text())["runs"][0]["judge"] == "keyword_ext4"
    assert (main_data / "generations.sqlite").read_text() == "replies"  # the main cache is copied, not moved


def test_a_rerun_that_no_row_reads_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("runs:\n  - experiment: detection\n    models: [smollm2-135m-instruct]\n")
    monkeypatch.setattr(stability, "run_experiment", _no_runs)
    with pytest.raises(ValueError, match="no claim-table row reads the runs of detection on smollm2"):
        stability.rerun(tmp_path / "out", config=config)
