"""Shared fixtures: unit tests never touch the user's caches, the repository's data folder or a real server.

Kept light on purpose: nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Variables that point personalab at real places or servers; unit tests start without them.
_PERSONALAB_ENV = ("PERSONALAB_MODELS", "PERSONALAB_STAGE_DIR", "PERSONALAB_ENDPOINT", "PERSONALAB_VLLM_ARGS",
                   "PERSONALAB_API_KEY")


@pytest.fixture(autouse=True)
def _isolated_personalab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests under tests/unit: data and cache folders in a fresh temporary folder, no endpoint overrides."""
    if "unit" not in Path(str(request.node.path)).parts:
        return
    root = tmp_path_factory.mktemp("personalab")
    monkeypatch.setenv("PERSONALAB_DATA", str(root / "data"))
    monkeypatch.setenv("PERSONALAB_CACHE", str(root / "cache"))
    for name in _PERSONALAB_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a registry YAML text to a temporary file and point ``PERSONALAB_MODELS`` at it."""

    def write(text: str) -> Path:
        path = tmp_path / "models.yaml"
        path.write_text(text)
        monkeypatch.setenv("PERSONALAB_MODELS", str(path))
        return path

    return write
