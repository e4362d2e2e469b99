"""How deep is the mask: prefill-depth sweeps, their logistic fit, and the first-token picture.

Three measurements back the ``depth`` experiment:

- a compliance sweep: the first ``k`` tokens of an item's ``compliant_start`` are put in the assistant's mouth and
  the judge labels what the model adds (``attacks.prefill``); a logistic curve in ``log(1 + k)`` is fitted with a
  bootstrap over items, and the k where it crosses 50 % is reported;
- the reverse sweep: the first ``k`` tokens of a stock refusal (``attacks.refusal_prefill``); the judge reads the
  whole assistant message, forced opening included (see :func:`judge_full_message`);
- the first-token picture: one-token probes with ``top_logprobs`` at the first assistant position, the
  probability of the model's canonical refusal-opening token, and how well it predicts the judged full reply.

Tokens are the model's own tokenizer tokens when its checkpoint is on disk (embedded models), else whitespace
words (:func:`token_unit` says which was used). The figures are in :mod:`personalab.book.plots.depth`; the
chapter's phrases are in :mod:`personalab.book.chapters.depth`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from personalab.attacks import (CONTROL_FAMILY, REFUSAL_OPENING, Conversation, get_wrapper, prefill, refusal_prefill,
                                wrappers)
from personalab.harness.client import GenRequest, Sampling
from personalab.prompts import Item
from personalab.stats import bootstrap_ci, bootstrap_difference, logistic_fit, rate_table

K_VALUES: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 20, 40)
"""Prefilled tokens of the compliant opening in the default sweep."""

REFUSAL_KS: tuple[int, ...] = (0, 1, 2, 3, 5, 12)
"""Prefilled tokens of the stock refusal in the reverse sweep (12 covers the whole opening in BPE tokenizers)."""

SCALES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "log1p": (np.log1p, np.expm1),
    "linear": (lambda k: np.asarray(k, dtype=float), lambda x: np.asarray(x, dtype=float)),
}
"""How k enters the logistic curve: ``log1p`` (x = log(1 + k), the default: k is spaced geometrically) or ``linear``."""

CALIBRATION_BINS: int = 5
"""Quantile bins of the refusal-opening probability in the calibration table (a model's range can be narrow)."""


# ------------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class TokenUnit:
    """What "k tokens" means in a sweep: a tokenize/detokenize pair and its name (None, None: whitespace words)."""

    name: str
    tokenize: Callable[[str], list[Any]] | None = None
    detokenize: Callable[[list[Any]], str] | None = None

    def count(self, text: str) -> int:
        """How many units ``text`` has."""
        return len(self.tokenize(text)) if self.tokenize else len(text.split())


def token_unit(spec: Any) -> TokenUnit:
    """The model's own tokenizer (loaded offline from its converted checkpoint) or whitespace words as a fallback."""
    if getattr(spec, "kind", None) == "embedded":
        from personalab.harness.models import checkpoint_dir

        folder = checkpoint_dir(spec)
        if folder.exists():
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            return TokenUnit(f"tokenizer of {spec.id}", tok.tokenize, tok.convert_tokens_to_string)
    return TokenUnit("whitespace words")


# ------------------------------------------------------------------------------------------------ sweeps


@dataclass(frozen=True)
class DepthWrapper:
    """A prefill of depth ``k`` (compliant or refusal opening), callable like a registered attack wrapper."""

    family: str
    k: int
    unit: TokenUnit

    def __call__(self, item: Item) -> Conversation:
        build = refusal_prefill if self.family == "refusal_prefill" else prefill
        return build(item, self.k, self.unit.tokenize, self.unit.detokenize)


def sweep_conditions(ks: Sequence[int], unit: TokenUnit, family: str = "prefill") -> dict[str, DepthWrapper]:
    """Conditions ``"k=<k>"`` for ``Run.ask``: ``family`` is ``prefill`` (compliant opening) or ``refusal_prefill``."""
    if family not in ("prefill", "refusal_prefill"):
        raise ValueError(f"family must be 'prefill' or 'refusal_prefill', got {family!r}.")
    if len(set(ks)) != len(ks):
        raise ValueError(f"k values repeat: {list(ks)}")
    return {f"k={k}": DepthWrapper(family, int(k), unit) for k in ks}


def add_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``depth`` (k, from ``condition``), ``complied`` (= not refused by the judge) and ``other`` (judge: other)."""
    out = df.copy()
    out["depth"] = out["condition"].str.removeprefix("k=").astype(int)
    out["complied"] = ~out["refused"].astype(bool)
    out["other"] = out["label"] == "other"
    return out


def judge_full_message(run: Any, df: pd.DataFrame) -> pd.DataFrame:
    """Judge prefill + continuation as one assistant message (the reverse sweep: does the forced refusal stand?)."""
    out = df.copy()
    out["full_message"] = out["prefill"].fillna("") + out["reply"].fillna("")
    out["no_prefill"] = ""
    judged = run.judge(out, reply="full_message", prefill="no_prefill")
    return judged.drop(columns=["no_prefill"])


def sweep_rates(df: pd.DataFrame, outcome: str = "complied") -> pd.DataFrame:
    """Per-k rate of ``outcome`` with Wilson interval, plus the share (and interval) the judge labelled ``other``."""
    rates = rate_table(df, by=["depth"], outcome=outcome)
    other = rate_table(df, by=["depth"], outcome="other").rename(
        columns={"rate": "other_rate", "lo": "other_lo", "hi": "other_hi"})
    return rates.merge(other[["depth", "other_rate", "other_lo", "other_hi"]], on="depth").assign(outcome=outcome)


@dataclass(frozen=True)
class DepthFit:
    """A logistic curve of an outcome against k (on ``scale``) and the k where it crosses 50 %."""

    scale: str
    a: float
    b: float
    k50: float
    k50_lo: float
    k50_hi: float
    n: int
    status: str

    @property
    def identified(self) -> bool:
        """True when a curve was fitted (the outcome varied)."""
        return math.isfinite(self.a)

    def predict(self, k: Sequence[float] | np.ndarray) -> np.ndarray:
        """Fitted probability at ``k``."""
        x = SCALES[self.scale][0](np.asarray(k, dtype=float))
        return 1.0 / (1.0 + np.exp(-(self.a + self.b * x)))

    def row(self) -> dict[str, Any]:
        """One table row."""
        return {"scale": self.scale, "a": self.a, "b": self.b, "k50": self.k50, "k50_lo": self.k50_lo,
                "k50_hi": self.k50_hi, "n": self.n, "status": self.status}


def _crossing_status(rate0: float, rate_max: float, k50: float, k_max: float, b: float) -> str:
    """Say in words where the curve crosses 50 %, so a chapter never quotes an extrapolated k50 as measured."""
    if rate0 >= 0.5:
        return "at or above 50% already at k = 0"
    if b <= 0 or not math.isfinite(k50):
        return "no rising curve"
    if k50 > k_max or rate_max < 0.5:
        return "does not reach 50% within the sweep"
    return "crosses 50% within the sweep"


def fit_depth(df: pd.DataFrame, outcome: str = "complied", scale: str = "log1p", n_boot: int = 1000,
              seed: int = 0) -> DepthFit:
    """Logistic fit of ``outcome`` on k (x = log(1 + k) or k), clusters = items; nan when the outcome never varies."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}.")
    forward, back = SCALES[scale]
    y = df[outcome].astype(bool).to_numpy()
    by_k = df.groupby("depth")[outcome].mean()
    rate0, rate_max, k_max = float(by_k.iloc[0]), float(by_k.iloc[-1]), float(by_k.index.max())
    if y.min() == y.max():
        word = "every" if y[0] else "no"
        return DepthFit(scale, math.nan, math.nan, math.nan, math.nan, math.nan, len(y),
                        f"not identified: {outcome} in {word} reply at every k")
    fit = logistic_fit(forward(df["depth"].to_numpy(dtype=float)), y, n_boot=n_boot, seed=seed,
                       cluster=df["item"].to_numpy())
    k50, (lo, hi) = float(back(fit.x50)), (float(back(v)) for v in fit.x50_ci)
    return DepthFit(scale, fit.a, fit.b, k50, lo, hi, fit.n, _crossing_status(rate0, rate_max, k50, k_max, fit.b))


def fit_band(df: pd.DataFrame, grid: Sequence[float], outcome: str = "complied", scale: str = "log1p",
             n_boot: int = 500, seed: int = 0, confidence: float = 0.95,
             levels: Sequence[float] = (0.5, 0.9)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap over items of the fitted curve: (pointwise band at ``grid`` k values, k where it passes ``levels``).

    The second table has ``level``, ``k`` (from the fit on all data), ``lo``, ``hi`` (percentiles of the
    replicates' crossings; replicates whose curve does not rise are dropped and counted in ``n_dropped``).
    """
    forward, back = SCALES[scale]
    items = np.array(sorted(df["item"].unique()))
    groups = {item: sub for item, sub in df.groupby("item")}
    rng = np.random.default_rng(seed)
    curves, crossings = [], []
    logits = special.logit(np.asarray(levels, dtype=float))
    for _ in range(n_boot):
        sample = pd.concat([groups[i] for i in rng.choice(items, size=len(items))])
        y = sample[outcome].astype(bool).to_numpy()
        if y.min() == y.max():
            curves.append(np.full(len(grid), float(y[0])))
            crossings.append(np.full(len(levels), np.nan))
            continue
        fit = logistic_fit(forward(sample["depth"].to_numpy(dtype=float)), y, n_boot=1, seed=seed)
        curves.append(fit.predict(forward(np.asarray(grid, dtype=float))))
        crossings.append(back((logits - fit.a) / fit.b) if fit.b > 1e-9 else np.full(len(levels), np.nan))
    arr, cross = np.array(curves), np.array(crossings)
    alpha = 1.0 - confidence
    band = pd.DataFrame({"depth": list(grid), "lo": np.quantile(arr, alpha / 2, axis=0),
                         "hi": np.quantile(arr, 1 - alpha / 2, axis=0)})
    full = fit_depth(df, outcome, scale, n_boot=1, seed=seed)
    rows = []
    for j, level in enumerate(levels):
        col = cross[:, j][np.isfinite(cross[:, j])]
        point = float(back((logits[j] - full.a) / full.b)) if full.identified and full.b > 1e-9 else math.nan
        lo, hi = (np.quantile(col, [alpha / 2, 1 - alpha / 2]) if col.size else (math.nan, math.nan))
        rows.append({"level": level, "k": point, "lo": float(lo), "hi": float(hi), "n_dropped": int(n_boot - col.size)})
    return band, pd.DataFrame(rows)


def contrasts(df: pd.DataFrame, outcome: str = "complied", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired difference of the ``outcome`` rate at each k and at k = 0, bootstrapped over items."""
    rows = []
    for k in sorted(df["depth"].unique())[1:]:
        diff, lo, hi = bootstrap_difference(df, group="depth", a=k, b=0, outcome=outcome, cluster="item",
                                            n_boot=n_boot, seed=seed)
        rows.append({"depth": int(k), "difference": diff, "lo": lo, "hi": hi, "outcome": outcome})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ first token


def probe_conditions(keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Registered wrappers to probe at the first position: ``keys``, or the first of each attack family (not
    prefill, which fills the position itself, nor the control family, which is not an attack)."""
    if keys is None:
        keys = []
        for w in wrappers():
            if (w.family not in ("prefill", CONTROL_FAMILY)
                    and not any(get_wrapper(k).family == w.family for k in keys)):
                keys.append(w.key)
    chosen = {key: get_wrapper(key) for key in keys}
    bad = [k for k, w in chosen.items() if w.family == "prefill"]
    if bad:
        raise ValueError(f"Prefill wrappers fill the first position themselves; drop {bad}.")
    return chosen


def _probe(run: Any, conversations: Sequence[Conversation], top_logprobs: int, desc: str) -> list[dict[str, float]]:
    """One-token greedy generations with ``top_logprobs``; for each conversation, the map token -> probability."""
    sampling = Sampling(temperature=0.0, max_tokens=1, seed=run.seed, logprobs=True, top_logprobs=top_logprobs)
    gens = run.generate([GenRequest.chat(c, sampling) for c in conversations], desc=desc)
    tops = []
    for g in gens:
        steps = g.logprobs[0] if g.logprobs and g.logprobs[0] else []
        tops.append({tok: math.exp(lp) for tok, lp in steps[0]["top"].items()} if steps else {})
    return tops


def first_token_probe(run: Any, items: Sequence[Item], conditions: Mapping[str, Callable[[Item], Conversation]],
                      top_logprobs: int = 20) -> pd.DataFrame:
    """The first assistant position: one row per item and condition; ``top`` maps token -> probability."""
    meta, conversations = [], []
    for name, wrapper in conditions.items():
        for item in items:
            conversations.append(wrapper(item))
            meta.append({"condition": name, "family": getattr(wrapper, "family", name), "item": item.id,
                         "category": item.category, "variant": item.variant})
    tops = _probe(run, conversations, top_logprobs, f"{run.experiment} first token · {run.model_id}")
    return pd.DataFrame([{**m, "first_token": max(t, key=t.get) if t else "", "top": t} for m, t in zip(meta, tops)])


def opening_tokens(text: str, unit: TokenUnit, m: int) -> tuple[str, ...]:
    """The first ``m`` tokens of ``text`` as decoded strings (whitespace words without a tokenizer)."""
    if unit.tokenize is None or unit.detokenize is None:
        return tuple(text.split()[:m])
    return tuple(unit.detokenize([t]) for t in unit.tokenize(text.lstrip())[:m])


def canonical_refusal(replies: pd.DataFrame, unit: TokenUnit, m: int = 3, fallback: str = REFUSAL_OPENING,
                      ) -> tuple[tuple[str, ...], str]:
    """The commonest m-token opening of judged refusals (direct condition first, then any); returns (tokens, rule).

    Without any judged refusal the first ``m`` tokens of ``fallback`` (the stock refusal) are used.
    """
    for scope, sub in (("direct requests", replies[replies["family"] == "direct"]), ("any condition", replies)):
        openings = [opening_tokens(r, unit, m) for r in sub.loc[sub["refused"].astype(bool), "reply"]]
        if openings:
            tokens, count = Counter(openings).most_common(1)[0]
            return tokens, f"commonest opening of judged refusals ({scope}: {count} of {len(openings)})"
    return opening_tokens(fallback, unit, m), "no judged refusal: the stock refusal opening"


def sequence_probe(run: Any, items: Sequence[Item], conditions: Mapping[str, Callable[[Item], Conversation]],
                   tokens: Sequence[str], first: pd.DataFrame, top_logprobs: int = 20) -> pd.DataFrame:
    """P(the reply opens with ``tokens``): the first-position probe times one-token probes after each prefix.

    ``first`` is :func:`first_token_probe`'s table for the same items and conditions. Columns ``p_token_<j>`` hold
    P(token j | the tokens before it) and ``p_sequence`` their product; a token outside the returned alternatives
    counts 0, so both are lower bounds. Needs ``tokens`` to be the model's own tokens (decoded strings).
    """
    out = first[["condition", "item"]].copy()
    out["p_token_0"] = [t.get(tokens[0], 0.0) for t in first["top"]]
    for j in range(1, len(tokens)):
        prefix = "".join(tokens[:j])
        conversations = [[*wrapper(item), {"role": "assistant", "content": prefix}]
                         for wrapper in conditions.values() for item in items]
        tops = _probe(run, conversations, top_logprobs, f"{run.experiment} token {j + 1} · {run.model_id}")
        out[f"p_token_{j}"] = [t.get(tokens[j], 0.0) for t in tops]
    out["p_sequence"] = out.filter(like="p_token_").prod(axis=1)
    return out


def refusal_mass(top: Mapping[str, float], tokens: Sequence[str]) -> float:
    """Probability of the first token being one of ``tokens`` (0 for tokens outside the top list: a lower bound)."""
    return float(sum(top.get(t, 0.0) for t in set(tokens)))


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half); nan when one class is absent."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auc_with_ci(df: pd.DataFrame, score: str, outcome: str = "refused", cluster: str = "item", n_boot: int = 1000,
                seed: int = 0) -> tuple[float, float, float]:
    """AUC of ``score`` for ``outcome`` with a percentile bootstrap over ``cluster``."""
    return bootstrap_ci(df, lambda d: auc(d[score], d[outcome]), cluster=cluster, n_boot=n_boot, seed=seed)


def calibration_table(df: pd.DataFrame, score: str, outcome: str = "refused",
                      bins: Sequence[float] | int = CALIBRATION_BINS) -> pd.DataFrame:
    """Judged ``outcome`` rate (Wilson interval) per bin of ``score``: ``bins`` edges, or that many quantile bins."""
    if isinstance(bins, int):
        edges = np.unique(np.quantile(df[score], np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([edges[0], edges[0] + 1e-12])
    else:
        edges = np.asarray(bins, dtype=float)
    labels = [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(edges[:-1], edges[1:])]
    if len(set(labels)) < len(labels):  # tiny scores (few requests) can round to the same three decimals
        labels = [f"{lo:.3e}–{hi:.3e}" for lo, hi in zip(edges[:-1], edges[1:])]
    binned = df.assign(bin=pd.cut(df[score], bins=edges, labels=labels, include_lowest=True))
    table = rate_table(binned, by=["bin"], outcome=outcome)
    means = binned.groupby("bin", observed=True)[score].mean().rename("mean_score").reset_index()
    table = table.merge(means, on="bin")
    table["bin"] = table["bin"].astype(str)
    return table


def mass_by_condition(df: pd.DataFrame, score: str, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean ``score`` per condition and variant with a bootstrap interval over items."""
    rows = []
    for (condition, variant), sub in df.groupby(["condition", "variant"], sort=False):
        mean, lo, hi = bootstrap_ci(sub, lambda d: float(d[score].mean()), cluster="item", n_boot=n_boot, seed=seed)
        rows.append({"condition": condition, "variant": variant, "mean": mean, "lo": lo, "hi": hi, "n": len(sub),
                     "refused_share": float(sub["refused"].mean()) if "refused" in sub else math.nan})
    return pd.DataFrame(rows)


def top_tokens(probes: pd.DataFrame, condition: str, n: int = 8) -> pd.DataFrame:
    """Mean probability of the ``n`` likeliest first tokens in one condition, per variant (targets vs benign)."""
    sub = probes[probes["condition"] == condition]
    rows = []
    for variant, grp in sub.groupby("variant"):
        mass: Counter[str] = Counter()
        for top in grp["top"]:
            mass.update(top)
        rows += [{"variant": variant, "token": t, "mean_prob": p / len(grp)} for t, p in mass.most_common(n)]
    return pd.DataFrame(rows)


__all__ = [
    "CALIBRATION_BINS", "K_VALUES", "REFUSAL_KS", "REFUSAL_OPENING", "SCALES", "DepthFit", "DepthWrapper",
    "TokenUnit", "add_outcomes", "auc", "auc_with_ci", "calibration_table", "canonical_refusal", "contrasts",
    "first_token_probe", "fit_band", "fit_depth", "judge_full_message", "mass_by_condition", "opening_tokens",
    "probe_conditions", "refusal_mass", "sequence_probe", "sweep_conditions", "sweep_rates", "token_unit",
    "top_tokens",
]
