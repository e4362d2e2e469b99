"""Greedy generation with the residual stream steered: a direction ablated at every layer, added at one, or capped.

vLLM cannot hook activations, so these runs use transformers ``generate`` (batched, left-padded, greedy) and are kept
small. Ablation removes the direction's component from the stream entering the first block and leaving every block;
addition adds ``scale`` times the (unnormalised) direction to the output of one block, at every position. Capping
(Lu et al., 2026) clamps the projection of one block's output on the unit direction at a threshold: a floor lifts a
projection below it up to it (a ceiling lowers one above it), and leaves every other vector exactly as it was. The cap
acts on the newest position of each forward pass: the prompt's last token (where the reply is decided), then, with the
key-value cache, each generated token. Replies are cached per weights, intervention and token limit, keyed by the
conversation, so a re-run regenerates nothing; :func:`seconds_per_token` times uncached generation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
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

KINDS: tuple[str, ...] = ("none", "ablate", "add", "cap")


@dataclass(frozen=True)
class Intervention:
    """What is done to the residual stream while generating."""

    kind: str = "none"
    direction: tuple[float, ...] | None = None
    layer: int | None = None
    scale: float = 1.0
    threshold: float | None = None  # cap only: the bound on the projection on the unit direction
    ceiling: bool = False  # cap only: bound the projection from above (a ceiling) instead of from below (a floor)

    @classmethod
    def ablate(cls, direction: np.ndarray) -> "Intervention":
        return cls("ablate", tuple(float(x) for x in np.asarray(direction).ravel()))

    @classmethod
    def add(cls, direction: np.ndarray, layer: int, scale: float = 1.0) -> "Intervention":
        return cls("add", tuple(float(x) for x in np.asarray(direction).ravel()), layer, scale)

    @classmethod
    def cap(cls, direction: np.ndarray, layer: int, threshold: float, ceiling: bool = False) -> "Intervention":
        """Clamp the projection of ``layer``'s output on the unit ``direction`` at ``threshold`` (a floor, or a
        ceiling)."""
        return cls("cap", tuple(float(x) for x in np.asarray(direction).ravel()), layer, threshold=float(threshold),
                   ceiling=ceiling)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ActivationsError(f"intervention kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if self.kind != "none" and not self.direction:
            raise ActivationsError(f"a {self.kind} intervention needs a direction.")
        if self.kind in ("add", "cap") and self.layer is None:
            raise ActivationsError(f"the {self.kind} intervention needs the layer to act at.")
        if self.kind == "cap" and (self.threshold is None or not np.isfinite(self.threshold)):
            raise ActivationsError(f"a cap intervention needs a finite threshold, got {self.threshold!r}.")

    def key(self) -> str:
        """A short content hash: the kind, the layer, the scale, the direction's values (and a cap's bound)."""
        fields: list[Any] = [self.kind, self.layer, self.scale, [round(x, 6) for x in self.direction or ()]]
        if self.kind == "cap":  # only caps carry a bound, so the other kinds keep their cached replies' keys
            fields += [round(float(self.threshold), 6), self.ceiling]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def capped(h: "torch.Tensor", r: "torch.Tensor", threshold: float, ceiling: bool = False) -> "torch.Tensor":
    """``h`` with its projection on the unit vector ``r`` clamped at ``threshold`` (last axis): a floor replaces ``h``
    by ``h + (threshold - h.r) r`` where ``h.r < threshold`` (a ceiling where ``h.r > threshold``); every other vector
    is returned exactly as it was."""
    import torch

    proj = h @ r
    past = proj > threshold if ceiling else proj < threshold
    return torch.where(past.unsqueeze(-1), h + (threshold - proj).unsqueeze(-1) * r, h)


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
    elif intervention.kind == "cap":
        layer = model.check_layer(intervention.layer)
        r = vec / vec.norm()

        def clamp(_module, _inputs, output):
            h = block_output(output)
            h = torch.cat([h[:, :-1], capped(h[:, -1:], r, intervention.threshold, intervention.ceiling)], dim=1)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        handles.append(model.layers[layer].register_forward_hook(clamp))
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


def _greedy(model: LocalModel, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int,
            min_new_tokens: int | None = None) -> list[str]:
    """One left-padded batch answered greedily with whatever hooks are installed (uncached)."""
    import torch

    tok = model.tokenizer
    enc = tok([model.prompt_text(list(c)) for c in conversations], return_tensors="pt", padding=True,
              add_special_tokens=False)
    with torch.inference_mode():
        out = model.model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                                   do_sample=False, pad_token_id=tok.pad_token_id)
    return [tok.decode(row, skip_special_tokens=True).strip() for row in out[:, enc["input_ids"].shape[1]:]]


def generate(model: LocalModel, conversations: Sequence[list[dict[str, str]]], intervention: Intervention = Intervention(),
             max_new_tokens: int = 48, batch_size: int = 16, progress: bool = True, desc: str = "") -> list[str]:
    """The model's greedy reply to each conversation under ``intervention`` (cached)."""
    if max_new_tokens < 1:
        raise ActivationsError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    path = generations_path(model, intervention, max_new_tokens)
    cache: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    keys = [_conversation_key(c) for c in conversations]
    todo = list({k: c for k, c in zip(keys, conversations) if k not in cache}.items())
    if todo:
        bar = tqdm(total=len(todo), desc=desc or f"{intervention.kind} · {model.id}", disable=not progress)
        with steering(model, intervention):
            for start in range(0, len(todo), batch_size):
                batch = todo[start: start + batch_size]
                for (key, _), reply in zip(batch, _greedy(model, [c for _, c in batch], max_new_tokens)):
                    cache[key] = reply
                bar.update(len(batch))
                text = json.dumps(cache, indent=0, sort_keys=True, ensure_ascii=False)
                atomic_write(path, lambda p, text=text: p.write_text(text, encoding="utf-8"))
        bar.close()
    return [cache[k] for k in keys]


def seconds_per_token(model: LocalModel, conversations: Sequence[list[dict[str, str]]], intervention: Intervention,
                      max_new_tokens: int = 32) -> float:
    """Wall seconds per generated token of one uncached greedy batch under ``intervention``, every reply forced to
    ``max_new_tokens`` tokens so that interventions are timed on the same amount of work."""
    if not conversations:
        raise ActivationsError("no prompts to time generation on: the prompt set is empty.")
    if max_new_tokens < 1:
        raise ActivationsError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    with steering(model, intervention):
        start = time.perf_counter()
        _greedy(model, conversations, max_new_tokens, min_new_tokens=max_new_tokens)
        return (time.perf_counter() - start) / (len(conversations) * max_new_tokens)
