"""Tests for personalab.outputs: atomic writes and redirection into the staging folder."""

from __future__ import annotations

import json

import pytest

from personalab import outputs
from personalab.outputs import atomic_write, resolve


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    assert atomic_write(path, lambda p: p.write_text("new")) == path
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]


def test_failing_writer_keeps_old_content_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old")

    def half_then_fail(p):
        p.write_text("half")
        raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError, match="writer broke"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_failing_writer_on_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "fresh.json"
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda p: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert list(tmp_path.iterdir()) == []


def test_resolve_without_stage_dir_is_the_repository(monkeypatch):
    monkeypatch.delenv(outputs.STAGE_ENV, raising=False)
    assert resolve("experiments/results/x/m/a.csv") == outputs.REPO_ROOT / "experiments/results/x/m/a.csv"


def test_resolve_redirects_into_stage_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_STAGE_DIR", str(tmp_path / "stage"))
    rel = outputs.results_dir_for("exp", "model") / "a.csv"
    assert resolve(rel) == tmp_path / "stage" / "experiments" / "results" / "exp" / "model" / "a.csv"
    assert resolve(tmp_path / "abs.csv") == tmp_path / "abs.csv"


def test_write_json_goes_to_stage_and_not_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALAB_STAGE_DIR", str(tmp_path / "stage"))
    rel = outputs.results_dir_for("unit-test-exp", "unit-test-model") / "p.json"
    written = outputs.write_json({"b": 1, "a": [1, 2]}, rel)
    assert written == tmp_path / "stage" / rel
    assert json.loads(written.read_text()) == {"a": [1, 2], "b": 1}
    assert written.read_text().index('"a"') < written.read_text().index('"b"')
    assert not (outputs.REPO_ROOT / rel).exists()
