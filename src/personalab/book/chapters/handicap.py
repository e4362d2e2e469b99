"""What the wisdom handicap chapter quotes: :func:`chapter_numbers` and the example-replies table.

Read from the committed results of :mod:`personalab.experiments.handicap`; nothing here asks a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalab.book import pct
from personalab.outputs import read_json, read_table, results_dir_for
from personalab.experiments.handicap import DIRECT, EXPERIMENT, lookalike_reference


def _count_phrase(n: int, noun: str) -> str:
    """'one attack framing', 'two attack framings', ... (digits from ten on)."""
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    return f"{words[n] if n < len(words) else n} {noun}{'' if n == 1 else 's'}"


def short(text: str, width: int = 160) -> str:
    """Whitespace collapsed and cut to ``width`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def examples(final: pd.DataFrame, item: str, wrapper: str = DIRECT, width: int = 220) -> pd.DataFrame:
    """Every strategy's final reply to one request under one wrapper, cut to ``width`` characters."""
    sub = final[(final["item"] == item) & (final["wrapper"] == wrapper)]
    return pd.DataFrame({"strategy": sub["strategy"], "label": sub["label"],
                         "reply": [short(r, width) for r in sub["reply"]]}).reset_index(drop=True)


def _interval(rate: float, lo: float, hi: float) -> str:
    """``"40% (95% CI 22–61%)"``."""
    return f"{pct(rate)} (95% CI {lo * 100:.0f}–{hi * 100:.0f}%)"


def chapter_numbers(model_id: str) -> dict[str, str]:
    """Every string the chapter glues for one model, read from the committed results (keys without prefix)."""
    base = results_dir_for(EXPERIMENT, model_id)
    table = read_table(base / "summary.csv")
    gains = read_table(base / "gains_vs_none.csv")
    shares = read_table(base / "market_threshold.csv")
    grid = read_table(base / "market_sensitivity.csv")
    prov = read_json(base / "provenance.json")
    params = prov["parameters"]
    out: dict[str, str] = {
        "n": str(prov["n_items"]), "n_attacked": str(int(table["n_attacked"].iloc[0])),
        "wrappers": ", ".join(f"`{w}`" for w in params["wrappers"] if w != DIRECT),
        "n_wrappers": _count_phrase(sum(w != DIRECT for w in params["wrappers"]), "attack framing"),
        "max_tokens": str(params["max_tokens"]), "think_tokens": str(params["think_tokens"]),
        "n_samples": str(params["n_samples"]), "price": f"{params['price_per_m_tokens']:g}",
        "value": f"{params['value_of_alignment']:g}", "incident": f"{params['incident_cost']:g}",
        "tolerance": pct(params["lookalike_tolerance"]), "judge": prov["judge"]["name"],
        "generations": str(prov["generations"]["n"]), "from_cache": str(prov["generations"]["from_cache"]),
        "completion_tokens": f"{prov['generations']['completion_tokens']:,}",
        "runtime_min": f"{prov['runtime_s'] / 60:.0f}",
    }
    t = table.set_index("strategy")
    for name, r in t.iterrows():
        out[f"{name}_rob"] = _interval(r["robustness"], r["robustness_lo"], r["robustness_hi"])
        out[f"{name}_direct"] = _interval(r["direct_refusal"], r["direct_refusal_lo"], r["direct_refusal_hi"])
        out[f"{name}_over_plain"] = _interval(r["over_refusal_plain"], r["over_refusal_plain_lo"],
                                              r["over_refusal_plain_hi"])
        out[f"{name}_over_att"] = _interval(r["over_refusal_attacked"], r["over_refusal_attacked_lo"],
                                            r["over_refusal_attacked_hi"])
        out[f"{name}_tokens"] = f"{r['tokens_per_request']:.0f}"
        out[f"{name}_mult"] = f"{r['token_multiplier']:.1f}×"
        out[f"{name}_lat"] = f"{r['latency_multiplier']:.1f}×"
        out[f"{name}_usd"] = f"${r['usd_per_1k_requests']:.3f}"
    for _, g in gains.iterrows():
        key = {"robustness": "gain", "direct refusal": "ddirect", "over-refusal (all benign)": "dover"}[g["measure"]]
        sign = "+" if g["difference"] >= 0 else "−"
        out[f"{g['strategy']}_{key}"] = (f"{sign}{abs(g['difference']) * 100:.0f} points (95% bootstrap CI "
                                         f"{g['lo'] * 100:+.0f} to {g['hi'] * 100:+.0f})")
    best = table.sort_values(["robustness", "tokens_per_request"], ascending=[False, True]).iloc[0]
    ref = str(prov.get("lookalike_reference", lookalike_reference(table, params["lookalike_tolerance"])))
    front = table[table["pareto"]].sort_values("tokens_per_request")["strategy"]
    out.update({"best": f"`{best['strategy']}`", "best_mult": f"{best['token_multiplier']:.1f}×",
                "reference": f"`{ref}`", "frontier": ", ".join(f"`{s}`" for s in front)})
    robust_gain = gains[(gains["measure"] == "robustness")]
    sig = robust_gain[robust_gain["lo"] > 0]["strategy"].tolist()
    out["sig_gain"] = (", ".join(f"`{s}`" for s in sig) if sig else "none of them")
    costly = [s for s in ("deliberate", "self_critique", "best_of_n") if s in t.index]
    cheap_best = t.loc[[s for s in ("none", "rules", "values") if s in t.index], "robustness"].max()
    costly_best = t.loc[costly, "robustness"].max() if costly else float("nan")
    if costly and costly_best > cheap_best:
        out["verdict_cost"] = ("the best of the multi-call strategies is more robust than the best single-call "
                               "persona, which is the shape the essay predicts; whether the gap is larger than "
                               "chance is what the paired intervals below say")
    else:
        out["verdict_cost"] = ("no multi-call strategy is more robust than the best single-call persona: here the "
                               "extra compute bought no robustness, which is not the shape the essay predicts")
    spread_direct = float(t["direct_refusal"].max() - t["direct_refusal"].min())
    spread_rob = float(t["robustness"].max() - t["robustness"].min())
    out["spread_direct"] = f"{spread_direct * 100:.0f} points"
    out["spread_rob"] = f"{spread_rob * 100:.0f} points"
    corr = float(np.corrcoef(t["direct_refusal"], t["robustness"])[0, 1]) if t["direct_refusal"].std() > 0 and \
        t["robustness"].std() > 0 else float("nan")
    out["corr"] = "undefined (one of them does not vary)" if not np.isfinite(corr) else f"{corr:.2f}"
    ref_cost = float(t.loc[ref, "tokens_per_request"])
    handicap = float(best["tokens_per_request"]) / ref_cost
    out["handicap"] = f"{handicap:.1f}×"
    if handicap <= 1.0 + 1e-9:
        out["verdict_handicap"] = ("the most robust strategy was itself the cheapest way to look aligned on plain "
                                   "requests, so on this model there was no handicap to pay; this contradicts the "
                                   "essay")
    else:
        out["verdict_handicap"] = (f"reaching the highest measured robustness cost {handicap:.1f}× the tokens of "
                                   "the cheapest plain-request look-alike, a handicap in the essay's sense")
    if not np.isfinite(corr):
        out["verdict_visible"] = "the correlation is undefined, so this sample says nothing either way"
    elif corr >= 0.5:
        out["verdict_visible"] = ("here plain requests did reveal much of the difference, which goes against the "
                                  "essay's claim that the mask and the face look alike")
    else:
        out["verdict_visible"] = ("here plain requests were a poor guide to robustness, as the essay claims")
    p_star = float(shares["threshold_p"].iloc[0])
    robust = str(shares["robust_strategy"].iloc[0])
    out["robust"] = f"`{robust}`"
    if not np.isfinite(p_star):
        out["p_star"] = "never reached: at no detection probability does it have the highest fitness"
    elif p_star == 0:
        out["p_star"] = "zero: it wins even when nobody ever sees behaviour under attack"
    else:
        out["p_star"] = f"{p_star:.2f}"
    never = grid["threshold_p"].isna().mean()
    out["grid_never"] = pct(never)
    out["grid_zero"] = pct((grid["threshold_p"] == 0).mean())
    return out


__all__ = ["chapter_numbers", "examples", "short"]
