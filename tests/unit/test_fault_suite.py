"""Faults the project must survive without a real server: a server answering 500s or garbage, a full disk or a
read-only folder while publishing, and two runs writing one generation cache at once.

The server is faked in-process (httpx.MockTransport behind the harness's ``http_client_factory``, as in
test_client.py); a real server killed with SIGKILL is tests/integration/test_faults.py.
"""

from __future__ import annotations

import asyncio
import errno
import json
import multiprocessing as mp
import os
import sqlite3
import stat
from pathlib import Path
from typing import Callable

import httpx
import pytest

from personalab import pipeline
from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenerationError, GenRequest, Harness, Sampling
from personalab.harness.registry import ModelSpec, WheelPart
from personalab.harness.server import Endpoint
from personalab.outputs import OUTPUT_ROOT_ENV, figures_dir_for, results_dir_for

SPEC = ModelSpec(id="fake-model", kind="embedded", display_name="Fake Model", sha256="ef" * 32,
                 parts=(WheelPart("p", "1", "p/a.bin"),))
MODEL = "smollm2-135m-instruct"  # a real registry id, for the pipeline tests (never served here)
EXPERIMENT = "prefill_sure"

#: fail(request, body) -> an httpx.Response to send instead of the normal answer, or None for the normal answer.
Rule = Callable[[httpx.Request, dict], "httpx.Response | None"]


class FakeServer:
    """An OpenAI-compatible chat/completions server for httpx.MockTransport that records every request body."""

    def __init__(self, fail: Rule | None = None, delay: Callable[[dict], float] | None = None) -> None:
        self.bodies: list[dict] = []
        self.fail, self.delay = fail, delay

    def sent(self, content: str) -> int:
        """How many times a request with this (last message or prompt) content was sent."""
        return sum(_content(body) == content for body in self.bodies)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.delay:
            await asyncio.sleep(self.delay(body))
        outcome = self.fail(request, body) if self.fail else None
        if outcome is not None:
            return outcome
        text = f"echo {_content(body)}"
        if request.url.path.endswith("/chat/completions"):
            choice = {"index": 0, "finish_reason": "stop", "logprobs": None,
                      "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "finish_reason": "stop", "logprobs": None, "text": text}
        return httpx.Response(200, json={"id": "x-1", "object": "chat.completion", "created": 0, "model": body["model"],
                                         "choices": [choice],
                                         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


def _content(body: dict) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def _harness(server: FakeServer, cache: GenerationCache, **kw) -> Harness:
    endpoint = Endpoint(SPEC, ("http://fake.invalid/v1",), "served-fake", None, {"vllm_version": "0.0-test",
                                                                                 "device": "cpu"})
    kw.setdefault("backoff_s", 0)
    return Harness(endpoint, cache=cache, progress=False, check=False, send_seed=True,
                   http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(server)), **kw)


def _ask(text: str) -> GenRequest:
    return GenRequest.chat([{"role": "user", "content": text}], Sampling(max_tokens=8))


def _rows(path: Path) -> tuple[int, int]:
    """(rows, distinct keys) of a cache file."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM generations").fetchone()


def _answers_500_to(prefix: str) -> Rule:
    def fail(request: httpx.Request, body: dict) -> httpx.Response | None:
        if _content(body).startswith(prefix):
            return httpx.Response(500, json={"error": {"message": "internal error", "type": "InternalServerError"}})
        return None

    return fail


# ------------------------------------------------------------------------------------------------ a server answering 500s
def test_http_500s_are_retried_then_one_error_counts_the_cached_work(tmp_path: Path) -> None:
    """A server that keeps answering 500: each request is retried, then one GenerationError says what is cached."""
    cache = GenerationCache(tmp_path / "gen.sqlite")
    server = FakeServer(fail=_answers_500_to(""))
    with pytest.raises(GenerationError) as err:
        _harness(server, cache, max_retries=2).generate([_ask("q0"), _ask("q1")])
    message = str(err.value)
    assert "A request failed 3 times" in message and "500" in message
    assert "0 new generations finished and are in the cache" in message and str(cache.path) in message
    assert "2 remain." in message and "Traceback" not in message
    assert server.sent("q0") == 3 or server.sent("q1") == 3  # the first to give up was tried 1 + max_retries times
    assert cache.count() == 0


def test_a_partly_failing_batch_keeps_the_good_ones_and_a_rerun_sends_only_the_rest(tmp_path: Path) -> None:
    """Finished generations survive a batch whose other requests fail; the re-run repeats none and duplicates none."""
    cache = GenerationCache(tmp_path / "gen.sqlite")
    good, bad = [f"ok{i}" for i in range(4)], ["bad0", "bad1"]
    requests = [_ask(t) for t in [*good, *bad, "ok0"]]  # ok0 twice: one generation
    server = FakeServer(fail=_answers_500_to("bad"), delay=lambda body: 0.02 if _content(body).startswith("bad") else 0)
    with pytest.raises(GenerationError, match=r"4 new generations finished and are in the cache .*; 2 remain\."):
        _harness(server, cache, max_retries=1).generate(requests)
    assert cache.count() == 4 and all(server.sent(t) == 1 for t in good)

    healthy = FakeServer()
    gens = _harness(healthy, cache).generate(requests)
    assert sorted(_content(b) for b in healthy.bodies) == bad  # only the missing ones
    assert [g.cached for g in gens] == [True] * 4 + [False, False, True]
    assert [g.text for g in gens] == [f"echo {t}" for t in [*good, *bad, "ok0"]]
    assert _rows(cache.path) == (6, 6)


# ------------------------------------------------------------------------------------------------ a server answering garbage
GARBAGE: dict[str, Callable[[], httpx.Response]] = {
    "invalid JSON": lambda: httpx.Response(200, content=b'{"choices": [', headers={"content-type": "application/json"}),
    "an HTML page": lambda: httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>",
                                           headers={"content-type": "text/html"}),
    "JSON without choices": lambda: httpx.Response(200, json={"id": "x", "object": "chat.completion"}),
    "choices null": lambda: httpx.Response(200, json={"id": "x", "choices": None}),
    "no choice at all": lambda: httpx.Response(200, json={"id": "x", "choices": []}),
    "a choice without a message": lambda: httpx.Response(200, json={"id": "x", "choices": [{"index": 0}]}),
    "a JSON list": lambda: httpx.Response(200, json=[1, 2, 3]),
}


@pytest.mark.parametrize("completion", [False, True], ids=["chat", "completion"])
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_garbage_body_is_one_clear_error_and_nothing_is_cached(tmp_path: Path, kind: str, completion: bool) -> None:
    """A 200 whose body is not a completion is retried, then reported as such (not an openai/JSON traceback);
    nothing of it reaches the cache."""
    cache = GenerationCache(tmp_path / "gen.sqlite")
    server = FakeServer(fail=lambda request, body: GARBAGE[kind]())
    request = GenRequest.completion("q", Sampling(max_tokens=8)) if completion else _ask("q")
    with pytest.raises(GenerationError) as err:
        _harness(server, cache, max_retries=1).generate([request])
    assert type(err.value) is GenerationError
    message = str(err.value)
    assert message.startswith("The server answered a request 2 times with a body that is not an OpenAI completion (")
    assert "0 new generations finished and are in the cache" in message and "\n" not in message
    assert len(server.bodies) == 2 and cache.count() == 0


def test_garbage_for_some_requests_keeps_the_good_answers_only(tmp_path: Path) -> None:
    """Garbage for one request of a batch: the good answers are cached and readable, the garbled one is not."""
    cache = GenerationCache(tmp_path / "gen.sqlite")
    server = FakeServer(fail=lambda request, body: GARBAGE["JSON without choices"]() if _content(body) == "bad" else None,
                        delay=lambda body: 0.02 if _content(body) == "bad" else 0)
    requests = [_ask("a"), _ask("bad"), _ask("b")]
    with pytest.raises(GenerationError, match=r"not an OpenAI completion .* 2 new generations finished"):
        _harness(server, cache, max_retries=1).generate(requests)
    assert cache.count() == 2
    healthy = FakeServer()
    gens = _harness(healthy, cache).generate(requests)
    assert [_content(b) for b in healthy.bodies] == ["bad"]
    assert [(g.text, g.cached) for g in gens] == [("echo a", True), ("echo bad", False), ("echo b", True)]


# ------------------------------------------------------------------------------------------------ publishing: full disk
def _fake_run(monkeypatch: pytest.MonkeyPatch, text: str = "new") -> None:
    """A notebook run that needs no kernel: it writes an executed notebook, a results file and a figure to staging."""

    def execute(source, target, stage, params, timeout_s, cache_only):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{text} notebook")
        for folder, name in ((results_dir_for(EXPERIMENT, MODEL), "responses.csv"),
                             (figures_dir_for(EXPERIMENT, MODEL), "rates.svg")):
            (stage / folder).mkdir(parents=True, exist_ok=True)
            (stage / folder / name).write_text(f"{text} {name}")

    monkeypatch.setattr(pipeline, "_execute", execute)
    monkeypatch.setattr(pipeline, "_title_with_model", lambda *a: None)
    monkeypatch.setattr(pipeline, "serve", lambda *a, **k: pytest.fail("a server was started"))


def _published_tree(root: Path) -> dict[str, str]:
    """Every file the runs published under ``root`` (hidden backups included), with its text."""
    return {str(p.relative_to(root)): p.read_text() for folder in ("experiments", "figures") if (root / folder).exists()
            for p in sorted((root / folder).rglob("*")) if p.is_file()}


def _previous_outputs(root: Path) -> dict[str, str]:
    for relative, name in ((pipeline.executed_path(EXPERIMENT, MODEL), None),
                           (results_dir_for(EXPERIMENT, MODEL), "responses.csv"),
                           (figures_dir_for(EXPERIMENT, MODEL), "rates.svg")):
        path = root / relative if name is None else root / relative / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"old {path.name}")
    return _published_tree(root)


def _enospc_on_rename(monkeypatch: pytest.MonkeyPatch, nth: int) -> list[str]:
    """Make the ``nth`` Path.replace call fail as a full disk does; returns the log of renames attempted."""
    real, log = Path.replace, []

    def replace(self: Path, target: os.PathLike | str) -> Path:
        log.append(f"{self.name} -> {Path(target).name}")
        if len(log) == nth:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    return log


#: The renames publishing does for an experiment published before: each of three outputs to its backup, then the
#: staged one into place. A full disk at any of them must leave everything as it was.
RENAMES = range(1, 7)


@pytest.mark.parametrize("nth", RENAMES)
def test_a_full_disk_while_publishing_leaves_the_previous_outputs_intact(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         nth: int) -> None:
    """ENOSPC at any step of publishing: nothing half-published, previous outputs intact, staging cleaned, and the
    error says what happened."""
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "out"))
    before = _previous_outputs(tmp_path / "out")
    _fake_run(monkeypatch)
    log = _enospc_on_rename(monkeypatch, nth)
    with pytest.raises(pipeline.ExperimentError) as err:
        pipeline.run_experiment(EXPERIMENT, MODEL)
    message = str(err.value)
    assert message.startswith("Could not publish ") and "(No space left on device)" in message
    assert message.endswith("nothing was published and the previous outputs are unchanged.")
    assert len(log) >= nth  # the failure happened where it was meant to
    assert _published_tree(tmp_path / "out") == before  # no new file, no half of one, no backup left over
    assert not list((tmp_path / "out" / ".personalab" / "staging").iterdir())


def test_publishing_without_a_fault_replaces_all_three_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the full-disk test: the same run with a healthy disk publishes every new output, no backups."""
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "out"))
    before = _previous_outputs(tmp_path / "out")
    _fake_run(monkeypatch)
    log = _enospc_on_rename(monkeypatch, nth=0)
    pipeline.run_experiment(EXPERIMENT, MODEL)
    after = _published_tree(tmp_path / "out")
    assert len(log) == len(RENAMES)
    assert sorted(after) == sorted(before) and all(text.startswith("new ") for text in after.values())


def test_a_full_disk_at_a_first_publication_leaves_no_empty_folders(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC on the last output of a first publication: the outputs already moved are taken back, folders too."""
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "out"))
    _fake_run(monkeypatch)
    _enospc_on_rename(monkeypatch, nth=3)  # nothing to back up: executed, results, then figures fails
    with pytest.raises(pipeline.ExperimentError, match="No space left on device"):
        pipeline.run_experiment(EXPERIMENT, MODEL)
    assert not (tmp_path / "out" / "experiments").exists() and not (tmp_path / "out" / "figures").exists()
    assert not list((tmp_path / "out" / ".personalab" / "staging").iterdir())


# ------------------------------------------------------------------------------------------------ a read-only results folder
def _expensive_work_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import personalab.train

    monkeypatch.setattr(pipeline, "_execute", lambda *a, **k: pytest.fail("a kernel was started"))
    monkeypatch.setattr(pipeline, "serve", lambda *a, **k: pytest.fail("a server was started"))
    monkeypatch.setattr(personalab.train, "pull", lambda *a, **k: pytest.fail("a model was pulled"))


def test_a_read_only_results_folder_is_named_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 0555 on the results folder: the run names it in one sentence before a kernel or a server starts."""
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "out"))
    results = tmp_path / "out" / "experiments" / "results"
    results.mkdir(parents=True)
    results.chmod(0o555)
    try:
        if os.access(results, os.W_OK):
            pytest.skip("running as root: chmod 0555 does not stop this user from writing, so nothing to refuse")
        _expensive_work_fails(monkeypatch)
        with pytest.raises(pipeline.ExperimentError) as err:
            pipeline.run_experiment(EXPERIMENT, MODEL)
        assert str(err.value).startswith(f"{results} is not writable, so {EXPERIMENT} on {MODEL} could not be published")
        assert _published_tree(tmp_path / "out") == {}
    finally:
        results.chmod(stat.S_IRWXU)


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same refusal where chmod cannot be trusted (root): the figures folder reported unwritable is named, and
    nothing runs."""
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "out"))
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(pipeline.os, "access", lambda path, mode: Path(path) != figures and real_access(path, mode))
    _expensive_work_fails(monkeypatch)
    with pytest.raises(pipeline.ExperimentError, match=rf"^{figures} is not writable, so {EXPERIMENT} on {MODEL} "
                                                       r"could not be published; make it writable .*\.$"):
        pipeline.run_experiment(EXPERIMENT, MODEL)
    assert not (tmp_path / "out" / ".personalab").exists()  # not even a staging folder was made


def test_the_cli_reports_an_unwritable_folder_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`personalab run` with an unwritable output root: exit 1, one line on stderr naming it, no traceback."""
    from personalab.cli import main

    root = tmp_path / "out"
    root.mkdir()
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(root))
    real_access = os.access
    monkeypatch.setattr(pipeline.os, "access", lambda path, mode: Path(path) != root and real_access(path, mode))
    _expensive_work_fails(monkeypatch)
    assert main(["run", EXPERIMENT, "--model", MODEL]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"personalab: ExperimentError: {root} is not writable") and err.count("\n") == 1
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------ two runs, one cache
def _run_batch(path: str, texts: list[str], results: "mp.Queue") -> None:
    """One process's run: a Harness on its own fake server, writing generations to the shared cache file."""
    try:
        server = FakeServer(delay=lambda body: 0.001)
        gens = _harness(server, GenerationCache(path), concurrency=8).generate([_ask(t) for t in texts])
        results.put(("ok", [g.text for g in gens], len(server.bodies)))
    except BaseException as err:  # reported to the parent: a "database is locked" must fail the test visibly
        results.put(("error", f"{type(err).__name__}: {err}", 0))


def test_two_runs_at_once_on_one_cache_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    """Two processes generating through one GenerationCache file: every row kept once, no lock error.

    (test_cache.py::test_two_processes_write_concurrently does the same with raw puts; this goes through the
    Harness, whose writes happen from its worker thread while the event loop runs.)"""
    path = str(tmp_path / "gen.sqlite")
    GenerationCache(path).close()
    first, second = [f"q{i}" for i in range(60)], [f"q{i}" for i in range(30, 90)]  # 30 in common
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_run_batch, args=(path, texts, results)) for texts in (first, second)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert sorted(tuple(o[1]) for o in outcomes) == sorted([tuple(f"echo {t}" for t in first),
                                                            tuple(f"echo {t}" for t in second)])
    assert _rows(Path(path)) == (90, 90)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = FakeServer()
    _harness(again, GenerationCache(path)).generate([_ask(f"q{i}") for i in range(90)])
    assert again.bodies == []  # every generation of both runs is there
