"""The activations stage: the direction maths, the hooks on a tiny random Llama, and the checks before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab import activations as act
from personalab.experiments import refusal_direction as rd


# -- maths ------------------------------------------------------------------------------------------------------------
def test_diff_of_means_and_projection_out():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(10, 3, 4)) + np.array([0, 0, 2.0, 0])
    twins = rng.normal(size=(10, 3, 4))
    r = act.diff_of_means(targets, twins)
    assert r.shape == (3, 4)
    np.testing.assert_allclose(r, targets.mean(0) - twins.mean(0))
    h = rng.normal(size=(5, 4))
    left = act.project_out(h, r[1])
    np.testing.assert_allclose(left @ act.unit(r[1]), 0, atol=1e-12)
    np.testing.assert_allclose(act.project_out(left, r[1]), left)  # idempotent
    with pytest.raises(ValueError, match="zero vector"):
        act.unit(np.zeros(4))
    with pytest.raises(ValueError, match="differ in layers"):
        act.diff_of_means(targets, twins[:, :2])


def test_auc_counts_ties_as_half():
    assert act.auc([2, 3], [0, 1]) == 1.0
    assert act.auc([0, 1], [2, 3]) == 0.0
    assert act.auc([1], [1]) == 0.5
    with pytest.raises(ValueError):
        act.auc([], [1])


def test_cross_fitted_separation_finds_the_informative_layer_and_choose_layer_skips_the_last():
    rng = np.random.default_rng(1)
    n, layers, hidden = 20, 5, 6
    twins = rng.normal(size=(n, layers, hidden))
    targets = rng.normal(size=(n, layers, hidden))
    targets[:, 2, 0] += 3.0  # only layer 2 carries the difference
    targets[:, 4, 1] += 5.0  # the last layer carries more, but is excluded from the choice
    sep = act.cross_fitted_separation(targets, twins, folds=2, seed=0)
    assert sep[2] > 0.9 and sep[0] < 0.8
    assert act.choose_layer(sep, max_fraction=0.8) == 2
    assert act.choose_layer(sep, max_fraction=1.0) in (2, 4)
    with pytest.raises(ValueError, match="pairs"):
        act.cross_fitted_separation(targets, twins[:-1])
    with pytest.raises(ValueError, match="folds"):
        act.cross_fitted_separation(targets, twins, folds=1)


def test_cosine():
    assert act.cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert act.cosine(np.array([1.0, 0]), np.array([0, -3.0])) == pytest.approx(0.0)


# -- hooks on a tiny random model -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    return act.LocalModel("tiny", "tiny-weights", None, model, None)


def _block_outputs(tiny, intervention):
    """Every block's output as the next block (or the final norm) receives it, with ``intervention`` in place.

    The probes are registered after the steering hooks, so they see what those hooks returned.
    """
    import torch

    seen = []
    with act.steering(tiny, intervention):
        hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.append(act.collect.block_output(out).detach()))
                 for layer in tiny.layers]
        try:
            with torch.inference_mode():
                tiny.model(input_ids=torch.tensor([[1, 5, 9, 3]]))
        finally:
            for h in hooks:
                h.remove()
    return seen


def test_ablation_leaves_no_component_along_the_direction_in_any_block(tiny):
    import torch

    r = np.random.default_rng(2).normal(size=16)
    unit = torch.tensor(r / np.linalg.norm(r), dtype=torch.float32)
    plain = _block_outputs(tiny, act.Intervention())
    ablated = _block_outputs(tiny, act.Intervention.ablate(r))
    assert len(ablated) == 3
    assert any(not torch.allclose(p @ unit, torch.zeros(()), atol=1e-3) for p in plain)
    for h in ablated:
        assert torch.allclose(h @ unit, torch.zeros(()), atol=1e-5)


def test_addition_shifts_one_block_by_the_vector(tiny):
    v = np.random.default_rng(3).normal(size=16)
    base = _block_outputs(tiny, act.Intervention())
    moved = _block_outputs(tiny, act.Intervention.add(v, layer=1, scale=2.0))
    np.testing.assert_allclose(moved[0].numpy(), base[0].numpy(), atol=1e-6)  # block 0 untouched
    shift = (moved[1] - base[1]).numpy()  # block 1's output: shifted by 2 v at every position
    np.testing.assert_allclose(shift, np.broadcast_to(2.0 * v, shift.shape), atol=1e-5)
    assert not np.allclose(moved[2].numpy(), base[2].numpy())  # and the next block sees it


def test_a_cap_floors_the_newest_position_of_one_block_and_leaves_the_rest(tiny):
    r = np.random.default_rng(4).normal(size=16)
    unit = r / np.linalg.norm(r)
    plain = _block_outputs(tiny, act.Intervention())
    floor = float(plain[1][0, -1].numpy() @ unit) + 1.0  # above the last position's projection: the floor binds
    capped = _block_outputs(tiny, act.Intervention.cap(r, layer=1, threshold=floor))
    np.testing.assert_allclose(capped[0].numpy(), plain[0].numpy(), atol=1e-6)  # block 0 untouched
    np.testing.assert_allclose(capped[1][:, :-1].numpy(), plain[1][:, :-1].numpy(), atol=1e-6)  # earlier positions
    assert float(capped[1][0, -1].numpy() @ unit) == pytest.approx(floor, abs=1e-4)
    assert not np.allclose(capped[2].numpy(), plain[2].numpy())  # and the next block sees it
    unbound = _block_outputs(tiny, act.Intervention.cap(r, layer=1, threshold=-1e6))  # nothing below: no change
    for a, b in zip(unbound, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert all(not layer._forward_hooks for layer in tiny.layers)


def test_cap_interventions_are_checked_before_any_work(tiny):
    with pytest.raises(act.ActivationsError, match="needs the layer"):
        act.Intervention("cap", (1.0,) * 16, threshold=0.0)
    with pytest.raises(act.ActivationsError, match="finite threshold"):
        act.Intervention("cap", (1.0,) * 16, layer=0)
    with pytest.raises(act.ActivationsError, match="finite threshold"):
        act.Intervention.cap(np.ones(16), layer=0, threshold=float("nan"))
    with pytest.raises(act.ActivationsError, match="layers 0 to 2"):
        with act.steering(tiny, act.Intervention.cap(np.ones(16), layer=3, threshold=0.0)):
            pass
    floor, ceiling = act.Intervention.cap(np.ones(16), 1, 0.5), act.Intervention.cap(np.ones(16), 1, 0.5, ceiling=True)
    assert len({floor.key(), ceiling.key(), act.Intervention.cap(np.ones(16), 1, 0.6).key(),
                act.Intervention.add(np.ones(16), 1).key()}) == 4


def test_interventions_are_checked_before_any_work(tiny):
    with pytest.raises(act.ActivationsError, match="needs a direction"):
        act.Intervention("ablate")
    with pytest.raises(act.ActivationsError, match="not one of"):
        act.Intervention("clamp", (1.0,))
    with pytest.raises(act.ActivationsError, match="hidden size 16"):
        with act.steering(tiny, act.Intervention.ablate(np.ones(5))):
            pass
    with pytest.raises(act.ActivationsError, match="layers 0 to 2"):
        with act.steering(tiny, act.Intervention.add(np.ones(16), layer=3)):
            pass
    assert act.Intervention.ablate(np.ones(16)).key() != act.Intervention.add(np.ones(16), 0).key()


def test_only_local_pulled_models_can_be_opened(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path))
    with pytest.raises(act.ActivationsError, match="`personalab models pull smollm2-135m-instruct` pulls it"):
        act.check_local("smollm2-135m-instruct")
    with pytest.raises(act.ActivationsError, match="trains it"):
        act.check_local("smollm2-135m-mask-deep")


def test_an_empty_prompt_set_is_refused(tiny):
    with pytest.raises(act.ActivationsError, match="prompt set is empty"):
        act.last_position(tiny, [])
    with pytest.raises(act.ActivationsError, match="prompt set is empty"):
        act.seconds_per_token(tiny, [], act.Intervention())


# -- the experiment's tables ------------------------------------------------------------------------------------------
def judged_frame() -> pd.DataFrame:
    rows = []
    for model, ablated_refusal in (("mask", 0.2), ("base", 0.0)):
        for i in range(10):
            pair = f"p{i}"
            refuse_none = model == "mask" and i < 8
            rows += [
                {"model": model, "item": f"{pair}-t", "pair": pair, "variant": "target", "condition": "none",
                 "refused": refuse_none, "complied": not refuse_none},
                {"model": model, "item": f"{pair}-t", "pair": pair, "variant": "target", "condition": "ablate",
                 "refused": i < round(ablated_refusal * 10), "complied": i >= round(ablated_refusal * 10)},
                {"model": model, "item": f"{pair}-b", "pair": pair, "variant": "benign", "condition": "none",
                 "refused": False, "complied": True},
                {"model": model, "item": f"{pair}-b", "pair": pair, "variant": "benign", "condition": "ablate",
                 "refused": False, "complied": i != 0},
                {"model": model, "item": f"{pair}-b", "pair": pair, "variant": "benign", "condition": "add",
                 "refused": i < 5, "complied": i >= 5},
            ]
    out = pd.DataFrame(rows)
    return out.assign(competent=out["complied"] & (out["item"] != "p1-b"))  # one twin's compliance is off topic


def test_effects_survival_and_rates():
    judged = judged_frame()
    e = rd.effects(judged, n_boot=300, seed=0).set_index(["model", "effect"])
    assert e.loc[("mask", "ablation lowers target refusal"), "difference"] == pytest.approx(-0.6)
    assert e.loc[("mask", "ablation lowers target refusal"), "hi"] < 0
    assert e.loc[("mask", "addition induces twin refusal"), "difference"] == pytest.approx(0.5)
    assert e.loc[("base", "ablation changes on-topic twin compliance"), "difference"] == pytest.approx(-0.1)
    assert e.loc[("mask", "ablation raises on-topic target compliance"), "difference"] == pytest.approx(0.6)
    s = rd.survival(judged).set_index("model")
    assert (s.loc["mask", "refused_without"], s.loc["mask", "still_refused_ablated"]) == (8, 2)
    assert s.loc["base", "refused_without"] == 0
    r = rd.rates(judged).set_index(["model", "variant", "condition"])
    assert r.loc[("mask", "target", "none"), "rate"] == pytest.approx(0.8)
    assert r.loc[("mask", "benign", "add"), "rate_comply"] == pytest.approx(0.5)
    assert r.loc[("mask", "benign", "none"), "rate_competent"] == pytest.approx(0.9)


def test_cosine_table_is_symmetric_with_ones_on_the_diagonal():
    rng = np.random.default_rng(4)
    dirs = [rd.Direction(m, m, rng.normal(size=(3, 5)), np.full(3, 0.7), np.full(3, 0.7), 1) for m in "abc"]
    cos = rd.cosine_table(dirs)
    np.testing.assert_allclose(np.diag(cos.to_numpy()), 1.0)
    np.testing.assert_allclose(cos.to_numpy(), cos.to_numpy().T)


def test_control_cosines_compare_the_refusal_direction_with_a_topic_direction():
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(3, 5))
    dirs = [rd.Direction(m, m, shared + 0.01 * rng.normal(size=(3, 5)), np.full(3, 0.7), np.full(3, 0.7), 1,
                         extra={"control": rng.normal(size=(3, 5)), "control_category": "fake_reviews"})
            for m in "ab"]
    t = rd.control_cosines(dirs).set_index("model")
    assert t.loc["a", "refusal_cosine"] == pytest.approx(1.0) and t.loc["a", "control_cosine"] == pytest.approx(1.0)
    assert t.loc["b", "refusal_cosine"] > 0.99 and abs(t.loc["b", "control_cosine"]) < 0.99
    assert set(t["layer"]) == {1}


def test_relevance_marks_off_topic_compliance_as_not_competent(monkeypatch):
    import personalab.judges.embedding as embedding

    vectors = {"on": [1.0, 0.0], "off": [0.0, 1.0]}
    monkeypatch.setattr(embedding, "embed", lambda texts: np.array([vectors.get(t, [1.0, 0.1]) for t in texts]))
    judged = pd.DataFrame({"item": ["academic_dishonesty-h-03-t"] * 4, "condition": ["none", "none", "ablate", "ablate"],
                           "reply": ["on", "on", "on", "off"], "complied": [True, False, True, True]})
    from personalab.prompts import load_items

    judged["item"] = load_items(split="heldout", variant="target")[0].id
    out = rd.add_relevance(judged, quantile=0.1)
    assert list(out["on_topic"]) == [True, True, True, False]
    assert list(out["competent"]) == [True, False, True, False]
