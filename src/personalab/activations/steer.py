"""Greedy generation with the residual stream steered: a direction ablated at every layer, or added at one.

vLLM cannot hook activations, so these runs use transformers ``generate`` (batched, left-padded, greedy) and are kept
small. Ablation removes the direction's component from the stream entering the first block and leaving every block;
addition adds ``scale`` times the (unnormalised) direction to the output of one block, at every position. Replies are
cached per weights, intervention and token limit, keyed by the conversation, so a re-run regenerates nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from personalab.activations.collect import block_output
from personalab.activations.model import ActivationsError, LocalModel
from personalab.outputs import atomic_write
from personalab.paths import data_dir

KINDS: tuple[str, ...] = ("none", "ablate", "add")


@dataclass(frozen=True)
class Intervention:
    """What is done to the residual stream while generating."""

    kind: str = "none"
    direction: tuple[float, ...] | None = None
    layer: int | None = None
    scale: float = 1.0

    @classmethod
    def ablate(cls, direction: np.ndarray) -> "Intervention":
        return cls("ablate", tuple(float(x) for x in np.asarray(direction).ravel()))

    @classmethod
    def add(cls, direction: np.ndarray, layer: int, scale: float = 1.0) -> "Intervention":
        return cls("add", tuple(float(x) for x in np.asarray(direction).ravel()), layer, scale)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ActivationsError(f"intervention kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if self.kind != "none" and not self.direction:
            raise ActivationsError(f"a {self.kind} intervention needs a direction.")
        if self.kind == "add" and self.layer is None:
            raise ActivationsError("an add intervention needs the layer to add at.")

    def key(self) -> str:
        """A short content hash: the kind, the layer, the scale and the direction's values."""
        payload = json.dumps([self.kind, self.layer, self.scale, [round(x, 6) for x in self.direction or ()]])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextlib.contextmanager
def steering(model: LocalModel, intervention: Intervention) -> Iterator[None]:
    """Install the intervention's hooks on ``model`` for the duration of the block."""
    import torch

    if intervention.kind == "none":
        yield
        return
    if len(intervention.direction or ()) != model.hidden_size:
        raise ActivationsError(f"the direction has {len(intervention.direction or ())} values but {model.id} has "
                               f"hidden size {model.hidden_size}.")
    vec = torch.tensor(intervention.direction, dtype=model.model.dtype)
    handles = []
    if intervention.kind == "ablate":
        r = vec / vec.norm()

        def remove(h: "torch.Tensor") -> "torch.Tensor":
            return h - (h @ r).unsqueeze(-1) * r

        def pre(_module, args, kwargs):
            if args:
                return (remove(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": remove(kwargs["hidden_states"])}

        def post(_module, _inputs, output):
            if isinstance(output, tuple):
                return (remove(output[0]), *output[1:])
            return remove(output)

        handles.append(model.layers[0].register_forward_pre_hook(pre, with_kwargs=True))
        handles += [layer.register_forward_hook(post) for layer in model.layers]
    else:
        layer = model.check_layer(intervention.layer)
        shift = intervention.scale * vec

        def add(_module, _inputs, output):
            if isinstance(output, tuple):
                return (block_output(output) + shift, *output[1:])
            return output + shift

        handles.append(model.layers[layer].register_forward_hook(add))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _conversation_key(conversation: Sequence[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(list(conversation), sort_keys=True).encode()).hexdigest()


def generations_path(model: LocalModel, intervention: Intervention, max_new_tokens: int) -> Path:
    """The cache file of one model's replies under one intervention and token limit."""
    weights = hashlib.sha256(model.weight_id.encode()).hexdigest()[:16]
    return data_dir() / "activations" / f"replies-{weights}-{intervention.key()}-{max_new_tokens}.json"


def generate(model: LocalModel, conversations: Sequence[list[dict[str, str]]], intervention: Intervention = Intervention(),
             max_new_tokens: int = 48, batch_size: int = 16, progress: bool = True, desc: str = "") -> list[str]:
    """The model's greedy reply to each conversation under ``intervention`` (cached)."""
    import torch

    if max_new_tokens < 1:
        raise ActivationsError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    path = generations_path(model, intervention, max_new_tokens)
    cache: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    keys = [_conversation_key(c) for c in conversations]
    todo = list({k: c for k, c in zip(keys, conversations) if k not in cache}.items())
    if todo:
        tok = model.tokenizer
        bar = tqdm(total=len(todo), desc=desc or f"{intervention.kind} · {model.id}", disable=not progress)
        with steering(model, intervention):
            for start in range(0, len(todo), batch_size):
                batch = todo[start: start + batch_size]
                texts = [model.prompt_text(list(c)) for _, c in batch]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.inference_mode():
                    out = model.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                               pad_token_id=tok.pad_token_id)
                for (key, _), row in zip(batch, out[:, enc["input_ids"].shape[1]:]):
                    cache[key] = tok.decode(row, skip_special_tokens=True).strip()
                bar.update(len(batch))
                text = json.dumps(cache, indent=0, sort_keys=True, ensure_ascii=False)
                atomic_write(path, lambda p, text=text: p.write_text(text, encoding="utf-8"))
        bar.close()
    return [cache[k] for k in keys]
