"""The persona axis: principal component of persona means, its sign, slippage by wrapper, rank correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalab.experiments import persona_axis as pa


def test_axis_is_the_main_direction_of_persona_means_and_points_at_the_assistant():
    rng = np.random.default_rng(0)
    direction = np.zeros(6)
    direction[2] = 1.0
    spread = {"assistant": 3.0, "mentor": 2.0, "fixer": -2.0, "trickster": -3.0}
    means = {k: np.stack([v * direction + 0.01 * rng.normal(size=6)] * 2) for k, v in spread.items()}  # 2 layers
    axis, share = pa.persona_axis(means)
    assert axis.shape == (2, 6) and share.shape == (2,)
    assert axis[0, 2] == pytest.approx(1.0, abs=1e-3) and axis[1, 2] > 0.99  # positive towards the Assistant
    assert share[0] > 0.99
    flipped = {k: -v for k, v in means.items()}
    assert pa.persona_axis(flipped)[0][0, 2] == pytest.approx(-1.0, abs=1e-3)
    with pytest.raises(ValueError, match="assistant"):
        pa.persona_axis({"mentor": means["mentor"], "fixer": means["fixer"], "clerk": means["fixer"]})


def test_slippage_by_wrapper_and_the_rank_correlation():
    rows = []
    for wrapper, refused in (("direct/plain", 10), ("identity/a", 8), ("context/b", 5), ("technical/c", 2)):
        rows += [{"wrapper": wrapper, "variant": "target", "item": f"t{i}", "refused": i < refused} for i in range(10)]
        rows += [{"wrapper": wrapper, "variant": "benign", "item": f"b{i}", "refused": True} for i in range(10)]
    slip = pa.slippage_by_wrapper(pd.DataFrame(rows)).set_index("wrapper")  # twins ignored
    assert slip.loc["technical/c", "slippage"] == pytest.approx(0.8)
    assert slip.loc["direct/plain", "slippage"] == 0
    # An incomplete design: a wrapper asked of some requests is set against direct/plain on those requests only.
    for wrapper, item, refused in (("value_conflict/d", "t0", False), ("value_conflict/d", "t1", True),
                                   ("direct/plain", "t_only_direct", False)):
        rows.append({"wrapper": wrapper, "variant": "target", "item": item, "refused": refused})
    slip = pa.slippage_by_wrapper(pd.DataFrame(rows)).set_index("wrapper")
    assert slip.loc["value_conflict/d", "slippage"] == pytest.approx(0.5)  # t0 and t1 were refused directly
    assert slip.loc["technical/c", "slippage"] == pytest.approx(0.8)  # the extra unrefused direct request is not its
    proj = pd.DataFrame({"wrapper": ["direct/plain", "identity/a", "context/b", "technical/c"] * 2,
                         "projection": [1.0, 0.8, 0.5, 0.1] * 2})
    table, rho = pa.shift_vs_slippage(proj, slip.reset_index(), n_boot=200, seed=0)
    assert list(table["wrapper"]) == ["identity/a", "context/b", "technical/c"]
    assert list(table["family"]) == ["identity", "context", "technical"]
    assert rho["rho"] == pytest.approx(-1.0) and rho["n_wrappers"] == 3
    assert pa.spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) != pa.spearman(np.array([1, 1, 1]),
                                                                                  np.array([1, 2, 3]))  # nan
    with pytest.raises(ValueError, match="direct/plain"):
        pa.slippage_by_wrapper(pd.DataFrame(rows).query("wrapper != 'direct/plain'"))
