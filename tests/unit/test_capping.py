"""Activation capping: the cap's maths on small tensors, the checks before any work and the experiment's tables
(calibration, effects, compute cost); its hook on a tiny random Llama is tested with the others in test_activations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab import activations as act
from personalab.experiments import capping as cp


# -- the cap's maths --------------------------------------------------------------------------------------------------
def test_a_floor_lifts_projections_below_it_to_it_and_leaves_the_rest_exactly_unchanged():
    import torch

    r = torch.tensor([0.6, 0.8, 0.0])
    h = torch.tensor([[1.0, 2.0, 3.0],     # h.r = 2.2: above the floor
                      [0.0, 0.0, 5.0],     # h.r = 0.0: below
                      [-3.0, 1.0, 0.5],    # h.r = -1.0: below
                      [3.0, -1.0, 0.0]])   # h.r = 1.0: exactly at the floor
    out = act.capped(h, r, threshold=1.0)
    assert torch.equal(out[0], h[0]) and torch.equal(out[3], h[3])  # bit for bit
    np.testing.assert_allclose((out @ r).numpy(), [2.2, 1.0, 1.0, 1.0], atol=1e-6)
    orth = out - (out @ r).unsqueeze(-1) * r  # the component off the direction is never touched
    np.testing.assert_allclose(orth.numpy(), (h - (h @ r).unsqueeze(-1) * r).numpy(), atol=1e-6)
    assert torch.equal(act.capped(out, r, 1.0), out)  # idempotent


def test_a_ceiling_is_the_mirror_and_batches_of_positions_are_capped_vector_by_vector():
    import torch

    r = torch.tensor([0.0, 1.0])
    h = torch.tensor([[[4.0, 3.0], [1.0, -2.0]], [[0.0, 0.5], [2.0, 9.0]]])  # (batch, positions, hidden)
    out = act.capped(h, r, threshold=1.0, ceiling=True)
    assert out.shape == h.shape
    np.testing.assert_allclose(out[..., 1].numpy(), [[1.0, -2.0], [0.5, 1.0]])
    np.testing.assert_array_equal(out[..., 0].numpy(), h[..., 0].numpy())
    assert torch.equal(out[0, 1], h[0, 1]) and torch.equal(out[1, 0], h[1, 0])


# -- the experiment's checks and tables -------------------------------------------------------------------------------
def test_wrappers_are_checked_before_any_work():
    assert cp.request_wrappers(["technical/code", "direct/plain", "technical/code"]) == ["direct/plain",
                                                                                         "technical/code"]
    with pytest.raises(act.ActivationsError, match="at least one attack wrapper"):
        cp.request_wrappers(["direct/plain"])
    with pytest.raises(act.ActivationsError, match="at least one attack wrapper"):
        cp.request_wrappers([])
    with pytest.raises(act.ActivationsError, match="prefill wrappers"):
        cp.request_wrappers(["prefill/sure"])
    with pytest.raises(KeyError):
        cp.request_wrappers(["technical/nonsense"])


def test_an_empty_prompt_set_is_refused_before_any_read():
    from personalab.experiments import refusal_direction as rd

    with pytest.raises(act.ActivationsError, match="prompt set is empty"):
        cp.fit_caps(None, [], rd.pairs("heldout", 2), n_dev=2, percentile=25)
    with pytest.raises(act.ActivationsError, match="prompt set is empty"):
        cp.calibrate("axis", np.ones(4), 0, np.zeros((0, 1, 4)), 25)


def test_calibration_is_a_percentile_of_the_dev_projections_on_the_unit_direction():
    acts = np.zeros((5, 2, 3))
    acts[:, 1, 0] = [0.0, 1.0, 2.0, 3.0, 4.0]
    cap = cp.calibrate("refusal", np.array([2.0, 0.0, 0.0]), 1, acts, 25)
    assert cap.threshold == pytest.approx(1.0) and cap.n_calibration == 5 and cap.layer == 1
    np.testing.assert_allclose(cap.direction, [1.0, 0.0, 0.0])
    assert cap.intervention().kind == "cap" and cap.intervention().threshold == pytest.approx(1.0)
    with pytest.raises(ValueError, match="percentile"):
        cp.calibrate("refusal", np.ones(3), 1, acts, 101)


def judged_frame() -> pd.DataFrame:
    """Ten request pairs: targets under direct/plain and one attack, twins direct, with no cap and two caps."""
    rows = []
    for i in range(10):
        pair = f"p{i}"
        for condition, refuse_attacked, twin_refused in (("none", False, False), ("axis", False, False),
                                                         ("refusal", i < 6, i < 3)):
            rows += [{"model": "m", "item": f"{pair}-t", "pair": pair, "variant": "target", "wrapper": "direct/plain",
                      "condition": condition, "refused": i < 5, "competent": i >= 5},
                     {"model": "m", "item": f"{pair}-t", "pair": pair, "variant": "target",
                      "wrapper": "technical/code", "condition": condition, "refused": refuse_attacked,
                      "competent": not refuse_attacked},
                     {"model": "m", "item": f"{pair}-b", "pair": pair, "variant": "benign", "wrapper": "direct/plain",
                      "condition": condition, "refused": twin_refused, "competent": not twin_refused}]
    return pd.DataFrame(rows)


def test_effects_pair_each_cap_with_no_cap_by_scope():
    e = cp.effects(judged_frame(), n_boot=300, seed=0).set_index(["model", "cap", "scope", "outcome"])
    assert set(e.index.get_level_values("scope")) == {"direct/plain", "technical/code", cp.POOLED, "twins"}
    attacked = e.loc[("m", "refusal", cp.POOLED, "refused")]
    assert attacked["difference"] == pytest.approx(0.6) and attacked["lo"] > 0 and attacked["n_pairs"] == 10
    assert e.loc[("m", "refusal", "twins", "competent"), "difference"] == pytest.approx(-0.3)
    assert e.loc[("m", "axis", cp.POOLED, "refused"), "difference"] == 0
    assert e.loc[("m", "refusal", "direct/plain", "refused"), "difference"] == 0


def test_cost_summary_divides_each_repeat_by_its_own_uncapped_run():
    timings = pd.DataFrame({"model": "m", "repeat": [0, 0, 1, 1, 2, 2], "condition": ["none", "axis"] * 3,
                            "s_per_token": [1.0, 1.1, 2.0, 2.0, 1.0, 1.3]})
    s = cp.cost_summary(timings).iloc[0]
    assert s["cap"] == "axis" and s["n_repeats"] == 3
    assert s["ratio"] == pytest.approx(1.1) and s["ratio_min"] == pytest.approx(1.0)
    assert s["ratio_max"] == pytest.approx(1.3) and s["extra_s_per_token"] == pytest.approx(0.1)
