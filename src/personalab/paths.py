"""Where things live: the repository's folders and the per-user model and generation caches."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: The repository root (the folder holding ``_config.yml``); overridable for installed copies.
REPO_ROOT = Path(os.environ.get("PERSONALAB_REPO", Path(__file__).resolve().parents[2]))


def repo_path(*parts: str) -> Path:
    """A path inside the repository."""
    return REPO_ROOT.joinpath(*parts)


def cache_dir() -> Path:
    """Root of the per-user cache (converted checkpoints, downloaded wheels, server logs).

    ``PERSONALAB_CACHE`` overrides the platform default (``~/.cache/personalab`` on Linux).
    """
    return Path(os.environ.get("PERSONALAB_CACHE") or platformdirs.user_cache_dir("personalab"))


def models_dir() -> Path:
    """Converted checkpoints, one folder per model id."""
    return cache_dir() / "models"


def data_dir() -> Path:
    """The project's data directory: the generation cache database lives here.

    ``PERSONALAB_DATA`` overrides the default ``<repo>/.personalab``.
    """
    return Path(os.environ.get("PERSONALAB_DATA") or repo_path(".personalab"))


def logs_dir() -> Path:
    """Server logs."""
    return data_dir() / "logs"
