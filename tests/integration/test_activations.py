"""The activations stage on the real SmolLM2-135M checkpoint: read, fit a direction, steer, read back from the cache."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import TEST_MODEL

pytestmark = pytest.mark.slow


def test_a_direction_is_fitted_and_steered_on_the_served_checkpoint(pulled_model, integration_data):
    from personalab import activations as act
    from personalab.experiments import refusal_direction as rd

    model = act.load(TEST_MODEL)
    assert model.weight_id == pulled_model.sha256 and model.n_layers == 30
    dev, heldout = rd.pairs("dev", 6), rd.pairs("heldout", 2)
    direction = rd.fit_direction(model, dev, heldout, folds=2, progress=False)
    assert direction.vectors.shape == (30, model.hidden_size)
    assert 0 <= direction.layer < 24 and np.isfinite(direction.heldout).all()
    replies = rd.steered_replies(model, direction, heldout, max_new_tokens=4, progress=False)
    assert len(replies) == 2 * 2 + 2 * 3 and replies["reply"].str.len().gt(0).all()
    assert set(replies["condition"]) == {"none", "ablate", "add"}

    def no_generation(*_args, **_kwargs):
        raise AssertionError("a cached reply was generated again")

    model.model.generate = no_generation
    again = rd.steered_replies(model, direction, heldout, max_new_tokens=4, progress=False)
    assert list(again["reply"]) == list(replies["reply"])
    reads = list((integration_data / "activations").glob("*.npy"))
    assert len(reads) == 4  # dev targets, dev twins, held-out targets, held-out twins


def test_a_capped_direction_still_generates_and_its_hook_is_removed(pulled_model, integration_data):
    import torch

    from personalab import activations as act
    from personalab.experiments import capping as cp
    from personalab.experiments import refusal_direction as rd

    model = act.load(TEST_MODEL)
    dev, heldout = rd.pairs("dev", 6), rd.pairs("heldout", 2)
    direction = rd.fit_direction(model, dev, heldout, folds=2, progress=False)
    dev_targets = act.last_position(model, [rd.direct(t) for t, _ in dev], progress=False)
    cap = cp.calibrate("refusal", direction.vector, direction.layer, dev_targets, 100)  # above every twin: it binds
    twins = [rd.direct(b) for _, b in heldout]
    enc = model.tokenizer([model.prompt_text(c) for c in twins], return_tensors="pt", padding=True,
                          add_special_tokens=False)
    seen = []
    with act.steering(model, cap.intervention()):
        probe = model.layers[cap.layer].register_forward_hook(
            lambda _m, _i, out: seen.append(act.collect.block_output(out)[:, -1].detach()))
        with torch.inference_mode():
            model.model(**enc)
        probe.remove()
    assert (seen[0].numpy() @ cap.direction >= cap.threshold - 1e-3).all()  # the decision position sits on the floor
    replies = act.generate(model, twins, cap.intervention(), max_new_tokens=4, progress=False)
    assert len(replies) == 2 and all(isinstance(r, str) and r for r in replies)
    assert act.seconds_per_token(model, twins, cap.intervention(), max_new_tokens=2) > 0
    assert all(not layer._forward_hooks and not layer._forward_pre_hooks for layer in model.layers)
