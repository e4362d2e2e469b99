"""Chat templates of the project's own, for base models whose tokenizer ships none.

A registry entry with ``chat_template:`` has vLLM apply that file (``--chat-template``); one with
``mode: completion`` has the client render each chat request with it and send plain text to the completions
endpoint, which works against any OpenAI-compatible server. Both render as transformers does, so the activations
stage and the trainer see the same prompt text.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from personalab.harness.registry import ModelSpec


def render_chat(spec: ModelSpec, messages: Sequence[Mapping[str, str]]) -> str:
    """``messages`` as the text ``spec``'s template makes of them: a generation prompt, or the final assistant turn
    left open when it is a prefill. No BOS token: the completions endpoint adds the tokenizer's own."""
    from transformers.utils.chat_template_utils import render_jinja_template

    template = spec.template_file
    if template is None:
        raise ValueError(f"{spec.id} has no chat template of the project's own to render with.")
    prefill = bool(messages) and messages[-1]["role"] == "assistant"
    rendered, _ = render_jinja_template(conversations=[[dict(m) for m in messages]], chat_template=template.read_text(),
                                        add_generation_prompt=not prefill, continue_final_message=prefill,
                                        bos_token="", eos_token="")
    return rendered[0]
