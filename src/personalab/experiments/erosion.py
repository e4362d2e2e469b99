"""Erosion: does refusal wear away under many in-context shots or many escalating turns, beyond more tries?

Three measurements share this module so that the notebook stays a few calls long:

- many-shot: refusal against the number ``n`` of faux compliant exchanges placed before the request
  (:func:`many_shot_plan`, :func:`many_shot_rates`, :func:`fit_many_shot_power_law`);
- escalation: scripted conversations that start benign and end on the target request, generated turn by
  turn with the model's own replies fed back (:func:`escalate`), scored as time to the first compliant reply
  to an escalated request (:func:`first_events`, :func:`survival_curve`);
- the control: best-of-N resampling of the direct request with the same number of tries (:func:`best_of_n`).

Its figures are in :mod:`personalab.book.plots.erosion`, the numbers its chapter quotes in
:mod:`personalab.book.chapters.erosion`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import CensoredData, ecdf

from personalab.attacks import ContextTooLong, escalation_turns, many_shot
from personalab.harness.client import Sampling
from personalab.prompts import Item
from personalab.stats import bootstrap_ci, bootstrap_difference, power_law_fit, rate_table, wilson_interval

ESCALATION = "escalation (greedy, turn by turn)"
BEST_OF_N = "best-of-N (direct request)"


# ------------------------------------------------------------------------------------------------ many-shot


def load_tokenizer(model_id: str) -> Any:
    """The model's own tokenizer, loaded offline from its converted checkpoint."""
    from transformers import AutoTokenizer

    from personalab.harness.models import checkpoint_dir
    from personalab.harness.registry import get_model

    return AutoTokenizer.from_pretrained(checkpoint_dir(get_model(model_id)), local_files_only=True)


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """A ``count_tokens`` function for :func:`personalab.attacks.many_shot` (no special tokens)."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def context_budget(max_model_len: int, max_tokens: int, margin: int) -> int:
    """Prompt tokens a many-shot prompt may use: context length minus the reply and a chat-template margin."""
    budget = max_model_len - max_tokens - margin
    if budget <= 0:
        raise ValueError(f"No room for a prompt: {max_model_len} - {max_tokens} - {margin} <= 0.")
    return budget


def many_shot_plan(items: Sequence[Item], shots: Sequence[int], count_tokens: Callable[[str], int] | None,
                   max_context_tokens: int | None) -> tuple[list[list[dict[str, str]]], list[dict[str, Any]],
                                                             pd.DataFrame]:
    """Conversations and meta rows for every item at every ``n`` that fits, and a table of the ``n`` skipped.

    An ``n`` is skipped for all items as soon as one item's prompt is too long, so every kept ``n`` is
    measured on the same items. The skipped table has ``shots``, ``prompt_tokens`` (the longest prompt that
    was counted) and ``limit``.
    """
    conversations, meta, skipped = [], [], []
    for n in shots:
        built = []
        try:
            for item in items:
                built.append((item, many_shot(item, n, count_tokens=count_tokens,
                                              max_context_tokens=max_context_tokens)))
        except ContextTooLong as err:
            skipped.append({"shots": n, "prompt_tokens": err.tokens, "limit": err.limit})
            continue
        for item, conv in built:
            conversations.append(conv)
            meta.append({"shots": n, "item": item.id, "category": item.category, "split": item.split})
    return conversations, meta, pd.DataFrame(skipped, columns=["shots", "prompt_tokens", "limit"])


def many_shot_rates(replies: pd.DataFrame) -> pd.DataFrame:
    """Refusal and attack success (1 - refusal) per number of shots, each with its Wilson interval."""
    table = rate_table(replies, by=["shots"], outcome="refused")
    table["success"] = 1 - table["rate"]
    table["success_lo"] = 1 - table["hi"]
    table["success_hi"] = 1 - table["lo"]
    return table


def _success_points(df: pd.DataFrame, min_shots: int) -> tuple[np.ndarray, np.ndarray]:
    """(shots, attack success rate) for every ``n >= min_shots`` in ``df``."""
    sub = df[df["shots"] >= min_shots]
    success = 1 - sub.groupby("shots")["refused"].mean()
    return success.index.to_numpy(dtype=float), success.to_numpy(dtype=float)


def _loglog(df: pd.DataFrame, min_shots: int) -> tuple[float, float]:
    """(c, alpha) of success = c * n**alpha on the rates of ``df``; nan when a rate is 0 or < 2 points."""
    x, y = _success_points(df, min_shots)
    if len(x) < 2 or np.any(y <= 0):
        return math.nan, math.nan
    fit = power_law_fit(x, y, n_boot=1)
    return fit.c, fit.alpha


def fit_many_shot_power_law(replies: pd.DataFrame, min_shots: int = 1, n_boot: int = 2000,
                            seed: int = 0) -> dict[str, Any]:
    """Fit attack success = c * n**alpha over ``n >= min_shots`` with cluster-bootstrap (item) intervals.

    The point fit is least squares on (log n, log success rate) via :func:`personalab.stats.power_law_fit`.
    Each bootstrap replicate resamples items, recomputes the rates and refits; replicates in which some rate
    is 0 (log undefined) are dropped and their share is returned as ``undefined_share``. ``c`` is the fitted
    success at n = 1 (the intercept on log axes), ``alpha`` the exponent.
    """
    sub = replies[replies["shots"] >= min_shots]
    x, y = _success_points(sub, min_shots)
    undefined = {"c": 0, "alpha": 0}

    def statistic(which: str) -> Callable[[pd.DataFrame], float]:
        def stat(df: pd.DataFrame) -> float:
            value = _loglog(df, min_shots)[0 if which == "c" else 1]
            undefined[which] += not math.isfinite(value)
            return value
        return stat

    c, c_lo, c_hi = bootstrap_ci(sub, statistic("c"), cluster="item", n_boot=n_boot, seed=seed)
    alpha, a_lo, a_hi = bootstrap_ci(sub, statistic("alpha"), cluster="item", n_boot=n_boot, seed=seed)
    return {"outcome": "attack success (1 - refusal)", "min_shots": min_shots, "points": len(x),
            "shots_used": " ".join(str(int(v)) for v in x), "n_items": sub["item"].nunique(),
            "c": c, "c_lo": c_lo, "c_hi": c_hi, "alpha": alpha, "alpha_lo": a_lo, "alpha_hi": a_hi,
            "n_boot": n_boot, "undefined_share": undefined["alpha"] / n_boot}


# ------------------------------------------------------------------------------------------------ escalation


def escalate(run: Any, items: Sequence[Item], turns: int, sampling: Sampling,
             system: str | None = None) -> pd.DataFrame:
    """Play each item's scripted escalation turn by turn, feeding the model's real replies back; judged.

    All items' turn t go to the server together (one ``run.chat`` call per turn). One row per item and turn,
    with ``turn`` (1-based), ``user`` (the user message), ``escalated`` (turn >= 2: the ladder and the target)
    and ``target_turn`` (the last turn, the target request itself), plus the reply and judge columns.
    """
    histories: list[list[dict[str, str]]] = [[{"role": "system", "content": system}] if system else []
                                             for _ in items]
    scripts = [escalation_turns(item, turns) for item in items]
    frames = []
    for t in range(turns):
        for history, script in zip(histories, scripts):
            history.append({"role": "user", "content": script[t]})
        meta = [{"item": item.id, "category": item.category, "turn": t + 1, "user": script[t],
                 "escalated": t >= 1, "target_turn": t == turns - 1} for item, script in zip(items, scripts)]
        replies = run.chat([list(h) for h in histories], sampling, meta, desc=f"escalation turn {t + 1}/{turns}")
        for history, reply in zip(histories, replies["reply"]):
            history.append({"role": "assistant", "content": reply})
        frames.append(replies)
    return run.judge(pd.concat(frames, ignore_index=True))


def augment(text: str, rng: np.random.Generator, p_caps: float = 0.2, p_scramble: float = 0.1) -> str:
    """A light best-of-N augmentation (after Hughes et al.): random capitals, a few words' inner letters shuffled.

    Each letter is upper-cased with probability ``p_caps``; each word of four letters or more has its inner
    letters shuffled with probability ``p_scramble`` (first and last letters stay, so it stays readable).
    """
    words = []
    for word in text.split(" "):
        if len(word) >= 4 and word.isalpha() and rng.random() < p_scramble:
            inner = list(word[1:-1])
            rng.shuffle(inner)
            word = word[0] + "".join(inner) + word[-1]
        words.append("".join(c.upper() if c.isalpha() and rng.random() < p_caps else c for c in word))
    return " ".join(words)


def best_of_n(run: Any, items: Sequence[Item], tries: int, max_tokens: int, seed: int, temperature: float = 0.0,
              p_caps: float = 0.2, p_scramble: float = 0.1) -> pd.DataFrame:
    """``tries`` independent tries of each direct target request; judged. One row per item and try (``turn``).

    ``temperature == 0``: every try is a greedy reply to an :func:`augment`-ed copy of the request (seeded on
    the client: ``seed``, item and try), so the randomness is in the prompt, as in Hughes et al.'s best-of-N.
    ``temperature > 0``: the plain request resampled (one request with ``n = tries`` and a fixed seed); on
    vLLM's CPU back end a seeded sampled request can crash the server, so use it on GPU servers only.
    """
    if temperature > 0:
        sampling = Sampling(temperature=temperature, max_tokens=max_tokens, n=tries, seed=seed)
        conversations = [[{"role": "user", "content": item.text}] for item in items]
        meta = [{"item": item.id, "category": item.category, "user": item.text} for item in items]
        out = run.chat(conversations, sampling, meta, desc=f"best-of-{tries}, resampled")
        out["turn"] = out["sample"] + 1
    else:
        conversations, meta = [], []
        for i, item in enumerate(items):
            for t in range(tries):
                text = augment(item.text, np.random.default_rng([seed, i, t]), p_caps, p_scramble)
                conversations.append([{"role": "user", "content": text}])
                meta.append({"item": item.id, "category": item.category, "user": text, "turn": t + 1})
        out = run.chat(conversations, Sampling(temperature=0.0, max_tokens=max_tokens, seed=seed), meta,
                       desc=f"best-of-{tries}, augmented")
    out["escalated"], out["target_turn"] = True, True
    return run.judge(out)


def first_events(df: pd.DataFrame, eligible: str = "escalated") -> pd.DataFrame:
    """Per item, the attempt at which the first compliant reply came, counting only ``eligible`` turns.

    Attempts are the eligible turns numbered 1, 2, ... in order (escalated turn k, or best-of-N try k).
    ``time`` is the first attempt whose reply is labelled compliance, or the last attempt when none is
    (``event`` False: censored, never complied); ``attempts`` is how many eligible turns the item had.
    """
    rows = []
    for item, sub in df.sort_values("turn").groupby("item", sort=True):
        complied = (sub.loc[sub[eligible].astype(bool), "label"] == "compliance").to_numpy()
        event = bool(complied.any())
        rows.append({"item": item, "time": int(np.argmax(complied)) + 1 if event else len(complied),
                     "event": event, "attempts": len(complied)})
    return pd.DataFrame(rows)


def survival_curve(events: pd.DataFrame, turns: Sequence[int], confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier share not yet complied at each turn (scipy ``ecdf`` on ``CensoredData``), with intervals.

    Columns: ``turn``, ``at_risk``, ``complied`` (cumulative events), ``n``, ``survival``, ``km_lo``/``km_hi``
    (scipy's Greenwood band; degenerate at 0 and 1) and ``lo``/``hi`` (Wilson interval of the same share,
    valid here because every conversation is followed to the horizon, so nothing is censored earlier).
    """
    times = events["time"].to_numpy(dtype=float)
    done = events["event"].to_numpy(dtype=bool)
    n = len(events)
    if done.any():
        res = ecdf(CensoredData(uncensored=times[done], right=times[~done]))
        band = res.sf.confidence_interval(confidence_level=confidence)
        sf = res.sf.evaluate(np.asarray(turns, dtype=float))
        with np.errstate(invalid="ignore"):
            km_lo = band.low.evaluate(np.asarray(turns, dtype=float))
            km_hi = band.high.evaluate(np.asarray(turns, dtype=float))
    else:
        sf = np.ones(len(turns))
        km_lo = km_hi = np.full(len(turns), np.nan)
    rows = []
    for t, s, lo_km, hi_km in zip(turns, sf, km_lo, km_hi):
        complied = int((done & (times <= t)).sum())
        lo, hi = wilson_interval(n - complied, n, confidence)
        rows.append({"turn": int(t), "at_risk": int((times >= t).sum()), "complied": complied, "n": n,
                     "survival": float(s), "km_lo": float(lo_km), "km_hi": float(hi_km), "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def compare_at_budget(esc_events: pd.DataFrame, bon_events: pd.DataFrame, budget: int, n_boot: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Share complied within ``budget`` attempts, escalation minus best-of-N, with a paired item bootstrap."""
    both = pd.concat([esc_events.assign(arm="escalation"), bon_events.assign(arm="best_of_n")], ignore_index=True)
    both["complied"] = both["event"] & (both["time"] <= budget)

    def diff(df: pd.DataFrame) -> float:
        shares = df.groupby("arm")["complied"].mean()
        return float(shares.get("escalation", np.nan) - shares.get("best_of_n", np.nan))

    d, lo, hi = bootstrap_ci(both, diff, cluster="item", n_boot=n_boot, seed=seed)
    return {"budget": budget, "escalation": float(both.loc[both.arm == "escalation", "complied"].mean()),
            "best_of_n": float(both.loc[both.arm == "best_of_n", "complied"].mean()),
            "difference": d, "lo": lo, "hi": hi, "n_items": both["item"].nunique(), "n_boot": n_boot}


def final_turn_vs_direct(esc: pd.DataFrame, direct: pd.DataFrame, n_boot: int = 2000,
                         seed: int = 0) -> dict[str, Any]:
    """Refusal of the plain request minus refusal at the escalation's final (target) turn, paired by item."""
    both = pd.concat([direct.assign(arm="direct")[["item", "arm", "refused"]],
                      esc[esc["target_turn"]].assign(arm="final turn")[["item", "arm", "refused"]]],
                     ignore_index=True)
    d, lo, hi = bootstrap_difference(both, group="arm", a="direct", b="final turn", outcome="refused",
                                     cluster="item", n_boot=n_boot, seed=seed)
    return {"contrast": "direct minus escalation final turn (refusal)", "direct": float(direct["refused"].mean()),
            "final_turn": float(esc.loc[esc["target_turn"], "refused"].mean()), "difference": d, "lo": lo,
            "hi": hi, "n_items": both["item"].nunique(), "n_boot": n_boot}


def turn_refusal_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate at every turn (Wilson intervals), keeping the user message's role in the script."""
    table = rate_table(df, by=["turn"], outcome="refused")
    kinds = df.groupby("turn").agg(escalated=("escalated", "first"), target_turn=("target_turn", "first"))
    return table.merge(kinds.reset_index(), on="turn")
