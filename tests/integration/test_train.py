"""A real training run: a tiny shallow mask on SmolLM2-135M (a few LoRA steps), merged, served by vLLM, asked once."""

from __future__ import annotations

import json

import pytest
import yaml

from personalab.harness.cache import GenerationCache
from personalab.harness.client import GenRequest, Harness, Sampling
from personalab.harness.models import MARKER, checkpoint_dir
from personalab.harness.registry import get_model, load_registry
from personalab.harness.server import serve

from .conftest import TEST_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture
def tiny_mask(tmp_path, monkeypatch, pulled_model):
    """A registry with the real base and a two-step shallow mask, and a private model cache beside the real base."""
    base = load_registry().get(TEST_MODEL)
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / TEST_MODEL).symlink_to(checkpoint_dir(base))
    registry = {"default": TEST_MODEL, "models": {
        TEST_MODEL: yaml.safe_load(open(load_registry().source))["models"][TEST_MODEL],
        "tiny-mask": {"kind": "trained", "base": TEST_MODEL, "recipe": "shallow", "seed": 0, "max_steps": 2,
                      "batch_size": 4, "lr": 1e-3, "max_model_len": 2048},
    }}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("PERSONALAB_MODELS", str(path))
    monkeypatch.setenv("PERSONALAB_CACHE", str(cache))
    return cache


def test_a_mask_trains_merges_serves_and_answers(tiny_mask, capsys):
    from personalab.train import pull

    first = pull("tiny-mask", progress=False)
    assert not first.already_present
    marker = json.loads((first.path / MARKER).read_text())
    assert marker["steps"] == 2 and marker["training_tokens"] > 0 and marker["final_loss"] > 0
    assert marker["data"]["split"] == "dev" and marker["software"]["trl"]
    assert (first.path / "model.safetensors").exists() and not list(first.path.glob("adapter_*"))
    assert "training tokens" in capsys.readouterr().out  # the log prints throughput and time
    assert pull("tiny-mask", progress=False).already_present  # an unchanged re-run never retrains

    spec = get_model("tiny-mask")
    assert spec.weight_id == first.sha256
    with serve("tiny-mask") as endpoint:
        harness = Harness(endpoint, cache=GenerationCache(tiny_mask / "c.sqlite"), progress=False)
        out = harness.generate([GenRequest.chat([{"role": "user", "content": "Say hello in one word."}],
                                                Sampling(temperature=0.0, max_tokens=8))])
    assert out[0].text.strip()
    assert out[0].provenance["model_id"] == "tiny-mask"
