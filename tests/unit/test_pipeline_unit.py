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


class _FakeServer:
    """Stands in for an owned VLLMServer: dead until restarted."""

    def __init__(self, dies: int) -> None:
        self.dies, self.restarts, self.log_path = dies, 0, "/tmp/vllm-test.log"

    def alive(self) -> bool:
        return self.restarts >= self.dies

    def restart(self) -> None:
        self.restarts += 1


def _holder(monkeypatch, owned: list) -> pipeline.LazyServer:
    holder = pipeline.LazyServer("smollm2-135m-instruct", max_restarts=2)
    import contextlib

    @contextlib.contextmanager
    def fake_serve(model_id, server_out=None):
        if server_out is not None:
            server_out.extend(owned)
        yield None

    monkeypatch.setattr(pipeline, "serve", fake_serve)
    holder.ensure()
    return holder


def _failing_then_ok(monkeypatch, failures: int) -> list:
    calls = []

    def execute(source, target, stage, params, timeout_s, cache_only):
        calls.append(cache_only)
        if cache_only:
            raise pipeline._NeedsServer()
        if len([c for c in calls if not c]) <= failures:
            raise pipeline.ExperimentError("prefill_sure failed in cell 5: GenerationError: server died")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("{}")

    monkeypatch.setattr(pipeline, "_execute", execute)
    monkeypatch.setattr(pipeline, "_title_with_model", lambda *a: None)
    monkeypatch.setattr(pipeline, "_publish", lambda *a: None)
    return calls


def test_an_owned_server_that_dies_is_restarted_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    server = _FakeServer(dies=1)
    holder = _holder(monkeypatch, [server])
    calls = _failing_then_ok(monkeypatch, failures=1)
    pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct", server=holder)
    assert server.restarts == 1 and calls == [True, False, False]
    assert "restarting it (1 of 2)" in capsys.readouterr().out


def test_restarts_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    server = _FakeServer(dies=99)
    holder = _holder(monkeypatch, [server])
    _failing_then_ok(monkeypatch, failures=99)
    with pytest.raises(pipeline.ExperimentError):
        pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct", server=holder)
    assert server.restarts == 2


def test_an_attached_server_is_not_restarted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    holder = _holder(monkeypatch, [])  # serve() attached to a server some other process owns
    _failing_then_ok(monkeypatch, failures=1)
    with pytest.raises(pipeline.ExperimentError):
        pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct", server=holder)
    assert "not restarted from here" in capsys.readouterr().out


def test_a_notebook_error_with_a_live_server_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    server = _FakeServer(dies=0)
    holder = _holder(monkeypatch, [server])
    calls = _failing_then_ok(monkeypatch, failures=1)
    with pytest.raises(pipeline.ExperimentError):
        pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct", server=holder)
    assert server.restarts == 0 and calls == [True, False]


def test_tiers_and_after_all_decide_what_runs_and_when(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(
        "runs:\n"
        "  - experiment: masks\n    models: [smollm2-135m-instruct]\n    after_all: true\n"
        "  - experiment: prefill_sure\n    models: [smollm2-135m-instruct]\n"
        "  - experiment: slippage\n    models: [qwen2.5-coder-0.5b-instruct]\n    tier: extended\n")
    calls = []
    monkeypatch.setattr(pipeline, "run_experiment", lambda name, model, params=None, server=None:
                        calls.append((name, model)))
    pipeline.run_all(config, tiers=("main",))
    assert calls == [("prefill_sure", "smollm2-135m-instruct"), ("masks", "smollm2-135m-instruct")]
    calls.clear()
    pipeline.run_all(config)
    assert calls[-1] == ("masks", "smollm2-135m-instruct") and ("slippage", "qwen2.5-coder-0.5b-instruct") in calls
    with pytest.raises(ValueError, match="Unknown tier 'big'"):
        pipeline.run_all(config, tiers=("big",))
    config.write_text("runs:\n  - experiment: prefill_sure\n    tier: later\n")
    with pytest.raises(ValueError, match="tier 'later'; expected one of: main, extended"):
        pipeline.load_config(config)


def test_a_model_is_pulled_or_trained_before_it_is_served_once(monkeypatch):
    import contextlib

    import personalab.train

    events = []
    monkeypatch.setattr(personalab.train, "pull", lambda model_id: events.append(("pull", model_id)))
    monkeypatch.setattr(pipeline, "serve", lambda model_id, server_out=None: (events.append(("serve", model_id)),
                                                                              contextlib.nullcontext())[1])
    with pipeline.LazyServer("smollm2-135m-mask-deep") as server:
        server.ensure()
        server.ensure()
    with pipeline.LazyServer("smollm2-135m-instruct") as server:
        server.ensure()
    assert events == [("pull", "smollm2-135m-mask-deep"), ("serve", "smollm2-135m-mask-deep"),
                      ("pull", "smollm2-135m-instruct"), ("serve", "smollm2-135m-instruct")]


def test_a_trained_model_is_brought_up_to_date_before_the_cache_is_read(tmp_path, monkeypatch):
    """A changed recipe must retrain the mask before the cache-only pass, whose keys are the mask's artefact key."""
    import personalab.train

    monkeypatch.setenv("PERSONALAB_DATA", str(tmp_path))
    events = []
    monkeypatch.setattr(personalab.train, "pull", lambda model_id: events.append(("pull", model_id)))

    def execute(source, target, stage, params, timeout_s, cache_only):
        events.append(("execute", cache_only))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("{}")

    monkeypatch.setattr(pipeline, "_execute", execute)
    monkeypatch.setattr(pipeline, "_title_with_model", lambda *a: None)
    monkeypatch.setattr(pipeline, "_publish", lambda *a: None)
    pipeline.run_experiment("prefill_sure", "smollm2-135m-mask-deep")
    assert events == [("pull", "smollm2-135m-mask-deep"), ("execute", True)]
    events.clear()
    pipeline.run_experiment("prefill_sure", "smollm2-135m-instruct")  # an embedded model is pulled only to serve it
    assert events == [("execute", True)]
