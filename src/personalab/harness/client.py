"""The generation harness every experiment uses: cached, concurrent, resumable, honest about provenance.

Requests are plain data (:class:`GenRequest`); :func:`generate` answers a list of them in order. Answers
already in the cache are returned at once; the rest are sent with bounded concurrency (to keep vLLM's
continuous batching full), each stored the moment it arrives. A failing request is retried with backoff; if
the server dies, a server this process owns is restarted, otherwise the run stops with a message saying how
much finished work is safe in the cache.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import httpx
import openai
from tqdm import tqdm

from personalab.harness.cache import GenerationCache, cache_key
from personalab.harness.server import Endpoint, ServeError, check_endpoint
from personalab.harness.templates import render_chat

Message = Mapping[str, str]
_ROLES = ("system", "user", "assistant")
_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError, openai.RateLimitError)


class GenerationError(RuntimeError):
    """Generation could not finish; finished generations are kept in the cache."""


class CacheMiss(LookupError):
    """A cache-only harness (an endpoint with no server) was asked for something the cache does not hold."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; all of them are part of the cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 128
    n: int = 1
    seed: int = 0
    logprobs: bool = False
    top_logprobs: int = 0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # vLLM extension: always generate max_tokens (benchmarks use it)

    def validate(self) -> None:
        """Reject impossible values with one clear sentence."""
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {self.max_tokens}.")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}.")
        if self.top_logprobs < 0 or (self.top_logprobs and not self.logprobs):
            raise ValueError("top_logprobs needs logprobs=True and must be >= 0.")


@dataclass(frozen=True)
class GenRequest:
    """One generation: chat ``messages`` (a final assistant message is a prefill to continue), or a raw ``prompt``
    for completion mode (the weights as a plain text continuer, no chat template)."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def chat(cls, messages: Sequence[Message], sampling: Sampling | None = None, **meta: Any) -> "GenRequest":
        return cls(messages=tuple(dict(m) for m in messages), sampling=sampling or Sampling(), meta=meta)

    @classmethod
    def completion(cls, prompt: str, sampling: Sampling | None = None, **meta: Any) -> "GenRequest":
        return cls(prompt=prompt, sampling=sampling or Sampling(), meta=meta)

    @property
    def is_prefill(self) -> bool:
        return bool(self.messages) and self.messages[-1]["role"] == "assistant"

    @property
    def prefill(self) -> str | None:
        """The text put in the assistant's mouth, if any."""
        return self.messages[-1]["content"] if self.is_prefill else None

    def validate(self) -> None:
        """Reject malformed requests before anything is sent."""
        self.sampling.validate()
        if self.prompt is not None:
            if self.messages:
                raise ValueError("A request has either messages or a prompt, not both.")
            if not self.prompt:
                raise ValueError("The completion prompt is empty.")
            return
        if not self.messages:
            raise ValueError("A chat request needs at least one message; got none.")
        for msg in self.messages:
            if msg.get("role") not in _ROLES or not isinstance(msg.get("content"), str):
                raise ValueError(f"Malformed message {dict(msg)!r}: role must be one of {_ROLES} and content a string.")
        if self.messages[-1]["role"] == "system":
            raise ValueError("The last message is a system message; end with a user turn (or an assistant prefill).")

    def key_payload(self, model_id: str, weight_id: str) -> dict[str, Any]:
        """What determines the generation (the endpoint is deliberately not part of it)."""
        return {"model": model_id, "weights": weight_id, "messages": [dict(m) for m in self.messages],
                "prompt": self.prompt, "sampling": asdict(self.sampling)}


@dataclass(frozen=True)
class Generation:
    """A model's answer to one :class:`GenRequest` with its provenance."""

    key: str
    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    provenance: Mapping[str, Any]
    logprobs: tuple[Any, ...] = ()
    cached: bool = False
    request: GenRequest | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        """The first (often only) sample."""
        return self.texts[0]

    @classmethod
    def from_record(cls, key: str, record: Mapping[str, Any], request: GenRequest, cached: bool) -> "Generation":
        return cls(key=key, texts=tuple(record["texts"]), finish_reasons=tuple(record["finish_reasons"]),
                   prompt_tokens=record["prompt_tokens"], completion_tokens=record["completion_tokens"],
                   latency_s=record["latency_s"], provenance=record["provenance"],
                   logprobs=tuple(record.get("logprobs") or ()), cached=cached, request=request)


def _logprob_record(content: Any) -> list[dict[str, Any]] | None:
    if not content:
        return None
    return [{"token": t.token, "logprob": t.logprob,
             "top": {alt.token: alt.logprob for alt in (t.top_logprobs or [])}} for t in content]


def _completion_logprobs(lp: Any) -> list[dict[str, Any]] | None:
    if lp is None or not lp.tokens:
        return None
    tops = lp.top_logprobs or [None] * len(lp.tokens)
    return [{"token": tok, "logprob": val, "top": dict(top or {})}
            for tok, val, top in zip(lp.tokens, lp.token_logprobs, tops)]


class Harness:
    """Sends requests to an :class:`Endpoint` through the cache. One instance per model and run."""

    def __init__(self, endpoint: Endpoint, *, cache: GenerationCache | None = None, concurrency: int = 32,
                 max_retries: int = 4, backoff_s: float = 0.5, timeout_s: float = 600.0, progress: bool = True,
                 restart: Callable[[], Endpoint] | None = None, max_restarts: int = 2,
                 http_client_factory: Callable[[], httpx.AsyncClient] | None = None, check: bool = True,
                 send_seed: bool | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}.")
        self.endpoint = endpoint
        self.cache = cache or GenerationCache()
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.progress = progress
        self.restart = restart
        self.max_restarts = max_restarts
        self.http_client_factory = http_client_factory
        self.restarts = 0
        # vLLM 0.32 on the CPU dies ("CPU Generator does not use offset") when seeded sampling requests meet
        # chunked prefill, so by default the seed is sent only to CUDA servers. It stays in the cache key either
        # way (it names the sample); the cache, not the seed, is what makes a published run repeatable.
        self.send_seed = endpoint.server.get("device") == "cuda" if send_seed is None else send_seed
        if check and endpoint.base_urls:
            check_endpoint(endpoint)

    # -- provenance -------------------------------------------------------------------------------------------
    def provenance_base(self) -> dict[str, Any]:
        """What every response records about the model and server (never the endpoint's API key)."""
        spec = self.endpoint.spec
        server = self.endpoint.server
        template = spec.template_file
        return {"model_id": spec.id, "model_name": spec.display_name, "weight_sha256": spec.sha256,
                "hf_id": spec.hf_id, "vllm_version": server.get("vllm_version"), "device": server.get("device"),
                "served_name": self.endpoint.served_name, "model_mode": spec.mode,
                "chat_template": {"file": template.name, "sha256": spec.template_sha256} if template else None}

    # -- public API -------------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenRequest], desc: str = "generate") -> list[Generation]:
        """Answer ``requests`` in order, from the cache where possible. Blocks; safe inside Jupyter."""
        for req in requests:
            req.validate()
        spec = self.endpoint.spec
        keys = [cache_key(req.key_payload(spec.id, spec.weight_id)) for req in requests]
        found = self.cache.get_many(keys)
        todo: dict[str, GenRequest] = {}
        for key, req in zip(keys, requests):
            if key not in found and key not in todo:
                todo[key] = req
        if todo and not self.endpoint.base_urls:
            raise CacheMiss(f"{len(todo)} of {len(set(keys))} generations are not in the cache and no server is "
                            "connected (cache-only mode).")
        if todo:
            fresh = _run_in_thread(self._generate_missing(todo, len(set(keys)), len(set(keys)) - len(todo), desc))
            found.update(fresh)
        cached_keys = set(found) - set(todo)
        return [Generation.from_record(k, found[k], r, cached=k in cached_keys) for k, r in zip(keys, requests)]

    # -- internals --------------------------------------------------------------------------------------------
    def _clients(self) -> list[openai.AsyncOpenAI]:
        return [openai.AsyncOpenAI(base_url=url, api_key=self.endpoint.api_key(), max_retries=0, timeout=self.timeout_s,
                                   http_client=self.http_client_factory() if self.http_client_factory else None)
                for url in self.endpoint.base_urls]

    async def _generate_missing(self, todo: dict[str, GenRequest], total: int, done: int,
                                desc: str) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        pending = dict(todo)
        bar = tqdm(total=total, initial=done, desc=desc, unit="req", disable=not self.progress, smoothing=0.05)
        try:
            while pending:
                clients = self._clients()
                try:
                    await self._drain(pending, results, clients, bar)
                except GenerationError as err:
                    raise GenerationError(f"{err} {len(results)} new generations finished and are in the cache "
                                          f"({self.cache.path}); {len(pending)} remain.") from err.__cause__
                except _ServerGone as gone:
                    if self.restart is None or self.restarts >= self.max_restarts:
                        raise GenerationError(
                            f"The server stopped answering ({gone}). {len(results)} new generations finished and are "
                            f"in the cache ({self.cache.path}); {len(pending)} remain. Restart the server and re-run: "
                            "finished work is reused, nothing is generated twice.") from gone.__cause__
                    self.restarts += 1
                    bar.write(f"Server died ({gone}); restarting it (restart {self.restarts}/{self.max_restarts}) ...")
                    self.endpoint = await asyncio.to_thread(self.restart)
                finally:
                    for client in clients:
                        await client.close()
        finally:
            bar.close()
        return results

    async def _drain(self, pending: dict[str, GenRequest], results: dict[str, dict[str, Any]],
                     clients: list[openai.AsyncOpenAI], bar: tqdm) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)
        rotation = itertools.cycle(clients)
        base = self.provenance_base()

        async def one(key: str, req: GenRequest) -> None:
            async with semaphore:
                record = await self._with_retries(next(rotation), req, base)
            self.cache.put(key, self.endpoint.spec.id, req.key_payload(self.endpoint.spec.id,
                                                                        self.endpoint.spec.weight_id), record)
            results[key] = record
            pending.pop(key, None)
            bar.update(1)

        tasks = [asyncio.create_task(one(k, r)) for k, r in list(pending.items())]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _with_retries(self, client: openai.AsyncOpenAI, req: GenRequest, base: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            try:
                return await self._call(client, req, base)
            except _RETRYABLE as err:
                if attempt == self.max_retries:
                    if isinstance(err, (openai.APIConnectionError, openai.APITimeoutError)):
                        raise _ServerGone(type(err).__name__) from err
                    raise GenerationError(_sentence(f"A request failed {attempt + 1} times: {err}")) from err
                await asyncio.sleep(self.backoff_s * 2**attempt * (0.5 + random.random()))
            except (json.JSONDecodeError, _Malformed) as err:  # a 200 whose body is not JSON, or not a completion
                if attempt == self.max_retries:
                    what = f"invalid JSON: {err}" if isinstance(err, json.JSONDecodeError) else str(err)
                    raise GenerationError(f"The server answered a request {attempt + 1} times with a body that is not "
                                          f"an OpenAI completion ({what}); nothing of it was cached.") from err
                await asyncio.sleep(self.backoff_s * 2**attempt * (0.5 + random.random()))
            except openai.BadRequestError as err:
                raise GenerationError(_sentence(f"The server rejected a request: {err.message}")) from err
        raise AssertionError("unreachable")

    async def _call(self, client: openai.AsyncOpenAI, req: GenRequest, base: dict[str, Any]) -> dict[str, Any]:
        s = req.sampling
        common: dict[str, Any] = {"model": self.endpoint.served_name, "temperature": s.temperature, "top_p": s.top_p,
                                  "max_tokens": s.max_tokens, "n": s.n}
        if self.send_seed:
            common["seed"] = s.seed
        stop = list(s.stop) + [x for x in self.endpoint.spec.stop if x not in s.stop]
        if stop:
            common["stop"] = stop
        started_at = datetime.now(timezone.utc).isoformat()
        t0 = time.perf_counter()
        prompt = req.prompt
        if prompt is None and self.endpoint.spec.mode == "completion":  # a base model's chat, rendered here
            prompt = render_chat(self.endpoint.spec, req.messages)
        if prompt is not None:
            resp = await client.completions.create(prompt=prompt, logprobs=s.top_logprobs if s.logprobs else None,
                                                   extra_body={"ignore_eos": True} if s.ignore_eos else None, **common)
            choices = _choices(resp, s.n, "text")
            texts = [c.text for c in choices]
            logprobs = [_completion_logprobs(c.logprobs) for c in choices] if s.logprobs else []
        else:
            extra = {"continue_final_message": True, "add_generation_prompt": False} if req.is_prefill else {}
            if s.ignore_eos:
                extra["ignore_eos"] = True
            resp = await client.chat.completions.create(
                messages=[dict(m) for m in req.messages], logprobs=s.logprobs or None,
                top_logprobs=s.top_logprobs or None, extra_body=extra or None, **common)
            choices = _choices(resp, s.n, "message")
            texts = [c.message.content or "" for c in choices]
            logprobs = [_logprob_record(c.logprobs.content if c.logprobs else None) for c in choices] if s.logprobs else []
        latency = time.perf_counter() - t0
        usage = resp.usage
        return {
            "texts": texts,
            "finish_reasons": [c.finish_reason or "" for c in choices],
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "latency_s": latency,
            "logprobs": logprobs,
            "provenance": {**base, "sampling": asdict(s), "seed": s.seed, "seed_sent": self.send_seed, "mode": "completion" if prompt is not None else "chat",
                           "prefill": req.is_prefill, "started_at": started_at,
                           "finished_at": datetime.now(timezone.utc).isoformat()},
        }


class _ServerGone(Exception):
    """Internal: the endpoint stopped answering (connection refused or timed out after retries)."""


class _Malformed(Exception):
    """Internal: the server answered with a body that is not a completion (retried like a server error)."""


def _choices(resp: Any, n: int, part: str) -> list[Any]:
    """The ``n`` choices of a completion in index order, each with its ``part`` (``text`` or ``message``); anything
    else (a text body, no ``choices``, too few of them) raises :class:`_Malformed` before a record is made."""
    if isinstance(resp, str):
        raise _Malformed(f"a text body starting {resp[:40]!r}")
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        raise _Malformed("no 'choices' in it")
    if len(choices) != n:
        raise _Malformed(f"{len(choices)} choice(s) where n={n} were asked for")
    if any(not isinstance(getattr(c, "index", None), int) or getattr(c, part, None) is None for c in choices):
        raise _Malformed(f"a choice without an index or a {part}")
    return sorted(choices, key=lambda c: c.index)


def _sentence(text: str) -> str:
    """``text`` ending in a full stop, so the cache summary appended to a GenerationError reads as a new sentence."""
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _run_in_thread(coro: Any) -> Any:
    """Run ``coro`` on a fresh event loop in a worker thread, so callers inside Jupyter (a running loop) can block."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="personalab-generate", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def generate(endpoint: Endpoint, requests: Sequence[GenRequest], **harness_kwargs: Any) -> list[Generation]:
    """One-shot convenience: build a :class:`Harness` for ``endpoint`` and answer ``requests``."""
    return Harness(endpoint, **harness_kwargs).generate(requests)


__all__ = ["CacheMiss", "GenRequest", "Generation", "GenerationError", "Harness", "Sampling", "ServeError", "generate"]
