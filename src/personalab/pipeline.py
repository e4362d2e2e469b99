"""Run experiment notebooks with papermill and publish their outputs only when the whole notebook succeeded.

Source notebooks are MyST text files (``experiments/<name>.md``, diffable, paired by jupytext). A run converts
one to ``.ipynb``, injects parameters, executes it against a served model with its outputs going to a staging
folder, and on success moves the executed notebook (``experiments/executed/<name>/<model>.ipynb``, shown on the
site as a lab-notebook page), the results and the figures into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from personalab.outputs import STAGE_ENV, figures_dir_for, output_root, published, results_dir_for
from personalab.paths import REPO_ROOT, repo_path
from personalab.harness.cache import GenerationCache
from personalab.harness.models import check_can_chat
from personalab.harness.registry import get_model, load_registry
from personalab.harness.server import serve
from personalab.parameters import Parameter, check_values, parameters_of_cell

EXECUTED_DIR = Path("experiments") / "executed"


class ExperimentError(RuntimeError):
    """An experiment notebook failed; nothing it produced was published."""


def experiment_names() -> list[str]:
    """The experiments that exist (notebook sources in ``experiments/``)."""
    return sorted(p.stem for p in repo_path("experiments").glob("*.md") if p.stem.lower() != "readme")


def notebook_source(name: str) -> Path:
    """The MyST source of experiment ``name``; unknown names fail with the valid ones listed."""
    path = repo_path("experiments", f"{name}.md")
    if not path.exists():
        raise ValueError(f"Unknown experiment {name!r}; available: {', '.join(experiment_names()) or 'none'}.")
    return path


def executed_path(name: str, model_id: str) -> Path:
    """Repository-relative path of the executed copy of one experiment on one model."""
    return EXECUTED_DIR / name / f"{model_id}.ipynb"


def _publish(stage: Path, relative: Path | Sequence[Path], final: Path | Sequence[Path | None] | None = None) -> None:
    """Replace ``final`` (a file or folder; default ``relative`` in the repository) with the staged version of
    ``relative``, if one was written; given lists of both, all of them or none.

    Publishing is renames only: each final goes to a hidden backup beside it, then its staged version takes its place.
    If any step fails (a full disk, a read-only folder), every rename already done is undone in reverse, so the
    previous outputs are exactly as they were, and an :class:`ExperimentError` says what happened. The backups are
    deleted once everything is in place.
    """

    def remove(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    if isinstance(relative, (str, os.PathLike)):
        relative, final = [Path(relative)], [final]  # type: ignore[list-item]
    finals = list(final) if final is not None else [None] * len(relative)  # type: ignore[arg-type]
    renames: list[tuple[Path, Path]] = []  # (from, to), in the order done
    backups: list[Path] = []
    created: list[Path] = []  # folders made for outputs published for the first time, outermost first
    target = stage
    try:
        for rel, fin in zip(relative, finals):
            staged, target = stage / rel, Path(fin) if fin is not None else REPO_ROOT / rel
            if not staged.exists():
                continue
            created += reversed([d for d in target.parents if not d.exists()])
            target.parent.mkdir(parents=True, exist_ok=True)
            backup = target.with_name(f".{target.name}.old")
            remove(backup)
            if target.exists():
                target.replace(backup)
                renames.append((target, backup))
                backups.append(backup)
            staged.replace(target)
            renames.append((staged, target))
    except OSError as err:
        stuck = []
        for source, dest in reversed(renames):
            try:
                dest.replace(source)
            except OSError:
                stuck.append(f"{source} is at {dest}")
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        reason = os.strerror(err.errno) if err.errno else str(err)
        outcome = ("nothing was published and the previous outputs are unchanged" if not stuck else
                   f"nothing was published, but not everything could be put back ({'; '.join(stuck)})")
        raise ExperimentError(f"Could not publish {target} ({reason}); {outcome}.") from err
    for backup in backups:
        remove(backup)


def declared_parameters(source: Path) -> dict[str, Parameter]:
    """The parameters (name, type, default) declared in the notebook's cell tagged ``parameters``."""
    import jupytext

    for cell in jupytext.read(source).cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return parameters_of_cell(cell.source, where=source.name)
    raise ValueError(f"{source.name} has no cell tagged 'parameters'.")


def notebook_parameters(source: Path) -> set[str]:
    """The names assigned in the notebook's cell tagged ``parameters``."""
    return set(declared_parameters(source))


def _check_params(source: Path, params: Mapping[str, Any]) -> None:
    """Reject unknown parameters (a typo would otherwise be silently ignored) and values outside their declared
    types, before a server or a kernel starts."""
    check_values(source.stem, declared_parameters(source), params)


def _check_writable(name: str, model_id: str) -> None:
    """Refuse, before any work, a run whose outputs could not be published: the nearest existing folder of the
    staging folder and of each output's folder must be writable."""
    outputs = (executed_path(name, model_id), results_dir_for(name, model_id), figures_dir_for(name, model_id))
    for folder in (output_root() / ".personalab" / "staging", *(published(p).parent for p in outputs)):
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ExperimentError(f"{folder} is not writable, so {name} on {model_id} could not be published; make it "
                                  "writable (or point PERSONALAB_OUTPUT_ROOT at another folder) and run again.")


class _NeedsServer(Exception):
    """Internal: a cache-only execution met a generation the cache does not hold."""


def _execute(source: Path, target: Path, stage: Path, params: Mapping[str, Any], timeout_s: int,
             cache_only: bool) -> None:
    """Execute one notebook with papermill, its outputs redirected into ``stage``."""
    import jupytext
    import papermill

    from personalab.experiment import CACHE_ONLY_ENV

    source_nb = stage / source.with_suffix(".ipynb").name
    jupytext.write(jupytext.read(source), source_nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    overrides = {STAGE_ENV: str(stage), CACHE_ONLY_ENV: "1" if cache_only else "0"}
    previous = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        papermill.execute_notebook(str(source_nb), str(target), parameters=dict(params), cwd=str(REPO_ROOT),
                                   kernel_name="python3", progress_bar=False, log_output=not cache_only,
                                   execution_timeout=timeout_s, stdout_file=None if cache_only else sys.stdout,
                                   stderr_file=None if cache_only else sys.stderr)
    except papermill.PapermillExecutionError as err:
        if cache_only and err.ename == "CacheMiss":
            raise _NeedsServer() from None
        raise ExperimentError(f"{source.stem} failed in cell {err.exec_count}: {err.ename}: {err.evalue.rstrip('.')}. "
                              "Nothing was published; previous results are unchanged.") from None
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _title_with_model(path: Path, model_id: str) -> None:
    """Append the model id to the executed notebook's title, so lab-notebook pages of different models differ."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            first, _, rest = cell.source.partition("\n")
            cell.source = f"{first} ({model_id})" + (f"\n{rest}" if rest else "")
            break
    nbformat.write(nb, path)


class LazyServer:
    """A model's server, started on first need and kept until closed (one per model across several runs).

    When this holder started the server and it dies during a run, :meth:`revive` restarts it (at most
    :attr:`max_restarts` times) so the run can go on from the cache; a server it merely attached to is not
    restarted.
    """

    def __init__(self, model_id: str, max_restarts: int = 2) -> None:
        self.model_id = model_id
        self.max_restarts = max_restarts
        self.restarts = 0
        self._stack = contextlib.ExitStack()
        self._owned: list = []
        self.started = False

    def ensure(self) -> None:
        """Serve the model (or attach to its running server) unless this holder already does.

        An embedded model is pulled first and a trained one trained first when its weights are missing or stale
        (``personalab.train.pull``, idempotent), so a run needs no separate ``personalab models pull``.
        """
        if not self.started:
            if get_model(self.model_id).kind in ("embedded", "trained"):
                from personalab.train import pull

                pull(self.model_id)
            self._stack.enter_context(serve(self.model_id, server_out=self._owned))
            self.started = True

    def revive(self) -> bool:
        """Restart the owned server if it died; False when it is alive, not ours, or out of restarts."""
        if not self.started:
            return False
        if not self._owned:
            print(f"   the run failed; the server for {self.model_id} was already running when this run attached "
                  "to it, so it is not restarted from here", flush=True)
            return False
        server = self._owned[0]
        if server.alive():
            return False
        if self.restarts >= self.max_restarts:
            print(f"   the vLLM server for {self.model_id} died again; not restarting it a "
                  f"{self.restarts + 1}th time (log: {server.log_path})", flush=True)
            return False
        self.restarts += 1
        print(f"   the vLLM server for {self.model_id} died (log: {server.log_path}); restarting it "
              f"({self.restarts} of {self.max_restarts}) and going on from the cache", flush=True)
        server.restart()
        return True

    def __enter__(self) -> "LazyServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def run_experiment(name: str, model_id: str | None = None, params: Mapping[str, Any] | None = None,
                   serve_model: bool = True, timeout_s: int = 3600, server: LazyServer | None = None) -> Path:
    """Execute experiment ``name`` on ``model_id`` and publish its notebook, results and figures atomically.

    A trained model is brought up to date first (retrained if its recipe, data or hyper-parameters changed). The
    notebook then runs from the generation cache alone; only if that meets a missing generation is the model served (through ``server`` when given, so later experiments on the same model reuse it) and the
    notebook run again for real. A rerun with nothing new to generate therefore never starts a server.
    """
    source = notebook_source(name)
    spec = get_model(model_id)
    params = {"model_id": spec.id, **(params or {})}
    if params["model_id"] != spec.id:
        raise ValueError(f"{name}: the model is chosen with --model (or a run's models), not the model_id parameter; "
                         f"got model_id={params['model_id']!r} for a run on {spec.id}.")
    _check_params(source, params)
    _check_writable(name, spec.id)  # a read-only output folder is reported now, not after the whole run
    check_can_chat(spec)  # a pulled base model with no chat template is refused before any kernel or server
    GenerationCache().close()  # a damaged cache file is reported now, not from inside a notebook cell
    if spec.kind == "trained" and serve_model and not params.get("endpoint"):
        # A mask's cache key is its artefact key, so a changed recipe or data set must retrain it before the cache is
        # read: otherwise the cache-only pass would answer from the old mask's replies (a no-op when up to date).
        from personalab.train import pull

        pull(spec.id)
    outputs = [executed_path(name, spec.id), results_dir_for(name, spec.id), figures_dir_for(name, spec.id)]
    work_root = output_root() / ".personalab" / "staging"  # beside the final folders: publishing is a rename
    work_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f"{name}-{spec.id}-", dir=work_root))
    started = time.time()
    print(f"== {name} on {spec.id} ==", flush=True)
    try:
        try:
            _execute(source, stage / outputs[0], stage, params, timeout_s, cache_only=True)
            print("   every generation was already in the cache; no server needed", flush=True)
        except _NeedsServer:
            with LazyServer(spec.id) as local:
                holder = server or local
                if serve_model and not params.get("endpoint"):
                    holder.ensure()
                while True:
                    try:
                        _execute(source, stage / outputs[0], stage, params, timeout_s, cache_only=False)
                        break
                    except ExperimentError:
                        if not holder.revive():  # every finished generation is cached: a rerun repeats none
                            raise
        _title_with_model(stage / outputs[0], spec.id)
        _publish(stage, outputs, [published(relative) for relative in outputs])  # all three or none
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"== {name} on {spec.id}: done in {time.time() - started:.0f} s ==", flush=True)
    return published(outputs[0])


#: Which configured runs ``make book`` does: ``main`` fits the 60-minute budget on two CPU cores; ``extended`` runs
#: are committed like the others and regenerated by ``make book-full`` (``personalab figures``).
TIERS: tuple[str, ...] = ("main", "extended")


def load_config(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The list of runs that regenerate every figure (``experiments/config.yaml``), validated."""
    path = Path(path) if path else repo_path("experiments", "config.yaml")
    if not path.is_file():
        raise ValueError(f"No run configuration at {path}.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path} is not valid YAML ({getattr(err, 'problem', None) or 'unreadable'}{where}).") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path}: expected a non-empty 'runs' list.")
    registry = load_registry()
    for i, run in enumerate(runs, start=1):
        if not isinstance(run, dict) or not isinstance(run.get("experiment"), str):
            raise ValueError(f"{path}: run {i} must be a mapping with an experiment (one of: "
                             f"{', '.join(experiment_names())}), got {run!r}.")
        source = notebook_source(run["experiment"])
        params = run.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError(f"{path}: the params of {source.stem} must be a mapping of name: value.")
        if "model_id" in params:
            raise ValueError(f"{path}: the params of {source.stem} set model_id; list the models under models instead.")
        if run.get("tier", "main") not in TIERS:
            raise ValueError(f"{path}: the run of {source.stem} has tier {run.get('tier')!r}; expected one of: "
                             f"{', '.join(TIERS)}.")
        models = run.get("models") or [registry.default]
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ValueError(f"{path}: the models of {source.stem} must be a list of model ids, got {models!r}.")
        for model in models:
            registry.get(model)
            _check_params(source, {"model_id": model, **params})
    return runs


def runs_by_model(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Configured runs grouped by model, models in order of first appearance: model -> [(experiment, params)].

    Runs marked ``after_all: true`` (notebooks that compare other runs' results) are left out: see :func:`run_all`.
    """
    default = load_registry().default
    by_model: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run in runs:
        if run.get("after_all"):
            continue
        for model in run.get("models") or [default]:
            by_model.setdefault(model, []).append((run["experiment"], dict(run.get("params") or {})))
    return by_model


def run_all(config_path: Path | str | None = None, only: Sequence[str] | None = None,
            tiers: Sequence[str] = TIERS) -> None:
    """Run every configured experiment of the given ``tiers``, serving each model once for all of its experiments.

    Runs marked ``after_all`` go last, once every model's runs are published, because they read those results.
    """
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise ValueError(f"Unknown tier {unknown[0]!r}; expected one of: {', '.join(TIERS)}.")
    runs = [r for r in load_config(config_path) if (not only or r["experiment"] in only)
            and r.get("tier", "main") in tiers]
    for model, model_runs in runs_by_model(runs).items():
        with LazyServer(model) as server:
            for name, params in model_runs:
                run_experiment(name, model, params=params, server=server)
    default = load_registry().default
    for run in (r for r in runs if r.get("after_all")):
        for model in run.get("models") or [default]:
            run_experiment(run["experiment"], model, params=dict(run.get("params") or {}))
