"""Residual-stream activations at the last prompt position, every layer, cached on disk.

The residual stream after decoder block ``l`` is read with a forward hook on that block, at the last token of the
prompt (the end of the assistant header: where the reply's first token is decided). The cache file is keyed by the
weights and the exact prompt texts, like the generation cache, so a re-run with the same prompts reads it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from personalab.activations.model import ActivationsError, LocalModel
from personalab.outputs import atomic_write
from personalab.paths import data_dir


def cache_path(weight_id: str, texts: Sequence[str]) -> Path:
    """Where the activations of ``texts`` under the weights ``weight_id`` are cached."""
    key = hashlib.sha256(json.dumps([weight_id, "resid_post@last", list(texts)]).encode()).hexdigest()
    return data_dir() / "activations" / f"{key[:24]}.npy"


def block_output(output: object) -> object:
    """The hidden states a decoder block returns (a tensor, or the first element of a tuple in older versions)."""
    return output[0] if isinstance(output, tuple) else output


def last_position(model: LocalModel, conversations: Sequence[list[dict[str, str]]], batch_size: int = 16,
                  progress: bool = True) -> np.ndarray:
    """Residual stream after every block at each prompt's last token: an array of shape (prompts, layers, hidden)."""
    import torch

    if not conversations:
        raise ActivationsError("no prompts to read activations from: the prompt set is empty.")
    texts = [model.prompt_text(list(c)) for c in conversations]
    path = cache_path(model.weight_id, texts)
    if path.exists():
        return np.load(path)
    tok = model.tokenizer
    out = np.zeros((len(texts), model.n_layers, model.hidden_size), dtype=np.float32)
    captured: list = [None] * model.n_layers

    def hook(index: int):
        def fn(_module, _inputs, output):
            captured[index] = block_output(output)[:, -1, :].float()  # left padding: the last token is the prompt's
        return fn

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(model.layers)]
    try:
        bar = tqdm(total=len(texts), desc=f"activations · {model.id}", disable=not progress)
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start: start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                model.model(**enc)
            out[start: start + len(enc["input_ids"])] = torch.stack(captured, dim=1).numpy()
            bar.update(len(enc["input_ids"]))
        bar.close()
    finally:
        for handle in handles:
            handle.remove()
    atomic_write(path, lambda p: np.save(p, out))
    return out
