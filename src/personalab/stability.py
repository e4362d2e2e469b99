"""Whether the claim table's verdicts survive a re-run (``personalab stability``).

Greedy decoding under continuous batching is not bit-for-bit repeatable, so a fresh run can change a few replies
and, where a deciding bound sits near zero, a verdict. :func:`rerun` repeats the configured runs of the main job
once per repetition, each from an empty generation cache and optionally under its own ``seed`` (and a sampling
``temperature``, passed only to the notebooks that declare one), computes the claim table from each repetition's
results and writes, for every row whose experiments were re-run, whether its verdict came out as committed
(``experiments/results/stability/verdicts.csv`` and its ``provenance.json``).

A repetition lives in ``<out_dir>/rep_<i>/``, a folder laid out like the repository: its own generation cache
(``.personalab/``) and the results, executed notebooks and figures its runs publish (through
``PERSONALAB_OUTPUT_ROOT``), beside copies of the committed results it does not re-run. Committed results are
never touched.

A *judge* re-run (``judge=``) asks a different question: would a verdict change if another registered judge had
labelled the same replies? Each repetition then starts from a copy of the main generation and activation caches,
runs every notebook with that judge and never serves a model (a missing generation is an error, so every reply is
the committed one), and its records go to a folder of that judge's own (``JUDGE_DIR / judge``), apart from the re-run
records.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from personalab.book.chapters.integration import (JUDGED_EXPERIMENTS, ROW_EXPERIMENTS, SINGLE_EXPERIMENTS,
                                                  STABILITY_DIR, claim_table)
from personalab.harness.registry import load_registry
from personalab.harness.server import vllm_distribution
from personalab.outputs import output_root_at, published, results_dir_for, write_json, write_table
from personalab.parameters import Parameter, check_values
from personalab.paths import REPO_ROOT, data_dir, repo_path
from personalab.pipeline import (LazyServer, declared_parameters, experiment_names, load_config, notebook_source,
                                 run_experiment, runs_by_model)

DEFAULT_OUT_DIR = repo_path(".personalab", "stability")
"""Where the repetitions' folders go unless told otherwise (ignored by git)."""

RESULTS = Path("experiments") / "results"
JUDGE_DIR = STABILITY_DIR / "judge"
"""Where a judge re-run writes its ``verdicts.csv`` and ``provenance.json``, one folder per judge."""
CACHES: tuple[str, ...] = ("generations.sqlite", "activations")
"""What a judge re-run copies from the main data folder: the replies and the activations they were computed from."""

Plan = list[tuple[str, list[tuple[str, dict[str, Any]]]]]
"""One repetition's runs in order: (model, [(experiment, params)]), served model by model like the main job, then the
``after_all`` runs that compare the others' results."""


def repetition_seeds(repetitions: int | None, seeds: Sequence[int] | None) -> tuple[int | None, ...]:
    """One seed per repetition: the given ``seeds``, else ``repetitions`` (default 1) times None (the configured
    seed)."""
    if seeds:
        if repetitions is not None and repetitions != len(seeds):
            raise ValueError(f"stability: --repetitions {repetitions} does not match the {len(seeds)} seed(s) given; "
                             "give one seed per repetition, or only one of the two.")
        return tuple(seeds)
    n = 1 if repetitions is None else repetitions
    if n < 1:
        raise ValueError(f"stability: the number of repetitions must be at least 1, got {n}.")
    return (None,) * n


def check_inputs(seeds: Sequence[Any], temperature: Any, only: Sequence[str] | None,
                 configured: Sequence[str]) -> None:
    """Refuse, in one sentence, seeds that are not whole numbers >= 0, a temperature outside [0, 2], and
    ``only`` names that are not experiments or not in the run configuration."""
    if not seeds:
        raise ValueError("stability: at least one repetition (one seed) is needed.")
    for seed in seeds:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"stability: seeds must be whole numbers >= 0, got {seed!r}.")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not math.isfinite(temperature) or not 0 <= temperature <= 2):
        raise ValueError(f"stability: the temperature must be a number from 0 to 2, got {temperature!r}.")
    for name in only or ():
        if name not in experiment_names():
            raise ValueError(f"stability: unknown experiment {name!r} in --only; available: "
                             f"{', '.join(experiment_names())}.")
        if name not in configured:
            raise ValueError(f"stability: {name} is not in the run configuration; configured: "
                             f"{', '.join(dict.fromkeys(configured))}.")


def plan(runs: Sequence[Mapping[str, Any]], seed: int | None, temperature: float | None,
         declared: Mapping[str, Mapping[str, Parameter]], judge: str | None = None) -> Plan:
    """The runs of one repetition, with ``seed``, ``temperature`` and ``judge`` set where the notebook declares
    them; the ``after_all`` runs come last, as the main job runs them."""
    def varied(name: str, params: dict[str, Any]) -> dict[str, Any]:
        if seed is not None and "seed" in declared[name]:
            params["seed"] = seed
        if temperature is not None and "temperature" in declared[name]:
            params["temperature"] = temperature
        if judge is not None and "judge" in declared[name]:
            params["judge"] = judge
        return params

    out: Plan = [(model, [(name, varied(name, params)) for name, params in items])
                 for model, items in runs_by_model(runs).items()]
    default = load_registry().default
    for run in (r for r in runs if r.get("after_all")):
        for model in run.get("models") or [default]:
            out.append((model, [(run["experiment"], varied(run["experiment"], dict(run.get("params") or {})))]))
    return out


def claim_models() -> tuple[list[str], str]:
    """The models of the main job's claim table: those the judged experiments run on, the trained masks among them
    (the registry's default first, then in the configuration's order), and the one the single-model experiments
    run on. A row reads each model that has its experiments' results."""
    by_model = runs_by_model(load_config())
    registry = load_registry()
    default = registry.default
    judged = [m for m, items in by_model.items() if any(name in JUDGED_EXPERIMENTS for name, _ in items)]
    single = next((m for m, items in by_model.items() if any(name in SINGLE_EXPERIMENTS for name, _ in items)),
                  default)
    return sorted(judged, key=lambda m: m != default), single


def rerun_pairs(key: str, pairs: set[tuple[str, str]], models: Sequence[str], single: str) -> list[tuple[str, str]]:
    """The re-run (experiment, model) pairs whose results claim row ``key`` reads."""
    return sorted((name, m) for name, m in pairs if name in ROW_EXPERIMENTS[key]
                  and m in ([single] if name in SINGLE_EXPERIMENTS else models))


def varied_text(row_pairs: Sequence[tuple[str, str]], seeds: Sequence[int | None], temperature: float | None,
                declared: Mapping[str, Mapping[str, Parameter]], judge: str | None = None) -> str:
    """What a row's re-runs changed: the empty cache (or, for a judge re-run, the judge on the committed replies),
    the seeds, the temperature, and which runs were repeated."""
    names = sorted({name for name, _ in row_pairs})
    parts = [f"judge {judge} on the committed generations" if judge else "empty generation cache"]
    if any(s is not None for s in seeds) and any("seed" in declared[n] for n in names):
        parts.append(("seed " if len(seeds) == 1 else "seeds ")
                     + ", ".join("configured" if s is None else str(s) for s in seeds))
    hot = [n for n in names if "temperature" in declared[n]]
    if temperature is not None and hot:
        parts.append(f"temperature {temperature:g} ({', '.join(hot)})")
    parts.append("re-ran " + "; ".join(f"{n} on {', '.join(m for e, m in row_pairs if e == n)}" for n in names))
    return "; ".join(parts)


VERDICT_COLUMNS: tuple[str, ...] = ("key", "committed", "verdicts", "held", "n_changed", "n_repetitions", "varied",
                                    "date")
"""``verdicts.csv``: one row per re-derived claim; ``verdicts`` lists the repetitions' verdicts in order."""


def compare(committed: pd.Series, repetitions: Mapping[str, pd.Series], varied: Mapping[str, str],
            date: str) -> pd.DataFrame:
    """One row per claim key of ``varied``: its committed verdict, the repetitions' verdicts, whether all equal
    it, how many differ, the number of repetitions, what was varied and the date of the re-run."""
    rows = []
    for key in [k for k in committed.index if k in varied]:
        got = [verdicts[key] for verdicts in repetitions.values()]
        n_changed = sum(v != committed[key] for v in got)
        rows.append({"key": key, "committed": committed[key], "verdicts": "; ".join(got), "held": n_changed == 0,
                     "n_changed": n_changed, "n_repetitions": len(got), "varied": varied[key], "date": date})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def _combine(earlier: pd.Series, fresh: pd.Series) -> dict[str, Any]:
    """One record of a row re-derived by two re-runs for the same committed verdict: their repetitions together."""
    n_changed = int(earlier["n_changed"]) + int(fresh["n_changed"])
    return {"key": fresh["key"], "committed": fresh["committed"],
            "verdicts": f"{earlier['verdicts']}; {fresh['verdicts']}", "held": n_changed == 0, "n_changed": n_changed,
            "n_repetitions": int(earlier["n_repetitions"]) + int(fresh["n_repetitions"]),
            "varied": f"{earlier['varied']} | {fresh['varied']}", "date": fresh["date"]}


def merge_records(earlier: pd.DataFrame | None, fresh: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """The recorded verdicts after a re-run, in the claim table's ``order``: earlier rows of keys this re-run did not
    re-derive are kept; a row re-derived again for the same committed verdict adds the new repetitions to the
    earlier ones; a row whose committed verdict has changed since keeps only the new record."""
    if earlier is None or earlier.empty:
        return fresh.reset_index(drop=True)
    before = earlier.set_index("key")
    rows = [r[list(VERDICT_COLUMNS)].to_dict() for _, r in earlier.iterrows() if r["key"] not in set(fresh["key"])]
    for _, row in fresh.iterrows():
        same = row["key"] in before.index and before.loc[row["key"], "committed"] == row["committed"]
        rows.append(_combine(before.loc[row["key"]].to_dict() | {"key": row["key"]}, row) if same
                    else row[list(VERDICT_COLUMNS)].to_dict())
    merged = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    rank = {key: i for i, key in enumerate(order)}
    return merged.sort_values("key", key=lambda keys: keys.map(rank), kind="stable").reset_index(drop=True)


def seed_results(source: Path, dest: Path, skip: set[tuple[str, str]]) -> None:
    """Copy the results under ``source`` to ``dest`` except the (experiment, model) folders in ``skip`` and the
    stability records, so a repetition reads its own runs and the committed rest."""
    for folder in sorted(p for p in (source / RESULTS).iterdir() if p.is_dir() and p.name != STABILITY_DIR.name):
        for item in folder.iterdir():
            if (folder.name, item.name) in skip:
                continue
            target = dest / RESULTS / folder.name / item.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)


@contextlib.contextmanager
def data_dir_at(path: Path) -> Iterator[None]:
    """Within the block, keep the generation cache, server state and logs in ``path`` (``PERSONALAB_DATA``)."""
    previous = os.environ.get("PERSONALAB_DATA")
    os.environ["PERSONALAB_DATA"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PERSONALAB_DATA", None)
        else:
            os.environ["PERSONALAB_DATA"] = previous


def _run_plan(runs: Plan, rep: int, n_reps: int, serve_model: bool = True) -> None:
    """Run one repetition's runs, serving each model once for all of its experiments (or, with ``serve_model``
    false, from the caches alone)."""
    total, done = sum(len(items) for _, items in runs), 0
    for model, items in runs:
        with LazyServer(model) as server:
            for name, params in items:
                done += 1
                print(f"-- stability: repetition {rep} of {n_reps}, run {done} of {total}: {name} on {model}",
                      flush=True)
                run_experiment(name, model, params=params, server=server, serve_model=serve_model)


def copy_caches(source: Path, dest: Path) -> None:
    """Copy the generation and activation caches (:data:`CACHES`) of the data folder ``source`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CACHES:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, dest / name)
        elif item.exists():
            shutil.copy2(item, dest / name)


def _servers(rep_dir: Path, pairs: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The distinct servers (vLLM version, device) that answered a repetition's runs, from their provenance."""
    seen: list[dict[str, Any]] = []
    for name, model in sorted(pairs):
        record = json.loads((rep_dir / results_dir_for(name, model) / "provenance.json").read_text())
        for server in record.get("server", []):
            if server not in seen:
                seen.append(server)
    return seen


JUDGE_WORST = Path("experiments/results/judge_validation/ood_worst.csv")
"""Each judge's worst held-out agreement, which the claim table states beside the verdicts it re-derives."""


def check_judge(judge: str | None, seeds: Sequence[int | None], temperature: float | None) -> None:
    """Refuse, in one sentence, an unregistered judge, a judge re-run that also varies seeds or temperature (it
    must judge the committed replies, which another seed would not reproduce), or a judge the validation has not
    scored (the claim table reads its held-out agreement, so the re-run would fail after every notebook ran)."""
    if judge is None:
        return
    from personalab.judges import JUDGES

    if judge not in JUDGES:
        raise ValueError(f"stability: unknown judge {judge!r}; registered: {', '.join(sorted(JUDGES))}.")
    if len(seeds) != 1 or seeds[0] is not None or temperature is not None:
        raise ValueError("stability: a judge re-run judges the committed replies once; give no seeds, repetitions "
                         "or temperature with --judge.")
    worst = published(JUDGE_WORST)
    if not worst.exists() or judge not in set(pd.read_csv(worst)["judge"]):
        raise ValueError(f"stability: {JUDGE_WORST} has no held-out agreement for {judge!r}, which the claim table "
                         "reports; run `personalab judges validate` first.")


def _plans(seeds: Sequence[int | None], temperature: float | None, only: Sequence[str] | None,
           config: Path | str | None, judge: str | None = None
           ) -> tuple[list[Plan], dict[str, dict[str, Parameter]]]:
    """Every repetition's runs, checked against the notebooks' declared parameters (also returned)."""
    runs = load_config(config)
    check_inputs(seeds, temperature, only, [r["experiment"] for r in runs])
    check_judge(judge, seeds, temperature)
    models, single = claim_models()
    # Only runs the claim table reads are repeated (not the base-model example's, nor experiments no row reads).
    default = load_registry().default
    read = {name for names in ROW_EXPERIMENTS.values() for name in names}
    runs = [{**r, "models": [m for m in r.get("models") or [default] if m in models or m == single]} for r in runs
            if (not only or r["experiment"] in only) and r["experiment"] in read]
    runs = [r for r in runs if r["models"]]
    declared = {r["experiment"]: declared_parameters(notebook_source(r["experiment"])) for r in runs}
    if temperature is not None and not any("temperature" in d for d in declared.values()):
        raise ValueError(f"stability: none of {', '.join(declared)} declares a temperature parameter, so "
                         "--temperature would change nothing.")
    plans = [plan(runs, seed, temperature, declared, judge) for seed in seeds]
    for runs_of_rep in plans:
        for model, items in runs_of_rep:
            for name, params in items:
                check_values(name, declared[name], {"model_id": model, **params})
    return plans, declared


def rerun(out_dir: Path | str = DEFAULT_OUT_DIR, *, seeds: Sequence[int | None] = (None,),
          temperature: float | None = None, only: Sequence[str] | None = None, config: Path | str | None = None,
          verdicts_dir: Path | str | None = None, judge: str | None = None) -> pd.DataFrame:
    """Re-run the configured runs (``config``, default ``experiments/config.yaml``; ``only`` some experiments) once
    per seed from an empty generation cache, and write per claim row whether its verdict held.

    A seed of None keeps each notebook's configured seed. The claim table is the main job's (models from
    ``experiments/config.yaml``); rows are compared only where an experiment they read was re-run. With ``judge``,
    the one repetition re-judges the committed replies instead (module docstring). Returns the table written to
    ``verdicts_dir/verdicts.csv`` (default :data:`STABILITY_DIR`, or ``JUDGE_DIR / judge`` for a judge re-run).
    """
    seeds = tuple(seeds)
    plans, declared = _plans(seeds, temperature, only, config, judge)
    pairs = {(name, model) for model, items in plans[0] for name, _ in items}
    models, single = claim_models()
    varied = {key: varied_text(row, seeds, temperature, declared, judge) for key in ROW_EXPERIMENTS
              if (row := rerun_pairs(key, pairs, models, single))}
    if not varied:
        raise ValueError(f"stability: no claim-table row reads the runs of {', '.join(sorted(declared))} on "
                         f"{', '.join(sorted({m for _, m in pairs}))}, so there is nothing to compare.")
    out_dir = Path(out_dir).resolve()
    if REPO_ROOT.resolve().is_relative_to(out_dir):
        raise ValueError(f"stability: {out_dir} holds the repository; give a folder of its own for the re-runs.")
    committed = claim_table(models, single)[0]["verdict"]
    verdicts: dict[str, pd.Series] = {}
    repetitions = []
    for i, (seed, runs_of_rep) in enumerate(zip(seeds, plans), start=1):
        rep_dir = out_dir / f"rep_{i}"
        start = f"judge {judge}, committed generations" if judge else "empty generation cache"
        print(f"== stability: repetition {i} of {len(seeds)} ({'configured seed' if seed is None else f'seed {seed}'}"
              f", {start}) in {rep_dir} ==", flush=True)
        shutil.rmtree(rep_dir, ignore_errors=True)
        seed_results(REPO_ROOT, rep_dir, pairs)
        if judge:
            copy_caches(data_dir(), rep_dir / ".personalab")
        with data_dir_at(rep_dir / ".personalab"), output_root_at(rep_dir):
            _run_plan(runs_of_rep, i, len(seeds), serve_model=judge is None)
        verdicts[rep_dir.name] = claim_table(models, single, root=rep_dir)[0]["verdict"]
        repetitions.append({"name": rep_dir.name, "seed": seed, "dir": str(rep_dir),
                            "servers": _servers(rep_dir, pairs),
                            "runs": [{"experiment": n, "model": m, "params": p}
                                     for m, items in runs_of_rep for n, p in items]})
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    table = compare(committed, verdicts, varied, date)
    verdicts_dir = Path(verdicts_dir or (JUDGE_DIR / judge if judge else STABILITY_DIR))
    earlier, earlier_runs = read_records(verdicts_dir)
    written = write_table(merge_records(earlier, table, list(committed.index)), verdicts_dir / "verdicts.csv")
    dist = vllm_distribution()
    run = {"date": date, "keys": table["key"].tolist(), "n_repetitions": len(seeds),
           "seeds": list(seeds), "temperature": temperature, "judge": judge,
           "temperature_experiments": sorted(n for n, d in declared.items() if "temperature" in d)
           if temperature is not None else [],
           "config": str(config or Path("experiments") / "config.yaml"), "only": list(only) if only else None,
           "claim_models": models, "single_model": single, "vllm_installed": " ".join(dist) if dist else None,
           "repetitions": repetitions}
    write_json({"runs": [*earlier_runs, run]}, verdicts_dir / "provenance.json")
    print(f"== stability: {int(table['held'].sum())} of {len(table)} re-derived verdicts held in every repetition; "
          f"wrote {written} (earlier records kept; new repetitions of a verdict added to its record) ==", flush=True)
    return table


def read_records(verdicts_dir: Path | str) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """The verdicts and the re-runs recorded in ``verdicts_dir`` so far (None and [] when there are none)."""
    path = published(Path(verdicts_dir) / "verdicts.csv")
    if not path.exists():
        return None, []
    return pd.read_csv(path), json.loads(path.with_name("provenance.json").read_text())["runs"]
