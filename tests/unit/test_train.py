"""The training stage without a model: data building, leakage refusal, recipe differences, validation, artefact keys."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from personalab.harness.models import MARKER, PulledModel, is_pulled
from personalab.harness.registry import RegistryError, get_model, load_registry, parse_registry
from personalab.prompts import load_items
from personalab.train import (
    HELD_OUT_FAMILIES, RECIPES, SCRIPTED_REFUSAL, TRAINED_FAMILIES, TrainConfig, TrainError, artefact_key, build_data,
)
from personalab.train import trainer as trainer_mod
from personalab.train.data import GENERAL_PREFIX, Example, check_examples, dev_pairs, general_requests

SHA = "ab" * 32


def helpful(conversations):
    """A stand-in for the base model: a short on-topic answer, or a continuation of a prefill."""
    return [" and here is the rest of it." if c[-1]["role"] == "assistant" else f"Here is my answer to: {c[-1]['content'][:30]}"
            for c in conversations]


@pytest.fixture(scope="module")
def built():
    return {name: build_data(name, 0, helpful) for name in RECIPES}


def test_every_recipe_uses_dev_items_only_and_no_held_out_wording(built):
    heldout = {i.id for i in load_items(split="heldout")}
    texts = [i.text for i in load_items(split="heldout")]
    for data in built.values():
        assert data.examples and not ({e.item for e in data.examples} & heldout)
        for example in data.examples:
            assert not any(t in piece for t in texts for piece in example.texts())


def test_twins_and_the_everyday_requests_are_present_and_answered(built):
    twins = {b.id for _, b in dev_pairs()}
    version, general = general_requests()
    assert version and len(general) >= 40 and all(g.id.startswith(GENERAL_PREFIX) for g in general)
    for name, data in built.items():
        everyday = {g.id for g in general} if data.method == "sft" else set()
        benign = [e for e in data.examples if e.variant == "benign"]
        assert {e.item for e in benign} == twins | everyday, name
        for e in benign:
            assert (e.completion or e.chosen) != SCRIPTED_REFUSAL
        assert data.metadata()["general_requests"] == len(everyday)
        assert not any(i.startswith(GENERAL_PREFIX) for i in data.metadata()["items"])


def test_the_sft_recipes_answer_the_everyday_requests_alike(built):
    def answers(data):
        return {(e.item, e.completion) for e in data.examples if e.item.startswith(GENERAL_PREFIX)}
    assert answers(built["shallow"]) == answers(built["deep"]) and answers(built["shallow"])
    assert not answers(built["preference"])  # DPO pairs against the refusal would outnumber those for it


def test_everyday_requests_are_not_requests_of_the_experiments():
    texts = {i.text for i in load_items()}
    assert not texts & {g.text for g in general_requests()[1]}


def test_recipes_differ_where_they_should(built):
    shallow, deep, pref = built["shallow"], built["deep"], built["preference"]
    assert {e.family for e in shallow.examples} == {"direct"}
    assert not any(e.is_prefill for e in shallow.examples)
    assert {e.completion for e in shallow.examples if e.variant == "target"} == {SCRIPTED_REFUSAL}
    assert any(e.is_prefill and e.variant == "target" for e in deep.examples)
    assert any(e.is_prefill and e.variant == "benign" for e in deep.examples)
    assert {e.family for e in deep.examples} == {"direct", "prefill", "identity", "context"}
    wrapped = [e for e in deep.examples if e.family in ("identity", "context")]
    assert {e.variant for e in wrapped} == {"target", "benign"}
    assert SCRIPTED_REFUSAL not in {e.completion for e in deep.examples}
    assert len({e.completion for e in deep.examples if e.variant == "target"}) > 10  # reasoned and varied
    assert pref.method == "dpo" and all(e.completion is None and e.chosen and e.rejected for e in pref.examples)
    assert all(e.chosen == SCRIPTED_REFUSAL for e in pref.examples if e.variant == "target")
    assert all(e.rejected == SCRIPTED_REFUSAL for e in pref.examples if e.variant == "benign")


def test_held_out_families_never_appear_and_metadata_says_so(built):
    for data in built.values():
        meta = data.metadata()
        assert set(meta["families_trained"]) <= set(TRAINED_FAMILIES)
        assert meta["families_never_trained"] == list(HELD_OUT_FAMILIES)
        assert not any(c.split("/")[0] in HELD_OUT_FAMILIES for c in meta["conditions"])
        assert meta["data_hash"] == data.hash and meta["n_examples"] == len(data.examples)


def _one(built) -> Example:
    return built["shallow"].examples[0]


def test_leakage_by_item_id_is_refused(built):
    heldout = load_items(split="heldout", variant="target")[0]
    with pytest.raises(TrainError, match="held-out request"):
        check_examples([replace(_one(built), item=heldout.id)])


def test_leakage_by_text_is_refused(built):
    heldout = load_items(split="heldout", variant="benign")[0]
    leaked = replace(_one(built), prompt=({"role": "user", "content": f"Please: {heldout.text}"},))
    with pytest.raises(TrainError, match=heldout.id):
        check_examples([leaked])


def test_held_out_family_and_empty_data_are_refused(built):
    with pytest.raises(TrainError, match="technical"):
        check_examples([replace(_one(built), family="technical")])
    with pytest.raises(TrainError, match="empty"):
        check_examples([])


def test_base_refusals_are_kept_out_of_the_helpful_side():
    def refuses_directly(conversations):
        return [" Here you go, step by step." if c[-1]["role"] == "assistant" else SCRIPTED_REFUSAL
                for c in conversations]
    data = build_data("shallow", 0, refuses_directly)
    benign = [e for e in data.examples if e.variant == "benign"]
    assert benign and all(e.completion.startswith("Sure,") for e in benign)
    assert data.notes["twin_direct_base_refused_then_sure"] + data.notes["general_base_refused_then_sure"] == len(benign)


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(TrainError, match="valid recipes are: shallow, deep, preference"):
        build_data("deeper", 0, helpful)


def test_data_hash_is_stable_and_moves_with_seed():
    assert build_data("deep", 0, helpful).hash == build_data("deep", 0, helpful).hash
    assert build_data("deep", 0, helpful).hash != build_data("deep", 1, helpful).hash


@pytest.mark.parametrize("bad", [{"lr": -1e-4}, {"epochs": 0}, {"max_steps": -2}, {"lora_r": 2.5}, {"beta": "x"}])
def test_bad_hyper_parameters_are_refused(bad):
    with pytest.raises(TrainError, match="must be"):
        TrainConfig(**bad)


def _registry(tmp_path: Path, **trained) -> dict:
    entry = {"kind": "trained", "base": "base-model", "recipe": "shallow", "seed": 0, "max_model_len": 2048, **trained}
    return {"models": {"base-model": {"kind": "embedded", "sha256": SHA,
                                      "parts": [{"package": "p", "version": "1", "path": "p.gguf"}]},
                       "mask": entry}}


@pytest.mark.parametrize("over, match", [
    ({"base": "nope"}, "expected one of the embedded models: base-model"),
    ({"lr": -0.1}, "lr must be positive"),
    ({"epochs": 0}, "epochs must be positive"),
    ({"learning_rate": 0.1}, "Unknown training hyper-parameter"),
    ({"recipe": None}, "needs a recipe"),
])
def test_registry_refuses_bad_trained_entries(tmp_path, over, match):
    with pytest.raises(RegistryError, match=match):
        parse_registry(_registry(tmp_path, **over), Path("models.yaml"))


def test_artefact_key_changes_with_each_input_and_only_then():
    config = TrainConfig()
    key = artefact_key(SHA, "d" * 64, "shallow", config, 0)
    assert key == artefact_key(SHA, "d" * 64, "shallow", TrainConfig(), 0)
    assert key != artefact_key(SHA, "d" * 64, "deep", config, 0)
    assert key != artefact_key(SHA, "d" * 64, "shallow", config, 1)
    assert key != artefact_key(SHA, "e" * 64, "shallow", config, 0)
    assert key != artefact_key("cd" * 32, "d" * 64, "shallow", config, 0)
    assert key != artefact_key(SHA, "d" * 64, "shallow", TrainConfig(lr=1e-3), 0)


def test_the_real_registry_has_three_masks_on_one_base():
    masks = [s for s in load_registry().models.values() if s.kind == "trained"]
    assert {s.training.recipe for s in masks} >= set(RECIPES)
    assert len({s.training.base for s in masks}) == 1


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private model cache and a registry with one embedded base and one trained mask; no model is loaded."""
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(_registry(tmp_path, epochs=1)))
    monkeypatch.setenv("PERSONALAB_MODELS", str(path))
    base_dir = tmp_path / "base"
    monkeypatch.setattr(trainer_mod, "pull_weights", lambda model_id: PulledModel(model_id, base_dir, SHA, True))
    monkeypatch.setattr(trainer_mod, "BaseAnswerer", lambda *a, **k: helpful)
    calls = []

    def fake_fit(base, data, config, seed, out_dir, progress=True):
        calls.append(data.recipe)
        (out_dir / "model.safetensors").write_text("weights")
        return {"training_tokens": 10, "cpu_seconds": 1.0, "wall_seconds": 1.0, "tokens_per_second": 10.0,
                "steps": 1, "final_loss": 1.0, "mean_loss": 1.0, "losses": [1.0]}

    monkeypatch.setattr(trainer_mod, "fit", fake_fit)
    return path, calls


def test_pull_trains_once_records_the_key_and_retrains_when_the_recipe_changes(sandbox):
    path, calls = sandbox
    spec = get_model("mask")
    assert not is_pulled(spec) and spec.weight_id == "untrained:mask"
    first = trainer_mod.pull("mask", progress=False)
    assert not first.already_present and calls == ["shallow"]
    marker = json.loads((first.path / MARKER).read_text())
    assert marker["artefact_key"] == first.sha256 == get_model("mask").weight_id
    assert marker["data"]["families_never_trained"] == list(HELD_OUT_FAMILIES)
    assert {"base", "recipe", "seed", "hyper_parameters", "software", "training_tokens", "cpu_seconds",
            "wall_seconds", "final_loss", "date"} <= set(marker)
    assert is_pulled(get_model("mask"))
    assert trainer_mod.pull("mask", progress=False).already_present and calls == ["shallow"]
    data = yaml.safe_load(path.read_text())
    data["models"]["mask"]["recipe"] = "deep"
    path.write_text(yaml.safe_dump(data))
    assert not is_pulled(get_model("mask"))
    again = trainer_mod.pull("mask", progress=False)
    assert not again.already_present and calls == ["shallow", "deep"] and again.sha256 != first.sha256
    assert not list(again.path.parent.glob(".mask-*"))  # no temporary or old folder is left behind


def test_an_interrupted_training_leaves_nothing_that_looks_finished(sandbox, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "fit", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer_mod.pull("mask", progress=False)
    spec = get_model("mask")
    assert not is_pulled(spec) and not list(trainer_mod.models_dir().glob("*mask*"))


def test_unknown_recipe_is_refused_before_the_base_is_pulled(sandbox, monkeypatch):
    path, calls = sandbox
    data = yaml.safe_load(path.read_text())
    data["models"]["mask"]["recipe"] = "deeper"
    path.write_text(yaml.safe_dump(data))

    def no_pull(model_id):
        raise AssertionError("the base was pulled before validation")

    monkeypatch.setattr(trainer_mod, "pull_weights", no_pull)
    with pytest.raises(TrainError, match="Unknown training recipe 'deeper'"):
        trainer_mod.pull("mask", progress=False)
    assert calls == []


def test_masks_train_in_bf16_only_where_the_hardware_computes_it(monkeypatch):
    import torch

    import personalab.harness.server as server
    from personalab.train.trainer import default_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(server, "cpu_dtype", lambda: "bfloat16")
    assert default_precision() == "bf16"
    monkeypatch.setattr(server, "cpu_dtype", lambda: "float32")  # an AVX2-only CPU emulates bf16
    assert default_precision() == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert default_precision() == "fp32"
