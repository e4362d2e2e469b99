"""Pipeline logic without a kernel or server: parameter checking, atomic publishing, config validation."""

from __future__ import annotations

import pytest

from personalab import book, pipeline
from personalab.paths import REPO_ROOT


def test_notebook_parameters_of_the_real_experiment():
    params = pipeline.notebook_parameters(pipeline.notebook_source("prefill_sure"))
    assert {"model_id", "endpoint", "seed", "judge", "n_items"} <= params


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ValueError, match="prefill_sure"):
        pipeline.notebook_source("no_such_experiment")


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="n_itmes"):
        pipeline._check_params(pipeline.notebook_source("prefill_sure"), {"n_itmes": 3})


def test_publish_replaces_a_folder_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "REPO_ROOT", tmp_path / "repo")
    final = tmp_path / "repo" / "results" / "exp"
    final.mkdir(parents=True)
    (final / "old.csv").write_text("old")
    staged = tmp_path / "stage" / "results" / "exp"
    staged.mkdir(parents=True)
    (staged / "new.csv").write_text("new")
    pipeline._publish(tmp_path / "stage", pipeline.Path("results/exp"))
    assert sorted(p.name for p in final.iterdir()) == ["new.csv"]
    assert not list(final.parent.glob(".*"))


def test_publish_without_staged_output_keeps_the_old(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "REPO_ROOT", tmp_path / "repo")
    final = tmp_path / "repo" / "figures" / "exp"
    final.mkdir(parents=True)
    (final / "fig.svg").write_text("<svg/>")
    pipeline._publish(tmp_path / "stage", pipeline.Path("figures/exp"))
    assert (final / "fig.svg").read_text() == "<svg/>"


def test_config_names_only_known_experiments_and_models(tmp_path):
    runs = pipeline.load_config(REPO_ROOT / "experiments" / "config.yaml")
    assert all(run["experiment"] in pipeline.experiment_names() for run in runs)
    bad = tmp_path / "config.yaml"
    bad.write_text("runs:\n  - experiment: prefill_sure\n    models: [no-such-model]\n")
    with pytest.raises(ValueError, match="no-such-model"):
        pipeline.load_config(bad)


def test_direction_phrase_follows_the_interval():
    assert "above zero" in book.direction_phrase(0.1, 0.5, "lower", "higher")
    assert "below zero" in book.direction_phrase(-0.5, -0.1, "lower", "higher")
    assert "includes zero" in book.direction_phrase(-0.1, 0.3, "lower", "higher")
    assert book.interval_phrase(0.3, 0.1, 0.5) == "30 percentage points (95% bootstrap CI 10 to 50)"


def test_damaged_cache_is_refused_before_any_kernel_or_server(tmp_path, monkeypatch):
    from personalab.harness.cache import CacheCorrupt

    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    (tmp_path / "generations.sqlite").write_bytes(b"\x00garbage" * 512)
    monkeypatch.setattr(pipeline, "_execute", lambda *a, **k: pytest.fail("a kernel was started"))
    monkeypatch.setattr(pipeline, "serve", lambda *a, **k: pytest.fail("a server was started"))
    with pytest.raises(CacheCorrupt, match="personalab cache --repair"):
        pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct")
