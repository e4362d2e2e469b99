"""What the depth chapter quotes: where a fitted sweep curve passes a level, and an AUC with its interval, in words.

Book text lives here, apart from :mod:`personalab.experiments.depth`, so the analysis never formats prose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def crossing_phrase(fit_row: Mapping[str, Any], crossing: Mapping[str, Any] | None = None) -> str:
    """Where a fitted curve passes a level, in words that stay true on every rerun (from committed tables)."""
    status = str(fit_row["status"])
    if crossing is None or status.startswith("not identified"):
        text = status.replace("not identified: ", "no curve could be fitted: ")
        return text.replace("complied in", "compliance in").replace("refused in", "refusal in")
    level, k, lo, hi = (float(crossing[c]) for c in ("level", "k", "lo", "hi"))
    if not math.isfinite(k):
        return f"the fitted curve does not rise, so it has no {level:.0%} point"
    k_max = float(fit_row.get("k_max", math.inf))
    lo_text = f"{lo:.1f}" if lo >= 0 else "below 0"
    hi_text = f"{hi:.1f}" if hi <= k_max else f"beyond the sweep's {k_max:.0f}"
    where = f"k = {k:.1f} (95% bootstrap CI {lo_text} to {hi_text})"
    if k < 0:
        return f"the fitted curve is above {level:.0%} already at k = 0"
    if k > k_max:
        return f"the fitted curve passes {level:.0%} only beyond the sweep, at an extrapolated {where}"
    return f"the fitted curve passes {level:.0%} at {where}"


def auc_phrase(auc_value: float, lo: float, hi: float) -> str:
    """``"0.83 (95% bootstrap CI 0.71 to 0.93)"``, or a note when the AUC is undefined."""
    if not math.isfinite(auc_value):
        return "undefined (only one judged outcome occurred)"
    return f"{auc_value:.2f} (95% bootstrap CI {lo:.2f} to {hi:.2f})"


__all__ = ["auc_phrase", "crossing_phrase"]
