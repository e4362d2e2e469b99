"""Where an experiment run writes its results and figures, atomically.

A run writes into its final folders (``experiments/results/<experiment>/<model>/`` and
``figures/<experiment>/<model>/``) only through this module. When the pipeline runs a notebook it sets
``PERSONALAB_STAGE_DIR``: files then go to a staging folder and are moved into place only after the whole
notebook succeeded, so a failed run leaves the previous results and figures untouched. Each single file is
also written under a temporary name and renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from personalab.paths import REPO_ROOT

STAGE_ENV = "PERSONALAB_STAGE_DIR"


def results_dir_for(experiment: str, model_id: str) -> Path:
    """The committed results folder of one experiment and model, relative to the repository."""
    return Path("experiments") / "results" / experiment / model_id


def figures_dir_for(experiment: str, model_id: str) -> Path:
    """The figures folder of one experiment and model, relative to the repository."""
    return Path("figures") / experiment / model_id


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
    """Read a committed results table (always from the repository, never from staging)."""
    path = REPO_ROOT / relative
    if not path.exists():
        raise FileNotFoundError(f"No results at {path}: run the experiment that writes it (see the README).")
    return pd.read_csv(path)


def read_json(relative: Path | str) -> Any:
    """Read a committed results JSON file."""
    path = REPO_ROOT / relative
    if not path.exists():
        raise FileNotFoundError(f"No results at {path}: run the experiment that writes it (see the README).")
    return json.loads(path.read_text())
