"""The harness against a real vLLM server: chat, prefill, logprobs, completion mode, cache, provenance."""

from __future__ import annotations

import dataclasses

import pytest

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenRequest, Harness, Sampling
from personalab.harness.models import checkpoint_dir, is_pulled, pull
from personalab.harness.registry import get_model
from personalab.harness.server import Endpoint, ServeError, find_running, served_models
from personalab.harness.templates import render_chat

from .conftest import TEST_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_pull_is_verified_and_idempotent(pulled_model):
    spec = get_model(TEST_MODEL)
    assert is_pulled(spec)
    assert (checkpoint_dir(spec) / "model.safetensors").exists()
    again = pull(TEST_MODEL)
    assert again.already_present and again.sha256 == spec.sha256


def test_server_binds_loopback_and_lists_model(endpoint):
    url = endpoint.base_urls[0]
    assert url.startswith("http://127.0.0.1:")
    assert TEST_MODEL in served_models(url)
    assert endpoint.server["vllm_version"]


def test_second_serve_attaches(endpoint):
    running = find_running(get_model(TEST_MODEL))
    assert running is not None and running.base_urls == endpoint.base_urls


def test_chat_prefill_logprobs_and_cache(endpoint, tmp_path):
    harness = Harness(endpoint, cache=GenerationCache(tmp_path / "c.sqlite"), progress=False)
    sampling = Sampling(temperature=0.0, max_tokens=24, logprobs=True, top_logprobs=3)
    chat = GenRequest.chat([{"role": "user", "content": "Name a colour."}], sampling)
    prefill = GenRequest.chat([{"role": "user", "content": "Write a two-word greeting."},
                               {"role": "assistant", "content": "Sure, here it is:"}], sampling)
    completion = GenRequest.completion("The capital of France is", Sampling(max_tokens=8))
    first = harness.generate([chat, prefill, completion])
    assert all(g.text.strip() for g in first)
    assert not any(g.cached for g in first)
    assert first[0].completion_tokens > 0 and first[0].prompt_tokens > 0 and first[0].latency_s > 0
    # logprobs: one record per generated token, with the requested alternatives
    tokens = first[0].logprobs[0]
    assert len(tokens) == first[0].completion_tokens and len(tokens[0]["top"]) >= 1
    # a prefill continues the assistant message: the reply does not start by repeating the prefill
    assert not first[1].text.startswith("Sure, here it is:")
    assert first[1].provenance["prefill"] is True
    prov = first[0].provenance
    assert prov["weight_sha256"] == get_model(TEST_MODEL).sha256 and prov["vllm_version"] and prov["device"]
    second = harness.generate([chat, prefill, completion])
    assert all(g.cached for g in second)
    assert [g.texts for g in second] == [g.texts for g in first]


def test_prefill_changes_the_answer(endpoint, tmp_path):
    harness = Harness(endpoint, cache=GenerationCache(tmp_path / "c.sqlite"), progress=False)
    q = [{"role": "user", "content": "Is the sky green? Answer yes or no."}]
    plain, forced = harness.generate([GenRequest.chat(q, Sampling(max_tokens=8)),
                                      GenRequest.chat(q + [{"role": "assistant", "content": "Yes"}],
                                                      Sampling(max_tokens=8))])
    assert plain.text != forced.text


def test_model_not_served_fails_fast(endpoint):
    from dataclasses import replace

    wrong = replace(endpoint, served_name="no-such-model")
    with pytest.raises(ServeError, match="does not serve 'no-such-model'"):
        Harness(wrong)


COMPLETION_ASK = [{"role": "user", "content": "Write a short note to my teacher saying I was ill yesterday."}]


def test_completion_mode_renders_chats_for_a_real_server(endpoint, tmp_path):
    """The same SmolLM2 server, asked through a completion-mode entry: chats arrive at /v1/completions as the
    plain template's text, and the prompt token count matches that text, not the tokenizer's own chat template."""
    spec = dataclasses.replace(endpoint.spec, mode="completion", stop=("\nUser:",))
    ep = Endpoint(spec, endpoint.base_urls, endpoint.served_name, endpoint.api_key_env, endpoint.server)
    chat_ep = Harness(endpoint, cache=GenerationCache(tmp_path / "a.sqlite"), progress=False)
    completion_ep = Harness(ep, cache=GenerationCache(tmp_path / "b.sqlite"), progress=False)
    sampling = Sampling(temperature=0.0, max_tokens=32)
    as_chat = chat_ep.generate([GenRequest.chat(COMPLETION_ASK, sampling)])[0]
    as_text = completion_ep.generate([GenRequest.chat(COMPLETION_ASK, sampling)])[0]
    raw = chat_ep.generate([GenRequest.completion(render_chat(spec, COMPLETION_ASK), sampling)])[0]
    assert as_text.provenance["mode"] == "completion" and as_chat.provenance["mode"] == "chat"
    assert as_text.prompt_tokens == raw.prompt_tokens != as_chat.prompt_tokens
    assert as_text.texts[0] == raw.texts[0].split("\nUser:")[0] and "\nUser:" not in as_text.texts[0]
    assert spec.weight_id != endpoint.spec.weight_id and TEST_MODEL in spec.id
