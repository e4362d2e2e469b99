"""Where an experiment run writes its results and figures, atomically.

A run writes into its final folders (``experiments/results/<experiment>/<model>/`` and
``figures/<experiment>/<model>/``) only through this module. When the pipeline runs a notebook it sets
``PERSONALAB_STAGE_DIR``: files then go to a staging folder and are moved into place only after the whole
notebook succeeded, so a failed run leaves the previous results and figures untouched. Each single file is
also written under a temporary name and renamed, so no reader ever sees half a file.

``PERSONALAB_OUTPUT_ROOT`` moves the published outputs (results, executed notebooks, figures) of every run, and
the results every reader reads, to another folder laid out like the repository; ``personalab stability`` uses it
so that re-runs never touch the committed results. Sources and labels are always read from the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from personalab.paths import REPO_ROOT

STAGE_ENV = "PERSONALAB_STAGE_DIR"
OUTPUT_ROOT_ENV = "PERSONALAB_OUTPUT_ROOT"

#: The repository folders that runs publish into (and that :data:`OUTPUT_ROOT_ENV` moves).
OUTPUT_DIRS: tuple[Path, ...] = (Path("experiments") / "results", Path("experiments") / "executed", Path("figures"))


def results_dir_for(experiment: str, model_id: str) -> Path:
    """The committed results folder of one experiment and model, relative to the repository."""
    return Path("experiments") / "results" / experiment / model_id


def figures_dir_for(experiment: str, model_id: str) -> Path:
    """The figures folder of one experiment and model, relative to the repository."""
    return Path("figures") / experiment / model_id


def output_root() -> Path:
    """The folder runs publish into and results are read from: ``PERSONALAB_OUTPUT_ROOT``, else the repository."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or REPO_ROOT)


def published(relative: Path | str) -> Path:
    """Where a repository-relative path lives once published: under :func:`output_root` for run outputs
    (:data:`OUTPUT_DIRS`), in the repository for everything else (sources, labels); absolute paths unchanged."""
    relative = Path(relative)
    if relative.is_absolute():
        return relative
    is_output = any(relative.is_relative_to(folder) for folder in OUTPUT_DIRS)
    return (output_root() if is_output else REPO_ROOT) / relative


@contextlib.contextmanager
def output_root_at(root: Path | str | None) -> Iterator[None]:
    """Within the block, publish runs into and read results from ``root`` (None: leave the output root as it is)."""
    if root is None:
        yield
        return
    previous = os.environ.get(OUTPUT_ROOT_ENV)
    os.environ[OUTPUT_ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OUTPUT_ROOT_ENV, None)
        else:
            os.environ[OUTPUT_ROOT_ENV] = previous


def resolve(relative: Path | str) -> Path:
    """Where a repository-relative output path is written now (the staging copy while the pipeline runs)."""
    relative = Path(relative)
    if relative.is_absolute():
        return relative
    stage = os.environ.get(STAGE_ENV)
    return (Path(stage) if stage else REPO_ROOT) / relative


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path``; nothing partial is left on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read by anyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table(df: pd.DataFrame, relative: Path | str) -> Path:
    """Write a table as CSV (small, diffable, readable in the browser)."""
    return atomic_write(resolve(relative), lambda p: df.to_csv(p, index=False))


def write_json(data: Any, relative: Path | str) -> Path:
    """Write JSON with sorted keys so reruns diff cleanly."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    return atomic_write(resolve(relative), lambda p: p.write_text(text))


def read_table(relative: Path | str) -> pd.DataFrame:
    """Read a committed results table (from :func:`published`, never from staging)."""
    path = published(relative)
    if not path.exists():
        raise FileNotFoundError(f"No results at {path}: run the experiment that writes it (see the README).")
    return pd.read_csv(path)


def read_json(relative: Path | str) -> Any:
    """Read a committed results JSON file (from :func:`published`)."""
    path = published(relative)
    if not path.exists():
        raise FileNotFoundError(f"No results at {path}: run the experiment that writes it (see the README).")
    return json.loads(path.read_text())
